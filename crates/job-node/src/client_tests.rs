//! The client against a small fake node edge.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "good-token";

/// Accepts one client: checks the bearer token and that it asks for raw
/// payloads, answers auth ok without confirming them (a node of an older
/// version), then
/// echoes each envelope back as a reply (payload wrapped in `{"echo":..}`)
/// and answers the text `bad` with an error frame.
async fn fake_node() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        #[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
        let check = |req: &Request, resp: Response| {
            if req.uri().query() != Some("payloads=raw") {
                let mut refusal = ErrorResponse::new(Some("no payloads=raw".into()));
                *refusal.status_mut() = StatusCode::BAD_REQUEST;
                return Err(refusal);
            }
            let ok = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Bearer good-token");
            if ok {
                Ok(resp)
            } else {
                let mut refusal = ErrorResponse::new(Some("invalid client token".into()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refusal)
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
            return;
        };
        ws.send(Message::Text(r#"{"auth":"ok","client_id":7}"#.into()))
            .await
            .unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let env: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if env["payload"] == "bad" {
                ws.send(Message::Text(r#"{"error":"malformed envelope"}"#.into()))
                    .await
                    .unwrap();
                continue;
            }
            if env["payload"] == "bye" {
                ws.close(None).await.unwrap();
                return;
            }
            let reply = serde_json::json!({
                "to": "client-7@node-a",
                "from": env["to"],
                "payload": serde_json::json!({ "echo": env["payload"] }).to_string(),
                "correlation_id": env["id"],
            });
            ws.send(Message::Text(reply.to_string().into()))
                .await
                .unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn round_trip() {
    let addr = fake_node().await;
    let mut client = ClusterClient::connect(&format!("ws://{addr}"), TOKEN, LIMIT)
        .await
        .unwrap();
    assert_eq!(client.client_id(), 7);
    let id = timeout(LIMIT, client.send("coordinator@node-a", r#"{"n":1}"#))
        .await
        .unwrap()
        .unwrap();
    let ClientFrame::Envelope(reply) = timeout(LIMIT, client.recv()).await.unwrap().unwrap() else {
        panic!("expected an envelope");
    };
    assert_eq!(reply.correlation_id, id);
    assert_eq!(reply.from, "coordinator@node-a");
    assert_eq!(reply.kind, "message");
    assert_eq!(reply.payload, r#"{"echo":{"n":1}}"#);

    let (mut tx, mut rx) = client.into_split();
    let second = timeout(LIMIT, tx.send("x@node-a", r#""bad""#))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, id + 1);
    let frame = timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(frame, ClientFrame::Error("malformed envelope".into()));
    timeout(LIMIT, tx.send("x@node-a", r#""bye""#))
        .await
        .unwrap()
        .unwrap();
    let err = timeout(LIMIT, rx.recv()).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn payload_must_be_json() {
    let addr = fake_node().await;
    let mut client = ClusterClient::connect(&format!("ws://{addr}"), TOKEN, LIMIT)
        .await
        .unwrap();
    let err = client.send("x@node-a", "not json").await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)));
}

#[tokio::test]
async fn wrong_token_and_bad_urls() {
    let addr = fake_node().await;
    let err = ClusterClient::connect(&format!("ws://{addr}"), "wrong", LIMIT)
        .await
        .unwrap_err();
    // A 401 is said plainly: the token (the secret) is wrong.
    assert!(matches!(err, ClientError::Refused(_)), "{err}");
    assert!(err.to_string().contains("wrong client token"), "{err}");
    let err = ClusterClient::connect("not a url", TOKEN, LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Url { .. }), "{err}");
    // Nobody listens on a freshly closed port.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = ClusterClient::connect(&format!("ws://{closed}"), TOKEN, LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Dial { .. }), "{err}");
}

#[tokio::test]
async fn silent_node_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let (_tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let err = ClusterClient::connect(&format!("ws://{addr}"), TOKEN, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
}

#[test]
fn a_built_envelope_is_the_client_json_form() {
    let mut text = envelope_head("coordinator@node \"1\"").into_bytes();
    text.extend_from_slice(br#"{"cmd":"stats"}"#);
    envelope_tail(&mut text, 42);
    let env: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(
        env,
        serde_json::json!({"to": "coordinator@node \"1\"", "from": "", "payload": {"cmd": "stats"}, "id": 42})
    );
}

#[test]
fn frames_are_read_in_place() {
    let text = r#"{"to":"client-1@n","from":"coordinator@n","payload":"{\"results\":[]}","correlation_id":7}"#;
    let FrameRef::Envelope(env) = parse_frame(text, false).unwrap() else {
        panic!("an envelope");
    };
    assert_eq!(
        (env.payload.as_ref(), env.correlation_id, env.kind()),
        (r#"{"results":[]}"#, 7, "message")
    );
    let plain = r#"{"to":"client-1@n","from":"x@n","payload":"no escapes","kind":"error"}"#;
    let FrameRef::Envelope(env) = parse_frame(plain, false).unwrap() else {
        panic!("an envelope");
    };
    assert!(matches!(
        env.payload,
        std::borrow::Cow::Borrowed("no escapes")
    ));
    assert_eq!((env.correlation_id, env.kind()), (0, "error"));
    assert!(matches!(
        parse_frame(r#"{"error":"malformed envelope"}"#, false).unwrap(),
        FrameRef::Error(e) if e == "malformed envelope"
    ));
    assert_eq!(parse_frame("[1,2]", false).unwrap_err(), "[1,2]");
}

#[test]
fn raw_payloads_are_read_in_place() {
    let read = |text: &'static str| {
        let FrameRef::Envelope(env) = parse_frame(text, true).unwrap() else {
            panic!("an envelope: {text}");
        };
        env
    };
    // A JSON value: its text, a slice of the frame (no unescaping).
    let env = read(
        r#"{"to":"client-1@n","from":"c@n","payload":{"results":[{"id":"a\"b","result":"\"x\""}]},"correlation_id":7}"#,
    );
    assert!(matches!(env.payload, Cow::Borrowed(_)));
    assert_eq!(
        (env.payload.as_ref(), env.correlation_id, env.kind()),
        (
            r#"{"results":[{"id":"a\"b","result":"\"x\""}]}"#,
            7,
            "message"
        )
    );
    // A JSON string value is JSON too: its text keeps the quotes, as the
    // string form would have given it.
    let env = read(r#"{"to":"c@n","from":"x@n","payload":"no actor","kind":"undeliverable"}"#);
    assert_eq!(
        (env.payload.as_ref(), env.kind()),
        (r#""no actor""#, "undeliverable")
    );
    // Text that is not JSON, and binary text, arrive as strings with a format.
    for format in ["text", "binary"] {
        let text =
            format!(r#"{{"to":"c@n","from":"x@n","payload":"a \"b\"","format":"{format}"}}"#);
        let text: &'static str = Box::leak(text.into_boxed_str());
        assert_eq!(read(text).payload, r#"a "b""#);
    }
    // The same frames without raw payloads: every payload is a string.
    let FrameRef::Envelope(env) = parse_frame(
        r#"{"to":"c@n","from":"x@n","payload":"\"no actor\""}"#,
        false,
    )
    .unwrap() else {
        panic!("an envelope");
    };
    assert_eq!(env.payload, r#""no actor""#);
    // A raw object where a string is due is not an envelope.
    assert!(parse_frame(r#"{"to":"c@n","from":"x@n","payload":{}}"#, false).is_err());
}

#[test]
fn the_upgrade_asks_for_raw_payloads() {
    for (url, want) in [
        ("ws://127.0.0.1:7000", "/?payloads=raw"),
        ("ws://127.0.0.1:7000/", "/?payloads=raw"),
        ("ws://h:1/edge?x=1", "/edge?x=1&payloads=raw"),
        // The user's own choice is left alone (a second one is refused).
        ("ws://h:1/?payloads=strings", "/?payloads=strings"),
        ("ws://h:1/?x=1&payloads=raw", "/?x=1&payloads=raw"),
    ] {
        let mut request = url.into_client_request().unwrap();
        ask_for_raw_payloads(&mut request).unwrap();
        assert_eq!(
            request.uri().path_and_query().unwrap().as_str(),
            want,
            "{url}"
        );
        assert_eq!(
            request.uri().host(),
            url.split("//").nth(1).unwrap().split(':').next()
        );
    }
}
