//! Incoming traffic never waits behind one full mailbox: a stuck actor does
//! not delay the others, and two nodes whose actors answer each other
//! through full mailboxes and full links cannot deadlock (a full overflow
//! queue bounces to the sender instead of pausing the links).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions};
use bytes::Bytes;
use cluster_router::{
    ActorAddr, Envelope, EnvelopeKind, MessageId, PayloadFormat, Router, RouterConfig,
};
use support::router::*;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

fn small(capacity: usize) -> SpawnOptions {
    SpawnOptions::default().capacity(capacity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_actor_does_not_delay_the_others_and_keeps_its_order() {
    let nodes = cluster(&["s-1", "s-2"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let gate = Arc::new(Semaphore::new(0));
    let (stuck_tx, mut stuck_rx) = mpsc::unbounded_channel();
    let stuck = Gated {
        gate: gate.clone(),
        out: stuck_tx,
    };
    let stuck = b
        .register("stuck", spawn_with("stuck", stuck, small(2)).unwrap())
        .unwrap();
    let (other, mut other_rx) = collector(b, "other");
    let from = a.addr("driver").unwrap();

    const STUCK: u64 = 500;
    for n in 0..STUCK {
        let env = Envelope::new(
            stuck.clone(),
            from.clone(),
            PayloadFormat::Json,
            n.to_string().into(),
        );
        within(STEP, "send to stuck", a.send(env)).await.unwrap();
    }
    let env = Envelope::new(
        other,
        from.clone(),
        PayloadFormat::Json,
        Bytes::from_static(b"\"hi\""),
    );
    within(STEP, "send to other", a.send(env)).await.unwrap();
    // Sent after 500 envelopes for a stuck actor, yet delivered.
    let got = within(STEP, "other's message", other_rx.recv())
        .await
        .unwrap();
    assert_eq!(&got.payload[..], b"\"hi\"");

    gate.add_permits(STUCK as usize);
    for n in 0..STUCK {
        let env = within(STEP, "stuck's messages", stuck_rx.recv())
            .await
            .unwrap();
        assert_eq!(env.payload_str(), Some(n.to_string().as_str()), "in order");
    }
    stop_all(&nodes).await;
}

/// Each flood: this many envelopes of [`PAYLOAD`] bytes, each way.
const FLOOD: u64 = 20_000;
/// Payload size of a flood envelope (its sequence number, then filler).
const PAYLOAD: usize = 2 * 1024;
/// Bound on each flood phase: far above what it takes on 2 loaded cores.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);

/// Forwards every message to `sink@<other node>`, awaiting `Router::send`
/// inside the handler (like a worker pool answering its coordinator). It
/// starts once `open` is true and then takes `pause` per message.
struct Relay {
    router: Router,
    sink: ActorAddr,
    open: watch::Receiver<bool>,
    pause: Duration,
}

#[async_trait::async_trait]
impl Actor for Relay {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.open.wait_for(|open| *open).await?;
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        let me = self.router.addr("relay")?;
        let out = Envelope::new(self.sink.clone(), me, env.format, env.payload);
        self.router.send(out).await?;
        Ok(())
    }
}

/// Reports the sequence number of every envelope, in arrival order.
struct OrderedSink {
    arrived: mpsc::UnboundedSender<u64>,
}

#[async_trait::async_trait]
impl Actor for OrderedSink {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.arrived.send(seq_of(&env));
        Ok(())
    }
}

fn seq_of(env: &Envelope) -> u64 {
    let head: [u8; 8] = env.payload[..8].try_into().expect("sequence number");
    u64::from_be_bytes(head)
}

fn roomy(capacity: usize) -> SpawnOptions {
    SpawnOptions::default().capacity(capacity)
}

/// Small link queues, so that floods fill them quickly, and overflow queues
/// of `backlog_limit` envelopes. The failure detector keeps the fast timings
/// (Suspect after 300 ms, Down after 600 ms): gossip heartbeats are skipped
/// while a flooded link is full, but the flood's own batches count as signs
/// of life, so neither node may declare the other Down.
fn tight(name: &str, backlog_limit: usize) -> RouterConfig {
    let mut cfg = fast(name);
    cfg.transport.outbound_queue = 16;
    // A link that drops loses what was in it (by design: the coordinator
    // re-places its attempts), and that would break this test's
    // accounting. On two starved cores a 100 ms link heartbeat was missed
    // (one lost link each way in about one run in ten at load 11), so the
    // links here get a generous one: the test is about bounces, not about
    // detecting dead links.
    cfg.transport.heartbeat_interval = Duration::from_secs(2);
    cfg.backlog_limit = backlog_limit;
    cfg
}

/// One node of a flood pair: its relay (fed by the other node's flood), the
/// sink its peer's relay forwards to, and the driver collecting bounces.
struct Side {
    router: Router,
    relay: ActorAddr,
    open: watch::Sender<bool>,
    arrived: mpsc::UnboundedReceiver<u64>,
    bounced: mpsc::UnboundedReceiver<Envelope>,
}

fn side(here: &Router, there: &Router, open: bool, pause: Duration) -> Side {
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let sink = OrderedSink {
        arrived: arrived_tx,
    };
    here.register("sink", spawn_with("sink", sink, roomy(1 << 16)).unwrap())
        .unwrap();
    let (bounced_tx, bounced) = mpsc::unbounded_channel();
    here.register(
        "driver",
        spawn_with("driver", Collector(bounced_tx), roomy(1 << 16)).unwrap(),
    )
    .unwrap();
    let (open, open_rx) = watch::channel(open);
    let relay = Relay {
        router: here.clone(),
        sink: there.addr("sink").unwrap(),
        open: open_rx,
        pause,
    };
    let relay = here
        .register("relay", spawn_with("relay", relay, small(4)).unwrap())
        .unwrap();
    Side {
        router: here.clone(),
        relay,
        open,
        arrived,
        bounced,
    }
}

/// Sends `FLOOD` numbered envelopes from `driver@from` to `to`; returns
/// their ids, in sequence order.
fn flood(from: &Router, to: ActorAddr) -> JoinHandle<Vec<MessageId>> {
    let router = from.clone();
    let me = from.addr("driver").unwrap();
    tokio::spawn(async move {
        let mut ids = Vec::with_capacity(FLOOD as usize);
        for seq in 0..FLOOD {
            let mut payload = vec![b'7'; PAYLOAD];
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            let env = Envelope::new(
                to.clone(),
                me.clone(),
                PayloadFormat::Binary,
                payload.into(),
            );
            ids.push(env.id);
            router.send(env).await.expect("flood send");
        }
        ids
    })
}

/// What became of one side's flood.
#[derive(Debug, Default)]
struct Outcome {
    /// Sequence numbers that went through the relay to the sink, in arrival order.
    arrived: Vec<u64>,
    /// The Undeliverable answers the driver got.
    bounced: Vec<Envelope>,
}

/// Collects `side`'s arrivals and bounces until they account for the whole
/// flood; opens `peer_gate` (the relay this flood goes through) at the
/// first bounce.
async fn settle(side: &mut Side, peer_gate: &watch::Sender<bool>) -> Outcome {
    let mut outcome = Outcome::default();
    while ((outcome.arrived.len() + outcome.bounced.len()) as u64) < FLOOD {
        tokio::select! {
            Some(seq) = side.arrived.recv() => outcome.arrived.push(seq),
            Some(env) = side.bounced.recv() => {
                outcome.bounced.push(env);
                peer_gate.send_replace(true);
            }
            else => break,
        }
    }
    outcome
}

/// Runs both floods and waits until every envelope either arrived or
/// bounced, within [`FLOOD_LIMIT`]; on a timeout the panic shows both
/// nodes' counters.
async fn run_floods(a: &mut Side, b: &mut Side) -> [(Vec<MessageId>, Outcome); 2] {
    let floods = [
        flood(&a.router, b.relay.clone()),
        flood(&b.router, a.relay.clone()),
    ];
    let (gate_a, gate_b) = (a.open.clone(), b.open.clone());
    let settled = async {
        let (out_a, out_b) = tokio::join!(settle(a, &gate_b), settle(b, &gate_a));
        let [fa, fb] = floods;
        let ids_a = fa.await.expect("flood a");
        let ids_b = fb.await.expect("flood b");
        [(ids_a, out_a), (ids_b, out_b)]
    };
    match tokio::time::timeout(FLOOD_LIMIT, settled).await {
        Ok(done) => done,
        Err(_) => panic!(
            "floods not settled after {FLOOD_LIMIT:?} (deadlock?)\na: {:?}, lost the link to b {} times\nb: {:?}, lost the link to a {} times",
            a.router.stats(),
            a.router.link_losses(b.router.node_id()),
            b.router.stats(),
            b.router.link_losses(a.router.node_id()),
        ),
    }
}

/// Every envelope arrived or bounced, exactly once; arrivals kept their order.
fn check_accounting(ids: &[MessageId], outcome: &Outcome) {
    assert!(
        outcome.arrived.windows(2).all(|w| w[0] < w[1]),
        "arrivals out of order"
    );
    let seq_of_id: HashMap<MessageId, u64> = ids.iter().zip(0..).map(|(id, n)| (*id, n)).collect();
    let mut seen = vec![false; ids.len()];
    let bounced = outcome.bounced.iter().map(|env| {
        let id = env.correlation_id.expect("a bounce names what it answers");
        *seq_of_id
            .get(&id)
            .expect("a bounce answers a flood envelope")
    });
    for seq in outcome.arrived.iter().copied().chain(bounced) {
        assert!(!seen[seq as usize], "envelope {seq} accounted for twice");
        seen[seq as usize] = true;
    }
    assert!(
        seen.iter().all(|s| *s),
        "an envelope neither arrived nor bounced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_flooding_each_others_relays_deliver_everything_in_order() {
    // Overflow queues larger than a flood: nothing may bounce.
    let limit = 32_768;
    let nodes = cluster_of(vec![tight("f-1", limit), tight("f-2", limit)]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let mut side_a = side(&a, &b, true, Duration::ZERO);
    let mut side_b = side(&b, &a, true, Duration::ZERO);

    for (ids, outcome) in run_floods(&mut side_a, &mut side_b).await {
        assert!(outcome.bounced.is_empty(), "{:?}", outcome.bounced.first());
        assert_eq!(outcome.arrived.len() as u64, FLOOD);
        check_accounting(&ids, &outcome);
    }
    for node in [&a, &b] {
        assert_eq!(node.stats().overflow_bounces, 0);
    }
    within(STEP, "shutdown a", a.shutdown()).await;
    within(STEP, "shutdown b", b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_flooding_each_others_slow_relays_bounce_instead_of_deadlocking() {
    // A relay holds at most 4 (mailbox) + 256 (overflow queue) envelopes
    // and starts only once its flood has bounced: bounces are certain, and
    // the relays then forward through the links the floods come in on.
    let limit = 256;
    let nodes = cluster_of(vec![tight("g-1", limit), tight("g-2", limit)]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let pause = Duration::from_millis(1);
    let mut side_a = side(&a, &b, false, pause);
    let mut side_b = side(&b, &a, false, pause);

    let outcomes = run_floods(&mut side_a, &mut side_b).await;
    for ((ids, outcome), (relay_node, relay)) in outcomes.iter().zip([("g-2", &b), ("g-1", &a)]) {
        assert!(
            !outcome.bounced.is_empty(),
            "the slow relay bounced nothing"
        );
        let why = format!("mailbox of relay on {relay_node} is full");
        for env in &outcome.bounced {
            assert_eq!(env.kind, EnvelopeKind::Undeliverable);
            let reason: String = env.payload_json().expect("a reason");
            assert!(reason.starts_with(&why), "{reason}");
        }
        check_accounting(ids, outcome);
        let stats = relay.stats();
        assert_eq!(stats.overflow_bounces, outcome.bounced.len() as u64);
        // Every dead letter was answered: no bounce was lost on the way.
        assert_eq!(stats.dead_letters, stats.overflow_bounces);
        assert_eq!(stats.undeliverable_sent, stats.overflow_bounces);
    }
    within(STEP, "shutdown a", a.shutdown()).await;
    within(STEP, "shutdown b", b.shutdown()).await;
}
