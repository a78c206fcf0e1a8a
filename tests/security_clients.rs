//! Clients speak only as clients. Each test is a raw WebSocket client
//! (tokio-tungstenite, from tests/support) doing an attack with a valid
//! client token, asserting it is refused (or has no effect) and counted,
//! while a good client on the same node keeps getting correct results.

mod support;

use std::collections::BTreeSet;

use futures_util::StreamExt;
use job_queue::StrategyKind;
use serde_json::{json, Value};
use support::jobs;
use support::router::{self, client_collector, client_echo, collector};
use support::ws::{connect_bearer, next_json, send_json, welcome, Ws};

/// Connects an authenticated client to `node` (at `url`) and reads its welcome.
async fn client(url: &str, secret: &str, node: &str) -> (Ws, String) {
    let mut ws = connect_bearer(router::STEP, url, secret).await;
    let me = welcome(router::STEP, &mut ws, node).await;
    (ws, me)
}

/// A job result carried by a client envelope's payload.
fn result_of(answer: &Value) -> Value {
    serde_json::from_str(answer["payload"].as_str().expect("payload text")).expect("job result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_undeliverables_to_the_coordinator_fail_no_job() {
    const JOBS: u64 = 3_000;
    let nodes = jobs::cluster(&[("sec-a", &[]), ("sec-b", &[])], "").await;
    let coord = jobs::coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let url = nodes[0].router.url();
    let (good, _) = client(&url, jobs::SECRET, "sec-a").await;
    let (evil, _) = client(&url, jobs::SECRET, "sec-a").await;
    let (mut good_tx, mut good_rx) = good.split();
    let (mut evil_tx, mut evil_rx) = evil.split();

    // The attacker sends an Undeliverable or Error "answer" to the
    // coordinator for every correlation id it can think of, while the good
    // client's jobs are in flight.
    let attack = tokio::spawn(async move {
        for n in 1..=JOBS {
            let kind = if n % 2 == 0 { "undeliverable" } else { "error" };
            let forged = json!({"to": "coordinator@sec-a", "kind": kind, "correlation_id": n,
                                "id": n, "payload": "\"worker@sec-b is gone\""});
            send_json(jobs::STEP, &mut evil_tx, &forged).await;
        }
        evil_tx
    });
    let submit = tokio::spawn(async move {
        for n in 1..=JOBS {
            let job = json!({"to": "coordinator@sec-a", "id": n,
                             "payload": {"id": format!("sec-{n}"), "kind": "echo", "data": n.to_string()}});
            send_json(jobs::STEP, &mut good_tx, &job).await;
        }
        good_tx
    });
    // The attacker's envelopes reach the coordinator as plain messages from
    // a client: not jobs, so each is answered with an error, in order.
    let attacker = tokio::spawn(async move {
        let mut tags = Vec::new();
        for _ in 0..JOBS {
            let answer = next_json(jobs::STEP, &mut evil_rx).await;
            assert_eq!(answer["kind"], "error", "{answer}");
            assert_eq!(answer["from"], "coordinator@sec-a");
            tags.push(answer["correlation_id"].as_u64().unwrap());
        }
        tags
    });

    let mut answered = BTreeSet::new();
    for _ in 0..JOBS {
        let answer = next_json(jobs::STEP, &mut good_rx).await;
        assert!(answer.get("kind").is_none(), "a job failed: {answer}");
        let n = answer["correlation_id"].as_u64().unwrap();
        let result = result_of(&answer);
        assert!(result["error"].is_null(), "job {n} failed: {result}");
        assert_eq!(result["id"], format!("sec-{n}"));
        assert_eq!(result["result"], n.to_string());
        assert_eq!(result["attempt"], 1, "no attempt was failed by a forgery");
        assert!(answered.insert(n), "job {n} answered twice");
    }
    assert_eq!(answered, (1..=JOBS).collect::<BTreeSet<_>>());
    let _keep_open = (
        jobs::within(jobs::STEP, "submit", submit).await.unwrap(),
        jobs::within(jobs::STEP, "attack", attack).await.unwrap(),
    );
    let tags = jobs::within(jobs::STEP, "attacker reads", attacker)
        .await
        .unwrap();
    assert_eq!(
        tags,
        (1..=JOBS).collect::<Vec<_>>(),
        "its own tags, in order"
    );

    let stats = coord.stats().await.unwrap();
    assert_eq!((stats.succeeded, stats.failed, stats.retries), (JOBS, 0, 0));
    let router_stats = nodes[0].router.stats();
    assert_eq!(
        router_stats.client_fields_ignored, JOBS,
        "every forged kind/correlation was ignored and counted"
    );
    jobs::finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_and_internal_actors_refuse_clients() {
    let nodes = jobs::cluster(&[("res-a", &[]), ("res-b", &[])], "").await;
    let coord = jobs::coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let (a, b) = (&nodes[0].router, &nodes[1].router);
    // An internal protocol actor (as mapreduce's `partitions` is).
    let (_internal, mut internal_rx) = collector(a, "partitions");
    let (mut evil, me) = client(&a.url(), jobs::SECRET, "res-a").await;
    let (mut good, _) = client(&a.url(), jobs::SECRET, "res-a").await;

    let other_client = me.replace("client-", "client-9");
    let targets = [
        ("worker@res-a", a),
        ("worker@res-b", b),
        ("partitions@res-a", a),
        ("_reply@res-a", a),
        ("_reply@res-b", a),
        (other_client.as_str(), a),
        (me.as_str(), a),
    ];
    for (tag, (to, counted_on)) in targets.iter().enumerate() {
        let before = counted_on.stats().client_refused;
        let forged = json!({"to": to, "id": tag + 1, "correlation_id": 1,
                            "payload": {"id": "x", "kind": "echo"}});
        send_json(jobs::STEP, &mut evil, &forged).await;
        let answer = next_json(jobs::STEP, &mut evil).await;
        assert_eq!(answer["kind"], "error", "{to}: {answer}");
        assert_eq!(answer["correlation_id"], tag + 1, "{answer}");
        assert_eq!(answer["from"], *to);
        let reason = answer["payload"].as_str().unwrap();
        assert!(
            reason.contains("does not take messages from external clients"),
            "{to}: {reason}"
        );
        assert_eq!(
            counted_on.stats().client_refused,
            before + 1,
            "{to}: refused and counted where it lives"
        );

        // The good client on the same node is served all along.
        let job = json!({"to": "coordinator@res-a", "id": 100 + tag,
                         "payload": {"id": format!("good-{tag}"), "kind": "echo", "data": "ok"}});
        send_json(jobs::STEP, &mut good, &job).await;
        let answer = next_json(jobs::STEP, &mut good).await;
        assert_eq!(answer["correlation_id"], 100 + tag);
        assert_eq!(result_of(&answer)["result"], "ok");
    }
    // Gossip is binary and a client's envelope is always JSON: a forged
    // "join" to `system` is only a malformed command, and changes nothing.
    let before = a.members().len();
    let forged = json!({"to": "system@res-a", "id": 50, "format": "binary",
                        "payload": "\u{1}\u{0}\u{0}\u{1}"});
    send_json(jobs::STEP, &mut evil, &forged).await;
    let answer = next_json(jobs::STEP, &mut evil).await;
    assert_eq!(answer["kind"], "error", "{answer}");
    assert!(answer["payload"].as_str().unwrap().contains("JSON command"));
    assert_eq!(a.members().len(), before);
    // The read-only commands stay open to clients.
    let ping = json!({"to": "system@res-b", "id": 51, "payload": {"cmd": "ping"}});
    send_json(jobs::STEP, &mut evil, &ping).await;
    let pong = next_json(jobs::STEP, &mut evil).await;
    assert_eq!(pong["correlation_id"], 51);
    assert_eq!(pong["payload"], r#"{"pong":"res-b"}"#);
    // Nothing reached the internal actor: a marker sent by the node after
    // the attacks is the first thing it receives.
    let marker = cluster_router::Envelope::new(
        a.addr("partitions").unwrap(),
        a.addr("tester").unwrap(),
        cluster_router::PayloadFormat::Json,
        bytes::Bytes::from_static(b"\"marker\""),
    );
    a.send(marker).await.unwrap();
    let first = jobs::within(jobs::STEP, "marker", internal_rx.recv())
        .await
        .unwrap();
    assert_eq!(first.payload_str(), Some("\"marker\""));
    let stats = coord.stats().await.unwrap();
    assert_eq!(stats.failed, 0);
    jobs::finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_set_kind_correlation_and_format_are_ignored() {
    let nodes = router::cluster(&["ign-a", "ign-b"]).await;
    let (_sink, mut sink_rx) = client_collector(&nodes[1], "sink");
    client_echo(&nodes[1], "echo");
    let (mut ws, me) = client(&nodes[0].url(), router::SECRET, "ign-a").await;

    let forged = json!({"to": "sink@ign-b", "from": "coordinator@ign-b", "id": 9, "kind": "undeliverable",
                        "correlation_id": 5, "format": "binary", "payload": "x"});
    send_json(router::STEP, &mut ws, &forged).await;
    let got = router::within(router::STEP, "sink", sink_rx.recv())
        .await
        .unwrap();
    assert_eq!(got.kind, cluster_router::EnvelopeKind::Message);
    assert_eq!(got.format, cluster_router::PayloadFormat::Json);
    assert_eq!(got.correlation_id, None);
    assert_eq!(got.from.to_string(), me);
    assert!(
        ![5, 9].contains(&got.id.get()),
        "a client-chosen value never becomes an internal id"
    );
    assert_eq!(nodes[0].stats().client_fields_ignored, 1);

    // The client's tag still comes back as the correlation of the answer.
    let request = json!({"to": "echo@ign-b", "id": 9, "kind": "error", "payload": "hi"});
    send_json(router::STEP, &mut ws, &request).await;
    let answer = next_json(router::STEP, &mut ws).await;
    assert_eq!(answer["correlation_id"], 9);
    assert_eq!(answer["payload"], "hi");
    assert!(answer.get("kind").is_none(), "a plain answer: {answer}");
    assert_eq!(nodes[0].stats().client_fields_ignored, 2);
    router::stop_all(&nodes).await;
}
