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
//! Raw baselines, measured in-process in each run right after the router
//! figure they go with, on the same runtime's worker threads
//! (`support::raw_ws`): a plain tokio-tungstenite connection over loopback,
//! one binary WebSocket message per payload of the same size, no router:
//!
//! * one-way: 1,000,000 16-byte messages written as fast as the write buffer
//!   takes them, counted by the other end;
//! * echo: 300,000 8-byte round trips with 256 in flight (both directions
//!   counted, as for the router);
//! * ping-pong: p50 / p99 over 20,000 8-byte round trips, one in flight.
//!
//! Run: `cargo bench -p jobmesh --bench router`. Each figure is the median
//! of three runs, each on a fresh pair of nodes (and a fresh connection for
//! the baselines), on a 2-worker runtime; each line prints the router's
//! figure and then the raw baseline's.

mod support;

use std::time::{Duration, Instant};

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions};
use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat, Router, RouterConfig};
use tokio::sync::oneshot;

use crate::support::{median, raw_ws};

const RUNS: usize = 3;
const ONE_WAY: u64 = 1_000_000;
const WINDOW: u64 = 256;
const ROUND_TRIPS: u64 = 300_000;
const PINGS: u64 = 20_000;
const MAILBOX: usize = 4096;
/// The one-way payload (as `one_way` sends).
const ONE_WAY_BYTES: usize = 16;
/// The size of the pinger's payload (its `u64` sequence number) and the
/// echo's reply.
const PING_BYTES: usize = std::mem::size_of::<u64>();

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
    let payload = Bytes::from_static(&[7; ONE_WAY_BYTES]);
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

/// Round-trip times as the pinger records them: whole microseconds, sorted.
fn micros(samples: &[Duration]) -> Vec<u32> {
    samples.iter().map(|d| d.as_micros() as u32).collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut one, mut raw_one) = (Vec::new(), Vec::new());
        let (mut rr, mut raw_rr) = (Vec::new(), Vec::new());
        let (mut p50, mut raw_p50) = (Vec::new(), Vec::new());
        let (mut p99, mut raw_p99) = (Vec::new(), Vec::new());
        for run in 1..=RUNS {
            let rate = one_way().await;
            let raw_rate = raw_ws::one_way(ONE_WAY_BYTES, ONE_WAY as usize).await;
            let (elapsed, _) = ping_pong(WINDOW, ROUND_TRIPS).await;
            let rr_rate = 2.0 * ROUND_TRIPS as f64 / elapsed.as_secs_f64();
            let raw_elapsed =
                raw_ws::echo(PING_BYTES, WINDOW as usize, ROUND_TRIPS as usize).await;
            let raw_rr_rate = 2.0 * ROUND_TRIPS as f64 / raw_elapsed.as_secs_f64();
            let (_, mut samples) = ping_pong(1, PINGS).await;
            samples.sort_unstable();
            let (q50, q99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
            let raw = micros(&raw_ws::ping_pong(PING_BYTES, PINGS as usize).await);
            let (raw50, raw99) = (percentile(&raw, 0.50), percentile(&raw, 0.99));
            println!(
                "run {run}: one-way {rate:>10.0} msg/s | request/reply (window {WINDOW}) {rr_rate:>10.0} msg/s | rtt p50 {q50:.0} µs p99 {q99:.0} µs \
                 || raw WebSocket: one-way {raw_rate:>10.0} msg/s | echo (window {WINDOW}) {raw_rr_rate:>10.0} msg/s | ping-pong p50 {raw50:.0} µs p99 {raw99:.0} µs"
            );
            one.push(rate);
            raw_one.push(raw_rate);
            rr.push(rr_rate);
            raw_rr.push(raw_rr_rate);
            p50.push(q50);
            raw_p50.push(raw50);
            p99.push(q99);
            raw_p99.push(raw99);
        }
        println!(
            "router one-way, 16 B payloads:           {:>10.0} msg/s (median of {RUNS}) \
             | raw WebSocket one-way on loopback, same run: {:.0} msg/s (16 B binary messages)",
            median(one),
            median(raw_one)
        );
        println!(
            "router request/reply, {WINDOW} in flight:    {:>10.0} msg/s (median of {RUNS}) \
             | raw WebSocket echo on loopback, same run: {:.0} msg/s (8 B, {WINDOW} in flight, both directions counted)",
            median(rr),
            median(raw_rr)
        );
        println!(
            "router round trip, one in flight:        p50 {:.0} µs, p99 {:.0} µs (medians of {RUNS}) \
             | raw WebSocket ping-pong on loopback, same run: p50 {:.0} µs, p99 {:.0} µs (8 B)",
            median(p50),
            median(p99),
            median(raw_p50),
            median(raw_p99)
        );
    });
}
