//! Release benchmark of actor-core: local `tell` throughput with 1 and 4
//! senders, and `ask` round-trip latency (p50 / p99, one ask at a time), each
//! the median of 3 rounds, on a 2-worker multi-thread runtime (plus the ask
//! latency on a current-thread runtime).
//!
//! Raw baselines, measured in-process in each round right after the figure
//! they go with, on the same runtime (and the same thread placement):
//!
//! * tell: a bare `tokio::sync::mpsc` channel of the same capacity, the same
//!   message count and the same number of sender tasks, drained by one task
//!   that counts them, taking up to 64 at a time with `recv_many` as an
//!   actor's run loop takes its mailbox (`DEFAULT_BATCH`);
//! * ask: a bare request/reply, a `(u64, oneshot::Sender<u64>)` over a tokio
//!   mpsc channel of the same capacity to a task that answers `n + 1`, one
//!   at a time (no timeout around the wait, where `ask` has one), on both
//!   runtime flavours.
//!
//! The round lines and the table print each actor-core figure next to its
//! baseline.
//!
//! Run with `cargo bench -p jobmesh --bench actor_core`. Set
//! `ACTOR_BENCH_MESSAGES` / `ACTOR_BENCH_ASKS` to change the workload.

mod support;

use std::time::{Duration, Instant};

use actor_core::{spawn_with, Actor, BoxError, Context, ReplyTo, SpawnOptions, DEFAULT_BATCH};
use tokio::sync::{mpsc, oneshot};

use crate::support::median;

const ROUNDS: usize = 3;
const CAPACITY: usize = 1024;

/// Counts messages and signals once `target` have been handled.
struct Sink {
    seen: u64,
    target: u64,
    done: Option<oneshot::Sender<()>>,
}

#[async_trait::async_trait]
impl Actor for Sink {
    type Message = u64;

    async fn handle(&mut self, msg: u64, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.seen += 1;
        std::hint::black_box(msg);
        if self.seen == self.target {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
        Ok(())
    }
}

/// Answers every request with its argument plus one.
struct Echo;

#[async_trait::async_trait]
impl Actor for Echo {
    type Message = (u64, ReplyTo<u64>);

    async fn handle(
        &mut self,
        (n, reply): Self::Message,
        _ctx: &mut Context<Self>,
    ) -> Result<(), BoxError> {
        reply.send(n + 1);
        Ok(())
    }
}

/// Where the sender tasks put their numbers: an actor (`tell`) or a bare
/// channel (the baseline).
trait Put: Clone + Send + 'static {
    fn put(&self, n: u64) -> impl std::future::Future<Output = ()> + Send;
}

impl Put for actor_core::ActorRef<u64> {
    async fn put(&self, n: u64) {
        self.tell(n).await.expect("sink alive");
    }
}

impl Put for mpsc::Sender<u64> {
    async fn put(&self, n: u64) {
        self.send(n).await.expect("receiver alive");
    }
}

