//! Incoming traffic never waits behind one full mailbox: a stuck actor does
//! not delay the others, and two nodes whose actors answer each other
//! through full mailboxes and full links cannot deadlock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions};
use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat, Router, RouterConfig};
use support::router::*;
use tokio::sync::{mpsc, Semaphore};

/// Waits for a permit before handling each message, then forwards it.
struct Gated {
    gate: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Envelope>,
}

#[async_trait::async_trait]
impl Actor for Gated {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.gate.acquire().await?.forget();
        let _ = self.out.send(env);
        Ok(())
    }
}

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

/// Forwards every message to `sink@<other node>`, awaiting `Router::send`
/// inside the handler (like a worker pool answering its coordinator).
struct Relay {
    router: Router,
    sink: ActorAddr,
}

#[async_trait::async_trait]
impl Actor for Relay {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let me = self.router.addr("relay")?;
        let out = Envelope::new(self.sink.clone(), me, env.format, env.payload);
        self.router.send(out).await?;
        Ok(())
    }
}

/// Counts; reports once it has seen `target` envelopes.
struct Counter {
    seen: u64,
    target: u64,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

#[async_trait::async_trait]
impl Actor for Counter {
    type Message = Envelope;
    async fn handle(&mut self, _env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.seen += 1;
        if self.seen == self.target {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
        Ok(())
    }
}

/// Small link queues and mailboxes, so that floods fill them quickly.
fn tight(name: &str) -> RouterConfig {
    let mut cfg = fast(name);
    cfg.transport.outbound_queue = 16;
    // Room for a whole flood: below this bound nothing ever waits.
    cfg.backlog_limit = 32_768;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_flooding_each_others_relays_do_not_deadlock() {
    const FLOOD: u64 = 20_000;
    const PAYLOAD: usize = 2 * 1024;
    let nodes = cluster_of(vec![tight("f-1"), tight("f-2")]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());

    let mut done = Vec::new();
    let mut relays = Vec::new();
    for (here, there) in [(&a, &b), (&b, &a)] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let counter = Counter {
            seen: 0,
            target: FLOOD,
            done: Some(tx),
        };
        here.register("sink", spawn_with("sink", counter, small(4)).unwrap())
            .unwrap();
        let relay = Relay {
            router: here.clone(),
            sink: there.addr("sink").unwrap(),
        };
        relays.push(
            here.register("relay", spawn_with("relay", relay, small(4)).unwrap())
                .unwrap(),
        );
        done.push(rx);
    }
    // Each node floods the other's relay, which answers through the link
    // the flood is coming in on.
    let payload = Bytes::from(vec![b'7'; PAYLOAD]);
    let flood = |from: &Router, to: ActorAddr| {
        let router = from.clone();
        let me = from.addr("driver").unwrap();
        let payload = payload.clone();
        tokio::spawn(async move {
            for _ in 0..FLOOD {
                let env = Envelope::new(
                    to.clone(),
                    me.clone(),
                    PayloadFormat::Binary,
                    payload.clone(),
                );
                router.send(env).await.expect("flood send");
            }
        })
    };
    let floods = [flood(&a, relays[1].clone()), flood(&b, relays[0].clone())];
    for f in floods {
        within(Duration::from_secs(30), "flood", f).await.unwrap();
    }
    for rx in done {
        within(
            Duration::from_secs(30),
            "every relayed envelope arrives",
            rx,
        )
        .await
        .unwrap();
    }
    within(STEP, "shutdown a", a.shutdown()).await;
    within(STEP, "shutdown b", b.shutdown()).await;
}
