//! A raw WebSocket client (tokio-tungstenite, not the project's transport)
//! for the tests of external clients: connect, authenticate, JSON frames.
//! Every helper bounds each await by the `limit` it is given.
//!
//! It is deliberately *not* the project's client library (job-node's
//! `ClusterClient` / `Session` / `stream_jobs`): these tests pin the wire
//! form itself (exact JSON fields, forged fields, binary and oversized
//! frames, close codes) as a client written in any language would see it,
//! which a library that hides the wire cannot express.

use std::fmt::Debug;
use std::time::Duration;

use cluster_router::{client_token, Secret};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::within;

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The client token for `secret`.
pub fn token(secret: &str) -> String {
    client_token(&Secret::from(secret))
}

/// An upgrade request to `url` carrying `Authorization: Bearer <token>`.
pub fn bearer_request(url: &str, token: &str) -> Request {
    let mut request = url.into_client_request().unwrap();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    request.headers_mut().insert("Authorization", value);
    request
}

/// Connects with `request` (a URL or a [`Request`]); the upgrade must be accepted.
pub async fn connect<R>(limit: Duration, request: R) -> Ws
where
    R: IntoClientRequest + Unpin,
{
    let (ws, _) = within(
        limit,
        "client connect",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("upgrade accepted");
    ws
}

/// Connects to `url` authenticated by a bearer header for `secret`.
pub async fn connect_bearer(limit: Duration, url: &str, secret: &str) -> Ws {
    connect(limit, bearer_request(url, &token(secret))).await
}

/// Sends one frame.
pub async fn send<S>(limit: Duration, ws: &mut S, msg: Message)
where
    S: Sink<Message> + Unpin,
    S::Error: Debug,
{
    within(limit, "client send", ws.send(msg))
        .await
        .expect("client send");
}

/// Sends `value` as a text frame.
pub async fn send_json<S>(limit: Duration, ws: &mut S, value: &Value)
where
    S: Sink<Message> + Unpin,
    S::Error: Debug,
{
    send(limit, ws, Message::Text(value.to_string().into())).await;
}

/// Sends the first-frame authentication `{"auth": <token>}` for `secret`.
pub async fn send_auth<S>(limit: Duration, ws: &mut S, secret: &str)
where
    S: Sink<Message> + Unpin,
    S::Error: Debug,
{
    send_json(limit, ws, &serde_json::json!({ "auth": token(secret) })).await;
}

/// The next text frame, parsed (pings and pongs are skipped; any other
/// frame fails the test).
pub async fn next_json<S>(limit: Duration, ws: &mut S) -> Value
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        let msg = within(limit, "client frame", ws.next())
            .await
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads the authentication acknowledgement, which must say `ok`.
pub async fn auth_ok<S>(limit: Duration, ws: &mut S) -> Value
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let ack = next_json(limit, ws).await;
    assert_eq!(ack["auth"], "ok", "{ack}");
    ack
}

/// Reads the auth acknowledgement and the router's welcome from
/// `system@<node>`; returns the client's address (`client-…@<node>`).
pub async fn welcome<S>(limit: Duration, ws: &mut S, node: &str) -> String
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    auth_ok(limit, ws).await;
    let welcome = next_json(limit, ws).await;
    assert_eq!(welcome["from"], format!("system@{node}"));
    let payload: Value = serde_json::from_str(welcome["payload"].as_str().unwrap()).unwrap();
    let addr = payload["welcome"].as_str().unwrap().to_owned();
    assert_eq!(welcome["to"], addr.as_str());
    assert!(
        addr.starts_with("client-") && addr.ends_with(&format!("@{node}")),
        "{addr}"
    );
    addr
}

/// Reads (each frame within `limit`) until the socket closes; returns the
/// close code, or `None` when it ended without one.
pub async fn close_code<S>(limit: Duration, ws: &mut S) -> Option<CloseCode>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        match within(limit, "socket closes", ws.next()).await {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}
