//! A client that stops reading its socket, or talks to a node whose link is
//! down, never stalls a node's incoming traffic: other clients get their
//! replies, nodes keep exchanging envelopes, and the slow client is
//! disconnected (close 1013) and counted.

mod router_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn, Actor, BoxError, Context};
use cluster_router::{client_token, Envelope, EnvelopeKind, MemberStatus, Router, Secret};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use router_support::*;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Outbound queue of every client of the node under test.
const CLIENT_QUEUE: usize = 32;
/// Payload of each request of the slow client (its replies fill the socket).
const BIG: usize = 8 * 1024;
/// Most requests the slow client sends before giving up (far more than the
/// socket buffers hold).
const MAX_SLOW_REQUESTS: usize = 20_000;
/// Requests of the well-behaved client.
const FAST_REQUESTS: u64 = 200;
/// Envelopes node b sends to a collector on node a meanwhile.
const NODE_ENVELOPES: usize = 2_000;

/// Answers every Message with its payload (never answers an Undeliverable
/// or Error, as a real actor should not).
struct Echo(Router);

#[async_trait::async_trait]
impl Actor for Echo {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.kind == EnvelopeKind::Message {
            self.0.send(env.reply(env.payload.clone())).await?;
        }
        Ok(())
    }
}

fn register_echo(router: &Router, name: &str) {
    router
        .register(name, spawn(name, Echo(router.clone())))
        .expect("register echo");
}