/// Sends `messages` numbers in total into `to` from `senders` tasks (the
/// last one takes the remainder) and waits for them.
async fn send_from_tasks(to: &impl Put, messages: u64, senders: u64) {
    let per_sender = messages / senders;
    let tasks: Vec<_> = (0..senders)
        .map(|s| {
            let to = to.clone();
            let count = if s == senders - 1 {
                messages - per_sender * (senders - 1)
            } else {
                per_sender
            };
            tokio::spawn(async move {
                for i in 0..count {
                    to.put(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender task");
    }
}

/// Sends `messages` in total from `senders` tasks; returns messages/s.
async fn tell_throughput(messages: u64, senders: u64) -> f64 {
    let (done_tx, done_rx) = oneshot::channel();
    let sink = Sink {
        seen: 0,
        target: messages,
        done: Some(done_tx),
    };
    let actor =
        spawn_with("sink", sink, SpawnOptions::default().capacity(CAPACITY)).expect("spawn sink");
    let start = Instant::now();
    send_from_tasks(&actor, messages, senders).await;
    tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .expect("sink finished in time")
        .expect("sink signalled");
    let elapsed = start.elapsed();
    actor.stop();
    messages as f64 / elapsed.as_secs_f64()
}

/// Runs `asks` sequential asks; returns (p50, p99) in microseconds.
async fn ask_latency(asks: usize) -> (f64, f64) {
    let actor =
        spawn_with("echo", Echo, SpawnOptions::default().capacity(CAPACITY)).expect("spawn echo");
    let mut samples = Vec::with_capacity(asks);
    for i in 0..asks as u64 {
        let start = Instant::now();
        let reply = actor
            .ask(|r| (i, r), Duration::from_secs(5))
            .await
            .expect("echo reply");
        samples.push(start.elapsed());
        assert_eq!(reply, i + 1);
    }
    actor.stop();
    percentiles(samples)
}

/// The tell baseline: `messages` in total from `senders` tasks through a
/// bare mpsc channel of capacity [`CAPACITY`] to one counting task, which
/// takes up to [`DEFAULT_BATCH`] at a time as an actor's run loop does;
/// returns messages/s.
async fn mpsc_throughput(messages: u64, senders: u64) -> f64 {
    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
    let receiver = tokio::spawn(async move {
        let mut seen = 0u64;
        let mut batch = Vec::with_capacity(DEFAULT_BATCH);
        while seen < messages {
            if rx.recv_many(&mut batch, DEFAULT_BATCH).await == 0 {
                break;
            }
            for msg in batch.drain(..) {
                std::hint::black_box(msg);
                seen += 1;
            }
        }
        seen
    });
    let start = Instant::now();
    send_from_tasks(&tx, messages, senders).await;
    drop(tx);
    let seen = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .expect("receiver finished in time")
        .expect("receiver task");
    let elapsed = start.elapsed();
    assert_eq!(seen, messages, "every message arrived");
    messages as f64 / elapsed.as_secs_f64()
}

/// The ask baseline: `asks` sequential requests over a bare mpsc channel to
/// a task answering on a oneshot; returns (p50, p99) in microseconds.
async fn mpsc_ask_latency(asks: usize) -> (f64, f64) {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
    let responder = tokio::spawn(async move {
        while let Some((n, reply)) = rx.recv().await {
            let _ = reply.send(n + 1);
        }
    });
    let mut samples = Vec::with_capacity(asks);
    for i in 0..asks as u64 {
        let start = Instant::now();
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send((i, reply_tx)).await.expect("responder alive");
        let reply = reply_rx.await.expect("reply");
        samples.push(start.elapsed());
        assert_eq!(reply, i + 1);
    }
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), responder)
        .await
        .expect("responder ended in time")
        .expect("responder task");
    percentiles(samples)
}

/// (p50, p99) of `samples` in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (pick(0.50), pick(0.99))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let messages = env_or("ACTOR_BENCH_MESSAGES", 10_000_000);
    let asks = env_or("ACTOR_BENCH_ASKS", 100_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut one, mut raw_one) = (Vec::new(), Vec::new());
    let (mut four, mut raw_four) = (Vec::new(), Vec::new());
    let (mut p50s, mut raw_p50s) = (Vec::new(), Vec::new());
    let (mut p99s, mut raw_p99s) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let [t1, r1, t4, r4] = runtime.block_on(async {
            [
                tell_throughput(messages, 1).await,
                mpsc_throughput(messages, 1).await,
                tell_throughput(messages, 4).await,
                mpsc_throughput(messages, 4).await,
            ]
        });
        let (p50, p99) = runtime.block_on(ask_latency(asks));
        let (raw_p50, raw_p99) = runtime.block_on(mpsc_ask_latency(asks));
        println!(
            "round {round}: tell x1 {:.2} M/s, tell x4 {:.2} M/s, ask p50 {p50:.2} us, p99 {p99:.2} us \
             | bare mpsc: x1 {:.2} M/s, x4 {:.2} M/s, request/reply p50 {raw_p50:.2} us, p99 {raw_p99:.2} us",
            t1 / 1e6,
            t4 / 1e6,
            r1 / 1e6,
            r4 / 1e6
        );
        one.push(t1);
        raw_one.push(r1);
        four.push(t4);
        raw_four.push(r4);
        p50s.push(p50);
        raw_p50s.push(raw_p50);
        p99s.push(p99);
        raw_p99s.push(raw_p99);
    }
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut ct_p50s, mut raw_ct_p50s) = (Vec::new(), Vec::new());
    let (mut ct_p99s, mut raw_ct_p99s) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (p50, p99) = current_thread.block_on(ask_latency(asks));
        ct_p50s.push(p50);
        ct_p99s.push(p99);
        let (p50, p99) = current_thread.block_on(mpsc_ask_latency(asks));
        raw_ct_p50s.push(p50);
        raw_ct_p99s.push(p99);
    }
    println!();
    println!("actor-core (median of {ROUNDS} rounds; {messages} tells, {asks} asks, capacity {CAPACITY}, 2 worker threads)");
    println!("raw baseline, same run and runtime: a bare tokio mpsc of the same capacity drained with recv_many (tell), a bare mpsc + oneshot request/reply to an answering task (ask)");
    println!("| metric                  | value        | raw baseline  |");
    println!("|-------------------------|--------------|---------------|");
    let rows = [
        (
            "tell, 1 sender         ",
            median(one) / 1e6,
            median(raw_one) / 1e6,
            "M/s",
        ),
        (
            "tell, 4 senders        ",
            median(four) / 1e6,
            median(raw_four) / 1e6,
            "M/s",
        ),
        (
            "ask round-trip p50     ",
            median(p50s),
            median(raw_p50s),
            "us ",
        ),
        (
            "ask round-trip p99     ",
            median(p99s),
            median(raw_p99s),
            "us ",
        ),
        (
            "ask p50, current_thread",
            median(ct_p50s),
            median(raw_ct_p50s),
            "us ",
        ),
        (
            "ask p99, current_thread",
            median(ct_p99s),
            median(raw_ct_p99s),
            "us ",
        ),
    ];
    for (metric, value, raw, unit) in rows {
        println!("| {metric} | {value:>7.2} {unit}  | {raw:>7.2} {unit}   |");
    }
}
