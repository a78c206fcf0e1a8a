//! Raw payloads at the client edge (`?payloads=raw` on the upgrade URL,
//! `docs/wire.md`, "Client auth"): a client that asks gets JSON payloads
//! (batch results included) as JSON values, one that does not gets
//! today's JSON strings; text and binary payloads keep a string form with
//! a `format`; a bad value is refused before the upgrade.

mod support;

use std::collections::HashSet;

use actor_core::{spawn, Actor, BoxError, Context};
use bytes::Bytes;
use cluster_router::{Envelope, EnvelopeKind, PayloadFormat, Router};
use job_queue::StrategyKind;
use serde_json::{json, Value};
use support::jobs::*;
use support::ws::{auth_ok, bearer_request, connect, next_json, send_auth, send_json, token, Ws};
use tokio_tungstenite::tungstenite::Error as WsError;

/// Jobs per client in the bulk test, and per batch.
const JOBS: usize = 20_000;
const BATCH: usize = 1_000;

/// Connects to `url` with a bearer token, adding `query` to the URL.
async fn connect_with_query(url: &str, query: &str) -> Ws {
    connect(
        STEP,
        bearer_request(&format!("{url}/?{query}"), &token(SECRET)),
    )
    .await
}

/// The data of job `i` of client `form`: quotes, a backslash and
/// non-ASCII text, so that escaping matters.
fn data(form: &str, i: usize) -> String {
    format!("{form}-{i} \"quoted\" back\\slash é")
}

/// Reads the welcome and returns its payload as the client sees it.
async fn welcome_payload(ws: &mut Ws) -> Value {
    let welcome = next_json(STEP, ws).await;
    assert!(welcome["from"].as_str().unwrap().starts_with("system@"));
    welcome["payload"].clone()
}

