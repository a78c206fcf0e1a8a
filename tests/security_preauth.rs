//! Bounded cost before authentication: a flood of unauthenticated
//! connections is capped (the rest answered 503) and costs little memory,
//! an oversized first frame is closed with 1009, clients beyond the client
//! limit are refused with 1013, and a client that pipelines its first
//! envelope behind its auth frame loses nothing when the connection is
//! re-wrapped with the authenticated limits. A client connected before the
//! flood is served throughout.

mod support;

use cluster_transport::{ClientId, Incoming, LinkEvent, Transport, TransportConfig};
use futures_util::SinkExt;
use support::transport::{bind, stop, T};
use support::wait_until;
use support::ws::{auth_ok, close_code, connect, connect_bearer, next_json, send, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The next client text frame the transport delivers.
async fn next_client_text(inbox: &mut mpsc::Receiver<Incoming>) -> String {
    loop {
        match tokio::time::timeout(T, inbox.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Incoming::Client { text, .. } => return String::from_utf8(text.to_vec()).unwrap(),
            _ => continue,
        }
    }
}

/// A connected client (`id` on the transport) exchanges one frame each way.
async fn round_trip(
    t: &Transport,
    inbox: &mut mpsc::Receiver<Incoming>,
    ws: &mut support::ws::Ws,
    id: ClientId,
    n: u32,
) {
    send(T, ws, Message::text(format!(r#"{{"n":{n}}}"#))).await;
    let got = next_client_text(inbox).await;
    assert_eq!(got, format!(r#"{{"n":{n}}}"#));
    t.try_send_to_client(id, format!(r#"{{"echo":{n}}}"#))
        .unwrap();
    assert_eq!(next_json(T, ws).await["echo"], n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_connections_is_capped_and_cheap() {
    const FLOOD: usize = 2_000;
    let t = bind(TransportConfig::new("node-a", "k")).await;
    let mut inbox = t.take_incoming().unwrap();
    let mut events = t.subscribe();
    let mut good = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut good).await;
    let id = loop {
        if let LinkEvent::ClientConnected { id } = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            break id;
        }
    };
    round_trip(&t, &mut inbox, &mut good, id, 0).await;

    let before = rss();
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut s = tokio::time::timeout(T, TcpStream::connect(t.local_addr()))
            .await
            .unwrap()
            .unwrap();
        // Half an upgrade request, then silence.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        flood.push(s);
    }
    let cap = 256;
    assert!(
        wait_until(T, || {
            let s = t.stats();
            s.unauthenticated == cap && s.busy_refusals >= (FLOOD as u64 - cap)
        })
        .await,
        "{:?}",
        t.stats()
    );
    let growth = rss().saturating_sub(before);
    println!(
        "{FLOOD} unauthenticated connections: {cap} held, {} refused; RSS growth {:.1} MB ({} B per connection)",
        t.stats().busy_refusals,
        growth as f64 / 1e6,
        growth / FLOOD as u64
    );
    assert!(growth < 64 * 1024 * 1024, "RSS grew by {growth} bytes");

    // Further connections are refused with a plain 503.
    let mut refused = tokio::time::timeout(T, TcpStream::connect(t.local_addr()))
        .await
        .unwrap()
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(T, refused.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("too many unauthenticated connections (limit 256)"),
        "{answer}"
    );

    // The client connected before the flood is still served.
    round_trip(&t, &mut inbox, &mut good, id, 1).await;
    drop(flood);
    assert!(
        wait_until(T, || t.stats().unauthenticated == 0).await,
        "{:?}",
        t.stats()
    );
    // And once the flood is gone, new clients get in again.
    let mut late = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut late).await;
    stop(&[&t]).await;
}

#[tokio::test]
async fn an_oversized_first_frame_is_closed_with_1009() {
    let t = bind(TransportConfig::new("node-a", "k")).await;
    for big in [
        Message::binary(vec![0u8; 100 * 1024]),
        Message::text("x".repeat(100 * 1024)),
    ] {
        let mut ws = connect(T, t.url()).await;
        send(T, &mut ws, big).await;
        assert_eq!(close_code(T, &mut ws).await, Some(CloseCode::Size));
    }
    assert_eq!(t.stats().oversize_closes, 2);
    // Below the limit, a frame that is not the auth message is refused as before.
    let mut ws = connect(T, t.url()).await;
    send(
        T,
        &mut ws,
        Message::text(format!(r#"{{"x":"{}"}}"#, "y".repeat(60 * 1024))),
    )
    .await;
    let refusal = next_json(T, &mut ws).await;
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("not authenticated"),
        "{refusal}"
    );
    assert_eq!(close_code(T, &mut ws).await, Some(CloseCode::Policy));
    // Authenticated clients get the full frame size.
    let mut ok = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut ok).await;
    let mut inbox = t.take_incoming().unwrap();
    let payload = "z".repeat(1024 * 1024);
    send(T, &mut ok, Message::text(payload.clone())).await;
    assert_eq!(next_client_text(&mut inbox).await.len(), payload.len());
    stop(&[&t]).await;
}

#[tokio::test]
async fn clients_beyond_the_limit_are_refused_with_1013() {
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.max_clients = 3;
    let t = bind(cfg).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = connect_bearer(T, &t.url(), "k").await;
        auth_ok(T, &mut ws).await;
        clients.push(ws);
    }
    let mut extra = connect_bearer(T, &t.url(), "k").await;
    let refusal = next_json(T, &mut extra).await;
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("too many clients on this node (limit 3)"),
        "{refusal}"
    );
    assert_eq!(close_code(T, &mut extra).await, Some(CloseCode::Again));
    assert_eq!(t.stats().busy_refusals, 1);
    assert_eq!(t.stats().clients_connected, 3);
    // One leaves: there is room again.
    let mut gone = clients.pop().unwrap();
    gone.close(None).await.unwrap();
    assert!(wait_until(T, || t.stats().clients_connected == 2).await);
    let mut again = connect_bearer(T, &t.url(), "k").await;
    auth_ok(T, &mut again).await;
    stop(&[&t]).await;
}

#[tokio::test]
async fn an_envelope_pipelined_behind_the_auth_frame_is_not_lost() {
    let t = bind(TransportConfig::new("node-a", "k")).await;
    let mut inbox = t.take_incoming().unwrap();
    for round in 0..20 {
        let mut ws = connect(T, t.url()).await;
        // Both frames in one write, before the auth reply could arrive.
        let auth = serde_json::json!({ "auth": token("k") }).to_string();
        ws.feed(Message::text(auth)).await.unwrap();
        ws.feed(Message::text(format!(r#"{{"round":{round}}}"#)))
            .await
            .unwrap();
        ws.flush().await.unwrap();
        auth_ok(T, &mut ws).await;
        assert_eq!(
            next_client_text(&mut inbox).await,
            format!(r#"{{"round":{round}}}"#)
        );
    }
    stop(&[&t]).await;
}