async fn connect(url: &str) -> Ws {
    let mut request = url.into_client_request().unwrap();
    let token = client_token(&Secret::from(SECRET));
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    request.headers_mut().insert("Authorization", value);
    let (ws, _) = within(
        STEP,
        "client connect",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("upgrade accepted");
    ws
}

/// The next text frame, parsed.
async fn next_json(ws: &mut SplitStream<Ws>) -> Value {
    loop {
        let msg = within(STEP, "client frame", ws.next())
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

/// Connects, reads the auth acknowledgement and the welcome.
async fn authenticated(url: &str) -> (SplitSink<Ws, Message>, SplitStream<Ws>) {
    let (sink, mut stream) = connect(url).await.split();
    let ack = next_json(&mut stream).await;
    assert_eq!(ack["auth"], "ok", "{ack}");
    let welcome = next_json(&mut stream).await;
    assert_eq!(
        welcome["from"].as_str().map(|f| f.starts_with("system@")),
        Some(true)
    );
    (sink, stream)
}

async fn send_json(sink: &mut SplitSink<Ws, Message>, value: Value) {
    within(
        STEP,
        "client send",
        sink.send(Message::Text(value.to_string().into())),
    )
    .await
    .expect("client send");
}

/// Floods `to` with big requests, never reading, until the socket refuses
/// (the node dropped the client) or `stop` is set; returns how many it sent.
async fn flood(mut sink: SplitSink<Ws, Message>, to: &str, stop: Arc<AtomicBool>) -> usize {
    let text = "x".repeat(BIG);
    for id in 1..=MAX_SLOW_REQUESTS {
        if stop.load(Ordering::Acquire) {
            return id - 1;
        }
        let req = json!({"to": to, "id": id, "payload": text}).to_string();
        match tokio::time::timeout(STEP, sink.send(Message::Text(req.into()))).await {
            Ok(Ok(())) => {}
            _ => return id - 1,
        }
    }
    MAX_SLOW_REQUESTS
}

/// Reads what the dropped client had received until its socket ends;
/// returns the close code, if a close frame made it through.
async fn drain_until_closed(mut stream: SplitStream<Ws>) -> Option<CloseCode> {
    loop {
        match within(STEP, "dropped client's socket ends", stream.next()).await {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_stalls_nobody_and_is_dropped() {
    let mut cfg = fast("slow-a");
    cfg.transport.client_queue = CLIENT_QUEUE;
    let a = within(STEP, "a starts", Router::start(cfg)).await.unwrap();
    let b = within(
        STEP,
        "b starts",
        Router::start(fast("slow-b").seeds([a.url()])),
    )
    .await
    .unwrap();
    let ids = [a.node_id().clone(), b.node_id().clone()];
    let both_up = wait_until(STEP, || {
        sees_up(&a, &[&ids[0], &ids[1]]) && sees_up(&b, &[&ids[0], &ids[1]])
    })
    .await;
    assert!(both_up, "the two nodes did not converge");
    register_echo(&b, "echo");
    let (sink_addr, mut sink_inbox) = collector(&a, "sink");

    // The slow client: authenticates, then floods echo@slow-b and never reads.
    let (slow_tx, slow_rx) = authenticated(&a.url()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = tokio::spawn(flood(slow_tx, "echo@slow-b", Arc::clone(&stop)));

    // Meanwhile node b sends to an actor on node a...
    let sender = b.clone();
    let from = b.addr("pusher").unwrap();
    let pushed = tokio::spawn(async move {
        for i in 0..NODE_ENVELOPES {
            let env = Envelope::json(sink_addr.clone(), from.clone(), &json!({ "n": i })).unwrap();
            within(STEP, "b sends to a", sender.send(env))
                .await
                .unwrap();
        }
    });
    // ...and a well-behaved client on node a gets every reply, in order.
    let (mut fast_tx, mut fast_rx) = authenticated(&a.url()).await;
    for id in 1..=FAST_REQUESTS {
        send_json(
            &mut fast_tx,
            json!({"to": "echo@slow-b", "id": id, "payload": {"n": id}}),
        )
        .await;
        let reply = next_json(&mut fast_rx).await;
        assert!(reply["kind"].is_null(), "a plain reply: {reply}");
        assert_eq!(reply["correlation_id"], id, "{reply}");
    }
    within(STEP, "b's sends complete", pushed).await.unwrap();
    for i in 0..NODE_ENVELOPES {
        let env = within(STEP, "a's collector receives", sink_inbox.recv())
            .await
            .unwrap();
        let n: Value = env.payload_json().unwrap();
        assert_eq!(n["n"], i, "order kept");
    }

    // The slow client is dropped and counted; the fast one stays connected.
    let dropped = wait_until(STEP, || a.transport_stats().slow_clients_dropped == 1).await;
    assert!(
        dropped,
        "slow client not dropped: {:?}",
        a.transport_stats()
    );
    stop.store(true, Ordering::Release);
    let sent = within(STEP, "flooder ends", flooder).await.unwrap();
    assert!(sent > CLIENT_QUEUE, "only {sent} requests were sent");
    let code = drain_until_closed(slow_rx).await;
    assert!(
        code.is_none() || code == Some(CloseCode::Again),
        "close code {code:?}"
    );
    let one_left = wait_until(STEP, || a.transport_stats().clients_connected == 1).await;
    assert!(one_left, "{:?}", a.transport_stats());
    send_json(
        &mut fast_tx,
        json!({"to": "echo@slow-b", "id": 999, "payload": 1}),
    )
    .await;
    assert_eq!(next_json(&mut fast_rx).await["correlation_id"], 999);
    stop_all(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_for_a_node_without_a_link_wait_aside() {
    // Slow failure detection: node b stays Suspect (reachable) after it
    // vanishes, so client envelopes for it wait for the link to come back.
    let mut cfg_a = fast("gone-a").timing(
        Duration::from_millis(100),
        Duration::from_secs(20),
        Duration::from_secs(40),
    );
    cfg_a.link_wait = Duration::from_millis(800);
    let a = within(STEP, "a starts", Router::start(cfg_a))
        .await
        .unwrap();
    let b = within(
        STEP,
        "b starts",
        Router::start(fast("gone-b").seeds([a.url()])),
    )
    .await
    .unwrap();
    let ids = [a.node_id().clone(), b.node_id().clone()];
    assert!(wait_until(STEP, || sees_up(&a, &[&ids[0], &ids[1]])).await);
    register_echo(&a, "local");
    within(STEP, "b stops", b.shutdown()).await;
    let suspect = wait_until(STEP, || {
        status_of(&a, &ids[1]) == Some(MemberStatus::Suspect)
    })
    .await;
    assert!(suspect, "{:?}", status_of(&a, &ids[1]));

    let (mut tx, mut rx) = authenticated(&a.url()).await;
    for id in 1..=20u64 {
        send_json(
            &mut tx,
            json!({"to": "echo@gone-b", "id": id, "payload": id}),
        )
        .await;
    }
    send_json(
        &mut tx,
        json!({"to": "local@gone-a", "id": 100, "payload": "here"}),
    )
    .await;

    // The local answer is not held up behind the envelopes waiting for b...
    let first = next_json(&mut rx).await;
    assert_eq!(first["correlation_id"], 100, "{first}");
    assert!(first["kind"].is_null(), "a plain reply: {first}");
    // ...which fail together, in order, once the outage outlasts link_wait.
    for id in 1..=20u64 {
        let error = next_json(&mut rx).await;
        assert_eq!(error["kind"], "error", "{error}");
        assert_eq!(error["correlation_id"], id, "{error}");
    }
    assert!(a.stats().dead_letters >= 20);
    stop_all(&[a]).await;
}
