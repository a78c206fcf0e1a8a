//! External clients authenticate by bearer header or first frame; an
//! unauthenticated client is refused.

mod support;

use cluster_transport::{ClientId, Incoming, LinkEvent, Transport};
use support::transport::{node, stop, T};
use support::ws::{
    auth_ok, bearer_request, close_code, connect, connect_bearer, next_json, send, send_auth, Ws,
};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// The next incoming frame, which must be a client's text.
async fn client_text(rx: &mut tokio::sync::mpsc::Receiver<Incoming>) -> (ClientId, String) {
    match timeout(T, rx.recv()).await.unwrap().unwrap() {
        Incoming::Client { id, text } => (id, String::from_utf8(text.to_vec()).unwrap()),
        other => panic!("expected a client frame, got {other:?}"),
    }
}

/// Sends a frame, checks delivery, answers it, checks the client gets it.
async fn round_trip(t: &Transport, ws: &mut Ws, id: u64) {
    let mut rx = t.take_incoming().unwrap();
    let req = r#"{"to":"worker@node-a","from":"","payload":{"n":1},"id":5}"#;
    send(T, ws, Message::text(req)).await;
    let (client, text) = client_text(&mut rx).await;
    assert_eq!(client.get(), id);
    assert_eq!(text, req, "client text is opaque to the transport");
    let reply = r#"{"answer":2}"#.to_owned();
    t.try_send_to_client(client, reply).unwrap();
    let got = next_json(T, ws).await;
    assert_eq!(got["answer"], 2);
}

#[tokio::test]
async fn bearer_header_authenticates() {
    let t = node("node-a", "k").await;
    let mut events = t.subscribe();
    let mut ws = connect_bearer(T, &t.url(), "k").await;
    let hello = auth_ok(T, &mut ws).await;
    let id = hello["client_id"].as_u64().unwrap();
    let connected = timeout(T, events.recv()).await.unwrap().unwrap();
    assert!(matches!(connected, LinkEvent::ClientConnected { id: c } if c.get() == id));
    round_trip(&t, &mut ws, id).await;
    drop(ws);
    let gone = timeout(T, events.recv()).await.unwrap().unwrap();
    assert!(matches!(gone, LinkEvent::ClientDisconnected { id: c } if c.get() == id));
    stop(&[&t]).await;
}

#[tokio::test]
async fn first_frame_authenticates() {
    let t = node("node-a", "k").await;
    let mut ws = connect(T, t.url()).await;
    send_auth(T, &mut ws, "k").await;
    let hello = auth_ok(T, &mut ws).await;
    round_trip(&t, &mut ws, hello["client_id"].as_u64().unwrap()).await;
    stop(&[&t]).await;
}

#[tokio::test]
async fn unauthenticated_envelope_is_refused_with_1008() {
    let t = node("node-a", "k").await;
    let mut rx = t.take_incoming().unwrap();
    let mut ws = connect(T, t.url()).await;
    let env = r#"{"to":"worker@node-a","from":"","payload":"x"}"#;
    send(T, &mut ws, Message::text(env)).await;
    assert!(next_json(T, &mut ws).await["error"].is_string());
    assert_eq!(close_code(T, &mut ws).await, Some(CloseCode::Policy));
    assert_eq!(t.stats().auth_failures, 1);
    // A marker from an authenticated client, sent after the refusal: it
    // must be the first thing delivered (had the refused frame been
    // delivered, it would have come first).
    let mut good = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut good).await;
    let marker = r#"{"to":"worker@node-a","payload":"marker"}"#;
    send(T, &mut good, Message::text(marker)).await;
    assert_eq!(
        client_text(&mut rx).await.1,
        marker,
        "nothing else delivered"
    );
    stop(&[&t]).await;
}

#[tokio::test]
async fn wrong_tokens_are_refused() {
    let t = node("node-a", "k").await;
    let mut ws = connect(T, t.url()).await;
    send_auth(T, &mut ws, "not-k").await;
    assert!(next_json(T, &mut ws).await["error"].is_string());
    assert_eq!(close_code(T, &mut ws).await, Some(CloseCode::Policy));

    let req = bearer_request(&t.url(), "00");
    let refused = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap();
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    assert_eq!(t.stats().auth_failures, 2);
    stop(&[&t]).await;
}

/// A node shutting down (after a drain) sends what is already queued for
/// a client before its close frame: results are not lost to the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_frames_reach_the_client_before_the_shutdown_close() {
    let t = node("node-a", "k").await;
    let mut rx = t.take_incoming().unwrap();
    let mut ws = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut ws).await;
    send(
        T,
        &mut ws,
        Message::text(r#"{"to":"worker@node-a","payload":1}"#),
    )
    .await;
    let (client, _) = client_text(&mut rx).await;
    // More than the socket buffers hold while the client does not read:
    // the writer is stuck mid-queue when the shutdown's close is queued.
    const FRAMES: usize = 300;
    let pad = "x".repeat(64 * 1024);
    for n in 0..FRAMES {
        t.try_send_to_client(client, format!(r#"{{"n":{n},"pad":"{pad}"}}"#))
            .unwrap();
    }
    let url = t.url().to_owned();
    let shutdown = tokio::spawn({
        let t = t.clone();
        async move { t.shutdown().await }
    });
    // The shutdown has begun once the listener refuses connections.
    let addr = url.trim_start_matches("ws://").to_owned();
    timeout(T, async {
        while tokio::net::TcpStream::connect(&addr).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the listener closes");
    for n in 0..FRAMES {
        let got = next_json(T, &mut ws).await;
        assert_eq!(got["n"], n, "frame {n} lost to the close");
    }
    assert_eq!(close_code(T, &mut ws).await, Some(CloseCode::Away));
    timeout(T, shutdown).await.unwrap().unwrap();
}
