//! A frame above `max_frame_size` closes the connection with code 1009.

mod support;

use bytes::Bytes;
use cluster_transport::{Envelope, LinkEvent, TransportConfig};
use support::transport::{bind, node, stop, T};
use support::ws::{auth_ok, close_code, connect_bearer, send};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn oversized_client_frame_is_closed_with_1009() {
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.max_frame_size = LIMIT;
    let a = bind(cfg).await;
    let mut ws = connect_bearer(T, &a.url(), "k").await;
    auth_ok(T, &mut ws).await;

    let big = format!(r#"{{"to":"x","payload":"{}"}}"#, "a".repeat(LIMIT * 2));
    send(T, &mut ws, Message::text(big)).await;
    let code = close_code(T, &mut ws).await.expect("a close frame");
    assert_eq!(code, CloseCode::Size);
    assert_eq!(u16::from(code), 1009);
    assert_eq!(a.stats().oversize_closes, 1);
    drop(ws);
    stop(&[&a]).await;
}

#[tokio::test]
async fn oversized_node_frame_closes_the_link_with_1009() {
    let mut small = TransportConfig::new("node-a", "k");
    small.max_frame_size = LIMIT;
    let a = bind(small).await;
    let b = node("node-b", "k").await;
    let mut events_b = b.subscribe();
    timeout(T, b.connect(&a.url())).await.unwrap().unwrap();
    let up = timeout(T, events_b.recv()).await.unwrap().unwrap();
    assert_eq!(
        up,
        LinkEvent::Up {
            peer: "node-a".into()
        }
    );

    // b allows 16 MiB, a only 64 KiB: b's frame is above a's limit.
    let env = Envelope::new(&b"x"[..], Bytes::from(vec![7u8; LIMIT * 2]));
    timeout(T, b.send("node-a", env)).await.unwrap().unwrap();
    let reason = loop {
        match timeout(T, events_b.recv()).await.unwrap().unwrap() {
            LinkEvent::Down { peer, reason } if peer == "node-a" => break reason,
            _ => continue,
        }
    };
    assert!(reason.contains("1009"), "b learns the close code: {reason}");
    assert_eq!(a.stats().oversize_closes, 1);
    stop(&[&a, &b]).await;
}
