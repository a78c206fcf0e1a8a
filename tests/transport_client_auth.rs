//! External clients authenticate by bearer header or first frame; an
//! unauthenticated client is refused.

use std::time::Duration;

use cluster_transport::{
    client_token, Envelope, LinkEvent, Secret, Source, Transport, TransportConfig,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const T: Duration = Duration::from_secs(10);
type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn node() -> Transport {
    timeout(T, Transport::bind(TransportConfig::new("node-a", "k")))
        .await
        .unwrap()
        .unwrap()
}

async fn next_json(ws: &mut Client) -> serde_json::Value {
    let msg = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

async fn expect_close(ws: &mut Client, code: CloseCode) {
    loop {
        match timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => return assert_eq!(f.code, code),
            Some(Ok(_)) => continue,
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
}

/// Sends an envelope, checks delivery, answers it, checks the client gets it.
async fn round_trip(t: &Transport, ws: &mut Client, id: u64) {
    let mut rx = t.take_incoming().unwrap();
    let req = r#"{"to":"worker@node-a","from":"","payload":{"n":1},"id":5}"#;
    timeout(T, ws.send(Message::text(req)))
        .await
        .unwrap()
        .unwrap();
    let inc = timeout(T, rx.recv()).await.unwrap().unwrap();
    let Source::Client(client) = inc.source else {
        panic!("from a client")
    };
    assert_eq!(client.get(), id);
    assert_eq!(&inc.envelopes[0].payload[..], br#"{"n":1}"#);
    let mut reply = Envelope::json("client", "worker@node-a", r#"{"result":2}"#);
    reply.correlation_id = 5;
    timeout(T, t.send_to_client(client, reply))
        .await
        .unwrap()
        .unwrap();
    let got = next_json(ws).await;
    assert_eq!(got["payload"], r#"{"result":2}"#);
    assert_eq!(got["correlation_id"], 5);
    assert_eq!(got["from"], "worker@node-a");
}

#[tokio::test]
async fn bearer_header_authenticates() {
    let t = node().await;
    let mut events = t.subscribe();
    let mut req = t.url().into_client_request().unwrap();
    let bearer = format!("Bearer {}", client_token(&Secret::from("k")));
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["auth"], "ok");
    let id = hello["client_id"].as_u64().unwrap();
    let connected = timeout(T, events.recv()).await.unwrap().unwrap();
    assert!(matches!(connected, LinkEvent::ClientConnected { id: c } if c.get() == id));
    round_trip(&t, &mut ws, id).await;
    drop(ws);
    let gone = timeout(T, events.recv()).await.unwrap().unwrap();
    assert!(matches!(gone, LinkEvent::ClientDisconnected { id: c } if c.get() == id));
    timeout(T, t.shutdown()).await.unwrap();
}

#[tokio::test]
async fn first_frame_authenticates() {
    let t = node().await;
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(t.url()))
        .await
        .unwrap()
        .unwrap();
    let auth = format!(r#"{{"auth":"{}"}}"#, client_token(&Secret::from("k")));
    timeout(T, ws.send(Message::text(auth)))
        .await
        .unwrap()
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["auth"], "ok");
    round_trip(&t, &mut ws, hello["client_id"].as_u64().unwrap()).await;
    timeout(T, t.shutdown()).await.unwrap();
}

#[tokio::test]
async fn unauthenticated_envelope_is_refused_with_1008() {
    let t = node().await;
    let mut rx = t.take_incoming().unwrap();
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(t.url()))
        .await
        .unwrap()
        .unwrap();
    let env = r#"{"to":"worker@node-a","from":"","payload":"x"}"#;
    timeout(T, ws.send(Message::text(env)))
        .await
        .unwrap()
        .unwrap();
    assert!(next_json(&mut ws).await["error"].is_string());
    expect_close(&mut ws, CloseCode::Policy).await;
    assert!(rx.try_recv().is_err(), "nothing delivered");
    assert_eq!(t.stats().auth_failures, 1);
    timeout(T, t.shutdown()).await.unwrap();
}

#[tokio::test]
async fn wrong_tokens_are_refused() {
    let t = node().await;
    let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(t.url()))
        .await
        .unwrap()
        .unwrap();
    let wrong = format!(r#"{{"auth":"{}"}}"#, client_token(&Secret::from("not-k")));
    timeout(T, ws.send(Message::text(wrong)))
        .await
        .unwrap()
        .unwrap();
    assert!(next_json(&mut ws).await["error"].is_string());
    expect_close(&mut ws, CloseCode::Policy).await;

    let mut req = t.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer 00".parse().unwrap());
    let refused = timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap();
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    assert_eq!(t.stats().auth_failures, 2);
    timeout(T, t.shutdown()).await.unwrap();
}
