//! A client that stops reading its socket, or talks to a node whose link is
//! down, never stalls a node's incoming traffic: other clients get their
//! replies, nodes keep exchanging envelopes. The slow client's socket is no
//! longer read once its window of unanswered envelopes is full, and after
//! the idle limit it is disconnected (close 1013) and counted.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn, Actor, BoxError, Context};
use cluster_router::{Envelope, EnvelopeKind, MemberStatus, Router};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::router::*;
use support::ws::{close_code, connect_bearer, next_json, send_json, welcome, Ws};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Window of unanswered envelopes of every client of the node under test.
const CLIENT_WINDOW: usize = 32;
/// How long a client may read nothing while answers wait.
const IDLE_LIMIT: Duration = Duration::from_secs(2);
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
        .register_client_facing(name, spawn(name, Echo(router.clone())))
        .expect("register echo");
}

/// Connects, reads the auth acknowledgement and `node`'s welcome.
async fn authenticated(url: &str, node: &str) -> (SplitSink<Ws, Message>, SplitStream<Ws>) {
    let mut ws = connect_bearer(STEP, url, SECRET).await;
    welcome(STEP, &mut ws, node).await;
    ws.split()
}

/// Floods `to` with big requests, never reading, until a send makes no
/// progress for 2 s (the node stopped reading) or `stop` is set; returns
/// how many it sent.
async fn flood(mut sink: SplitSink<Ws, Message>, to: &str, stop: Arc<AtomicBool>) -> usize {
    let text = "x".repeat(BIG);
    for id in 1..=MAX_SLOW_REQUESTS {
        if stop.load(Ordering::Acquire) {
            return id - 1;
        }
        let req = json!({"to": to, "id": id, "payload": text}).to_string();
        let send = sink.send(Message::Text(req.into()));
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(Ok(())) => {}
            _ => return id - 1,
        }
    }
    MAX_SLOW_REQUESTS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_stalls_nobody_and_is_dropped() {
    let mut cfg = fast("slow-a");
    cfg.transport.client_window = CLIENT_WINDOW;
    cfg.transport.client_idle_limit = IDLE_LIMIT;
    let nodes = cluster_of(vec![cfg, fast("slow-b")]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    register_echo(&b, "echo");
    let (sink_addr, mut sink_inbox) = collector(&a, "sink");

    // The slow client: authenticates, then floods echo@slow-b and never reads.
    let (slow_tx, mut slow_rx) = authenticated(&a.url(), "slow-a").await;
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
    let (mut fast_tx, mut fast_rx) = authenticated(&a.url(), "slow-a").await;
    for id in 1..=FAST_REQUESTS {
        send_json(
            STEP,
            &mut fast_tx,
            &json!({"to": "echo@slow-b", "id": id, "payload": {"n": id}}),
        )
        .await;
        let reply = next_json(STEP, &mut fast_rx).await;
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

    // The node stopped reading the slow client (the flooder stalls) ...
    let sent = within(STEP * 2, "flooder stalls", flooder).await.unwrap();
    assert!(sent > CLIENT_WINDOW, "only {sent} requests were sent");
    assert!(
        sent < MAX_SLOW_REQUESTS,
        "the node kept reading a client that does not read"
    );
    assert!(a.transport_stats().client_window_waits > 0);
    // ... and after the idle limit drops and counts it; the fast one stays.
    let dropped = wait_until(STEP, || a.transport_stats().slow_clients_dropped == 1).await;
    assert!(
        dropped,
        "slow client not dropped: {:?}",
        a.transport_stats()
    );
    stop.store(true, Ordering::Release);
    let code = close_code(STEP, &mut slow_rx).await;
    assert_eq!(code, Some(CloseCode::Again), "close code {code:?}");
    let one_left = wait_until(STEP, || a.transport_stats().clients_connected == 1).await;
    assert!(one_left, "{:?}", a.transport_stats());
    send_json(
        STEP,
        &mut fast_tx,
        &json!({"to": "echo@slow-b", "id": 999, "payload": 1}),
    )
    .await;
    assert_eq!(next_json(STEP, &mut fast_rx).await["correlation_id"], 999);
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
    let nodes = cluster_of(vec![cfg_a, fast("gone-b")]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let ids = [a.node_id().clone(), b.node_id().clone()];
    register_echo(&a, "local");
    within(STEP, "b stops", b.shutdown()).await;
    let suspect = wait_until(STEP, || {
        status_of(&a, &ids[1]) == Some(MemberStatus::Suspect)
    })
    .await;
    assert!(suspect, "{:?}", status_of(&a, &ids[1]));

    let (mut tx, mut rx) = authenticated(&a.url(), "gone-a").await;
    for id in 1..=20u64 {
        send_json(
            STEP,
            &mut tx,
            &json!({"to": "echo@gone-b", "id": id, "payload": id}),
        )
        .await;
    }
    send_json(
        STEP,
        &mut tx,
        &json!({"to": "local@gone-a", "id": 100, "payload": "here"}),
    )
    .await;

    // The local answer is not held up behind the envelopes waiting for b...
    let first = next_json(STEP, &mut rx).await;
    assert_eq!(first["correlation_id"], 100, "{first}");
    assert!(first["kind"].is_null(), "a plain reply: {first}");
    // ...which fail together, in order, once the outage outlasts link_wait.
    for id in 1..=20u64 {
        let error = next_json(STEP, &mut rx).await;
        assert_eq!(error["kind"], "error", "{error}");
        assert_eq!(error["correlation_id"], id, "{error}");
    }
    assert!(a.stats().dead_letters >= 20);
    stop_all(&[a]).await;
}
