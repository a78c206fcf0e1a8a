//! A frame above `max_frame_size` closes the connection with code 1009.

use std::time::Duration;

use bytes::Bytes;
use cluster_transport::{client_token, Envelope, LinkEvent, Secret, Transport, TransportConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(10);
const LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn oversized_client_frame_is_closed_with_1009() {
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.max_frame_size = LIMIT;
    let a = timeout(T, Transport::bind(cfg)).await.unwrap().unwrap();
    let mut req = a.url().into_client_request().unwrap();
    let bearer = format!("Bearer {}", client_token(&Secret::from("k")));
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    let hello = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains(r#""auth":"ok""#));

    let big = format!(r#"{{"to":"x","payload":"{}"}}"#, "a".repeat(LIMIT * 2));
    timeout(T, ws.send(Message::text(big)))
        .await
        .unwrap()
        .unwrap();
    let code = loop {
        match timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => break frame.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::Size);
    assert_eq!(u16::from(code), 1009);
    assert_eq!(a.stats().oversize_closes, 1);
    drop(ws);
    timeout(T, a.shutdown()).await.unwrap();
}

#[tokio::test]
async fn oversized_node_frame_closes_the_link_with_1009() {
    let mut small = TransportConfig::new("node-a", "k");
    small.max_frame_size = LIMIT;
    let a = timeout(T, Transport::bind(small)).await.unwrap().unwrap();
    let b = timeout(T, Transport::bind(TransportConfig::new("node-b", "k")))
        .await
        .unwrap()
        .unwrap();
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
    let env = Envelope::binary("x", "y", Bytes::from(vec![7u8; LIMIT * 2]));
    timeout(T, b.send("node-a", env)).await.unwrap().unwrap();
    let reason = loop {
        match timeout(T, events_b.recv()).await.unwrap().unwrap() {
            LinkEvent::Down { peer, reason } if peer == "node-a" => break reason,
            _ => continue,
        }
    };
    assert!(reason.contains("1009"), "b learns the close code: {reason}");
    assert_eq!(a.stats().oversize_closes, 1);
    timeout(T, a.shutdown()).await.unwrap();
    timeout(T, b.shutdown()).await.unwrap();
}
