//! Router benchmark: two nodes in one process over loopback, actor to actor.
//!
//! * one-way messages/s: a task sends 1,000,000 16-byte envelopes through
//!   `Router::send` on node a to a counting actor on node b;
//! * request/reply messages/s with 256 in flight: a pinger actor on a and an
//!   echo actor on b exchange 300,000 requests and replies (both directions
//!   counted);
//! * round-trip latency with one in flight: p50 / p99 over 20,000 ping-pongs
//!   between the same two actors.
//!
//! Run: `cargo bench -p jobmesh --bench router`. Each figure is the median
//! of three runs, each on a fresh pair of nodes, on a 2-worker runtime.

mod support;

use std::time::{Duration, Instant};

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions};
use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat, Router, RouterConfig};
use tokio::sync::oneshot;

use crate::support::median;

const RUNS: usize = 3;
const ONE_WAY: u64 = 1_000_000;
const WINDOW: u64 = 256;
const ROUND_TRIPS: u64 = 300_000;
const PINGS: u64 = 20_000;
const MAILBOX: usize = 4096;

/// Counts envelopes; reports the instant the `target`-th arrives.
struct Sink {
    seen: u64,
    target: u64,
    done: Option<oneshot::Sender<Instant>>,
}

#[async_trait::async_trait]
impl Actor for Sink {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        std::hint::black_box(&env);
        self.seen += 1;
        if self.seen == self.target {
            if let Some(done) = self.done.take() {
                let _ = done.send(Instant::now());
            }
        }
        Ok(())
    }
}

/// Answers every envelope with its payload.
struct Echo(Router);

#[async_trait::async_trait]
impl Actor for Echo {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.0.send(env.reply(env.payload.clone())).await?;
        Ok(())
    }
}

/// Keeps `window` requests in flight to `target` until `total` replies came
/// back; records each round trip when `window` is 1.
struct Pinger {
    router: Router,
    me: ActorAddr,
    target: ActorAddr,
    window: u64,
    total: u64,
    sent: u64,
    received: u64,
    last_sent: Instant,
    samples: Vec<u32>,
    done: Option<oneshot::Sender<(Instant, Vec<u32>)>>,
}

impl Pinger {
    async fn send_one(&mut self) -> Result<(), BoxError> {
        self.sent += 1;
        self.last_sent = Instant::now();
        let payload = Bytes::copy_from_slice(&self.sent.to_le_bytes());
        let env = Envelope::new(
            self.target.clone(),
            self.me.clone(),
            PayloadFormat::Binary,
            payload,
        );
        self.router.send(env).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Actor for Pinger {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.correlation_id.is_none() {
            // The kick-off from the bench.
            for _ in 0..self.window.min(self.total) {
                self.send_one().await?;
            }
            return Ok(());
        }
        self.received += 1;
        if self.window == 1 {
            self.samples
                .push(self.last_sent.elapsed().as_micros() as u32);
        }
        if self.sent < self.total {
            self.send_one().await?;
        }
        if self.received == self.total {
            if let Some(done) = self.done.take() {
                let _ = done.send((Instant::now(), std::mem::take(&mut self.samples)));
            }
        }
        Ok(())
    }
}

fn opts() -> SpawnOptions {
    SpawnOptions::default().capacity(MAILBOX)
}

/// A node whose actors may queue a whole one-way burst: a remote sender is
/// not held back by the receiver (a full backlog bounces to the sender
/// instead), so the backlog must hold what the sink has not yet counted.
fn config(name: &str) -> RouterConfig {
    let mut config = RouterConfig::new(name, "k");
    config.backlog_limit = ONE_WAY as usize;
    config.backlog_bytes = 1 << 30;
    config
}

async fn pair() -> (Router, Router) {
    let a = Router::start(config("bench-a")).await.expect("start a");
    let b = Router::start(config("bench-b").seeds([a.url()]))
        .await
        .expect("start b");
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get_all_peers().len() < 2 || b.get_all_peers().len() < 2 {
        assert!(Instant::now() < deadline, "nodes did not see each other");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (a, b)
}

async fn one_way() -> f64 {
    let (a, b) = pair().await;
    let (done_tx, done_rx) = oneshot::channel();
    let sink = Sink {
        seen: 0,
        target: ONE_WAY,
        done: Some(done_tx),
    };
    let sink_addr = b
        .register("sink", spawn_with("sink", sink, opts()).unwrap())
        .unwrap();
    let from = a.addr("source").unwrap();
    let payload = Bytes::from_static(&[7; 16]);
    let start = Instant::now();
    let sender = a.clone();
    tokio::spawn(async move {
        for _ in 0..ONE_WAY {
            let env = Envelope::new(
                sink_addr.clone(),
                from.clone(),
                PayloadFormat::Binary,
                payload.clone(),
            );
            sender.send(env).await.expect("send");
        }
    });
    let end = tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(
        b.stats().overflow_bounces,
        0,
        "the sink's backlog held the burst"
    );
    a.shutdown().await;
    b.shutdown().await;
    ONE_WAY as f64 / (end - start).as_secs_f64()
}

/// Runs a pinger with `window` in flight for `total` round trips.
async fn ping_pong(window: u64, total: u64) -> (Duration, Vec<u32>) {
    let (a, b) = pair().await;
    let echo = b
        .register("echo", spawn_with("echo", Echo(b.clone()), opts()).unwrap())
        .unwrap();
    let (done_tx, done_rx) = oneshot::channel();
    let me = a.addr("pinger").unwrap();
    let pinger = Pinger {
        router: a.clone(),
        me: me.clone(),
        target: echo,
        window,
        total,
        sent: 0,
        received: 0,
        last_sent: Instant::now(),
        samples: Vec::with_capacity(total as usize),
        done: Some(done_tx),
    };
    a.register("pinger", spawn_with("pinger", pinger, opts()).unwrap())
        .unwrap();
    let start = Instant::now();
    let kick = Envelope::new(me.clone(), me, PayloadFormat::Binary, Bytes::new());
    a.send(kick).await.expect("kick-off");
    let (end, samples) = tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .expect("in time")
        .unwrap();
    a.shutdown().await;
    b.shutdown().await;
    (end - start, samples)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx])
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut one = Vec::new();
        let mut rr = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for run in 1..=RUNS {
            let rate = one_way().await;
            let (elapsed, _) = ping_pong(WINDOW, ROUND_TRIPS).await;
            let rr_rate = 2.0 * ROUND_TRIPS as f64 / elapsed.as_secs_f64();
            let (_, mut samples) = ping_pong(1, PINGS).await;
            samples.sort_unstable();
            let (q50, q99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
            println!(
                "run {run}: one-way {rate:>10.0} msg/s | request/reply (window {WINDOW}) {rr_rate:>10.0} msg/s | rtt p50 {q50:.0} µs p99 {q99:.0} µs"
            );
            one.push(rate);
            rr.push(rr_rate);
            p50.push(q50);
            p99.push(q99);
        }
        println!("router one-way, 16 B payloads:           {:>10.0} msg/s (median of {RUNS})", median(one));
        println!("router request/reply, {WINDOW} in flight:    {:>10.0} msg/s (median of {RUNS})", median(rr));
        println!(
            "router round trip, one in flight:        p50 {:.0} µs, p99 {:.0} µs (medians of {RUNS})",
            median(p50),
            median(p99)
        );
    });
}