/// Sends `JOBS` echo jobs in batches to `coordinator@<node>`, reads every
/// answer and checks each result; returns how many answer payloads were
/// raw JSON objects and how many were strings.
async fn submit_all(ws: &mut Ws, node: &str, form: &str) -> (usize, usize) {
    for (tag, start) in (0..JOBS).step_by(BATCH).enumerate() {
        let jobs: Vec<Value> = (start..start + BATCH)
            .map(|i| json!({"id": format!("{form}-{i}"), "kind": "echo", "data": data(form, i)}))
            .collect();
        let cmd = json!({"to": format!("coordinator@{node}"), "id": tag + 1,
            "payload": {"cmd": "submit_batch", "jobs": jobs}});
        send_json(STEP, ws, &cmd).await;
    }
    let (mut raw, mut strings) = (0, 0);
    let mut seen = HashSet::new();
    while seen.len() < JOBS {
        let env = next_json(STEP, ws).await;
        assert!(env.get("kind").is_none(), "an error answer: {env}");
        assert!(
            env.get("format").is_none(),
            "a JSON payload has no format: {env}"
        );
        let answer = match &env["payload"] {
            Value::String(text) => {
                strings += 1;
                serde_json::from_str(text).unwrap()
            }
            object @ Value::Object(_) => {
                raw += 1;
                object.clone()
            }
            other => panic!("unexpected payload {other}"),
        };
        assert_eq!(answer["refused"], json!([]), "{answer}");
        for result in answer["results"].as_array().expect("results") {
            let id = result["id"].as_str().unwrap();
            let i: usize = id.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(id, format!("{form}-{i}"));
            assert_eq!(result["result"], data(form, i), "{result}");
            assert!(seen.insert(i), "job {id} answered twice");
        }
    }
    (raw, strings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_string_clients_each_get_their_form_for_tens_of_thousands_of_jobs() {
    let nodes = cluster(&[("rr-a", &[]), ("rr-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let url = nodes[1].router.url();

    // The client that asks: the auth reply confirms, the welcome is an object.
    let mut raw_ws = connect_with_query(&url, "payloads=raw").await;
    let ack = auth_ok(STEP, &mut raw_ws).await;
    assert_eq!(ack.as_object().unwrap().len(), 3, "{ack}");
    assert_eq!(ack["payloads"], "raw");
    let welcome = welcome_payload(&mut raw_ws).await;
    assert!(welcome["welcome"].as_str().unwrap().ends_with("@rr-b"));

    // The client that does not: exactly today's auth reply and strings.
    let mut str_ws = connect(STEP, bearer_request(&url, &token(SECRET))).await;
    let ack = auth_ok(STEP, &mut str_ws).await;
    assert_eq!(ack.as_object().unwrap().len(), 2, "{ack}");
    assert!(welcome_payload(&mut str_ws).await.is_string());

    let (raw, strings) = tokio::join!(
        submit_all(&mut raw_ws, "rr-a", "raw"),
        submit_all(&mut str_ws, "rr-a", "str"),
    );
    assert!(raw.0 > 0 && raw.1 == 0, "raw client: {raw:?}");
    assert!(
        strings.0 == 0 && strings.1 > 0,
        "strings client: {strings:?}"
    );
    finish(coord, nodes).await;
}

/// Answers each client message with five payloads: JSON, text that is not
/// JSON, binary text, binary bytes that are not UTF-8 (which cannot reach
/// a client and bounce back here, ignored), and a JSON string.
struct Shapes(Router);

#[async_trait::async_trait]
impl Actor for Shapes {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.kind != EnvelopeKind::Message {
            return Ok(());
        }
        let shapes: [(PayloadFormat, &[u8]); 5] = [
            (PayloadFormat::Json, br#"{"k":[1,"two"]}"#),
            (PayloadFormat::Json, br#"plain "text""#),
            (PayloadFormat::Binary, b"bin [1]"),
            (PayloadFormat::Binary, &[0xff, 0xfe]),
            (PayloadFormat::Json, br#""str""#),
        ];
        for (format, payload) in shapes {
            let reply = env.reply_with(
                EnvelopeKind::Message,
                format,
                Bytes::copy_from_slice(payload),
            );
            self.0.send(reply).await?;
        }
        Ok(())
    }
}

/// Asks `shapes@<node>` and returns the four payloads that reach a client,
/// as `(payload, format)`.
async fn shapes_seen(ws: &mut Ws, node: &str) -> Vec<(Value, Value)> {
    send_json(
        STEP,
        ws,
        &json!({"to": format!("shapes@{node}"), "id": 5, "payload": {}}),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let env = next_json(STEP, ws).await;
        assert_eq!(env["correlation_id"], 5, "{env}");
        seen.push((env["payload"].clone(), env["format"].clone()));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_payloads_keep_their_meaning_in_both_forms() {
    let nodes = cluster(&[("rm-a", &[]), ("rm-b", &[])], "").await;
    let router = &nodes[0].router;
    router
        .register_client_facing("shapes", spawn("shapes", Shapes(router.clone())))
        .unwrap();
    let url = nodes[1].router.url();

    // First-frame authentication takes the URL's choice too.
    let mut raw_ws = connect(STEP, format!("{url}/?payloads=raw")).await;
    send_auth(STEP, &mut raw_ws, SECRET).await;
    assert_eq!(auth_ok(STEP, &mut raw_ws).await["payloads"], "raw");
    welcome_payload(&mut raw_ws).await;
    let raw = shapes_seen(&mut raw_ws, "rm-a").await;
    assert_eq!(
        raw,
        [
            (json!({"k": [1, "two"]}), Value::Null),
            (json!(r#"plain "text""#), json!("text")),
            (json!("bin [1]"), json!("binary")),
            (json!("str"), Value::Null),
        ]
    );

    // `payloads=strings` is the default, said out loud.
    let mut str_ws = connect_with_query(&url, "payloads=strings").await;
    let ack = auth_ok(STEP, &mut str_ws).await;
    assert!(ack.get("payloads").is_none(), "{ack}");
    welcome_payload(&mut str_ws).await;
    let strings = shapes_seen(&mut str_ws, "rm-a").await;
    assert_eq!(
        strings,
        [
            (json!(r#"{"k":[1,"two"]}"#), Value::Null),
            (json!(r#"plain "text""#), Value::Null),
            (json!("bin [1]"), json!("binary")),
            (json!(r#""str""#), Value::Null),
        ]
    );

    // The router's own answers: a reason is a JSON string, raw or not.
    send_json(
        STEP,
        &mut raw_ws,
        &json!({"to": "ghost@rm-a", "id": 6, "payload": 1}),
    )
    .await;
    let bounce = next_json(STEP, &mut raw_ws).await;
    assert_eq!(bounce["kind"], "undeliverable");
    assert_eq!(bounce["payload"], "no actor named ghost on node rm-a");
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payloads_value_is_refused_with_a_reason() {
    let nodes = cluster(&[("rb-a", &[])], "").await;
    let url = nodes[0].router.url();
    for (query, why) in [
        ("payloads=json", r#"unknown payloads value "json""#),
        ("payloads=raw&payloads=raw", "payloads given more than once"),
    ] {
        let request = bearer_request(&format!("{url}/?{query}"), &token(SECRET));
        let refused = within(
            STEP,
            "refused upgrade",
            tokio_tungstenite::connect_async(request),
        )
        .await;
        let Err(WsError::Http(response)) = refused else {
            panic!("{query}: not refused: {refused:?}");
        };
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
        assert!(body.contains(why), "{query}: {body}");
    }
    // The listener is unharmed: a good client still connects.
    let mut ws = connect_with_query(&url, "payloads=raw").await;
    auth_ok(STEP, &mut ws).await;
    stop_all(nodes).await;
}
