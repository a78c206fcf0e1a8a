//! Job-queue benchmarks: the sans-IO coordinator core, the worker engine,
//! and end-to-end no-op jobs through a coordinator node and two worker
//! nodes on loopback (three routers in this process): throughput with
//! 10,000 jobs in flight, latency with one in flight, and memory per job
//! queued in the coordinator (live heap bytes, counted by a counting global
//! allocator, `stats_alloc`).
//!
//! Raw baselines, measured in-process in the same run and printed at the
//! end of the line of the figure they go with:
//!
//! * core: a single-threaded loop doing the minimal bookkeeping per job
//!   (`Job::new`, a `HashMap` insert and remove, a `VecDeque` push and pop),
//!   no coordinator;
//! * engine: the same `Job` values through bare tokio mpsc channels (one
//!   submitter, round robin to K tasks that send each job back to one
//!   consumer; capacity 4,096 as the engine's queues), no handler;
//! * cluster throughput: a raw WebSocket echo on loopback (`support::raw_ws`,
//!   plain tokio-tungstenite, 128-byte binary messages, no router) with the
//!   same window and as many round trips as jobs, right after the cluster
//!   figure on the same runtime (a job crosses a link out and back);
//! * cluster latency: a raw WebSocket ping-pong on loopback, 128-byte
//!   messages, as many rounds as jobs timed, one in flight, right after.
//!
//! Memory has no baseline. Everything but `core` runs on the runtime's
//! worker threads.
//!
//! Run with `cargo bench -p jobmesh --bench job_queue`; it prints one line
//! per figure (`JOB_QUEUE_BENCH=cluster` runs only the cluster figures).
//! Quote medians of several runs: the machine is noisy.

mod support;

use std::alloc::System;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_core::{Actor, BoxError, Context};
use cluster_router::{Envelope, Router, RouterConfig};
use job_queue::{
    Action, Coordinator, CoordinatorConfig, CoordinatorCore, CoordinatorOptions, HandlerError,
    HandlerRegistry, Job, JobContext, JobResult, NodeInfo, StrategyKind, WorkerConfig,
    WorkerEngine, WorkerEvent, WorkerPool, WorkerPoolConfig,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::sync::mpsc;

use crate::support::raw_ws;

/// The raw WebSocket baselines' message size (about a dispatch envelope).
const RAW_BYTES: usize = 128;

/// Counts every allocation and deallocation (a few atomic additions each),
/// for the memory figure.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes allocated and not yet freed, process-wide.
fn live_heap_bytes() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

fn registry() -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry.register("noop", |_ctx: JobContext| async move {
        Ok::<_, HandlerError>(String::new())
    });
    registry
}

/// Submit -> dispatch -> result -> complete through the core, no I/O.
fn bench_core(jobs: u64) {
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "bench".into(),
        strategy: StrategyKind::RoundRobin,
        seed: Some(1),
        ..CoordinatorConfig::default()
    });
    let now = Instant::now();
    for n in ["n1", "n2", "n3", "n4"] {
        core.update_node(NodeInfo::up(n, ["kind:noop"]), now);
    }
    let started = Instant::now();
    let mut in_flight = Vec::with_capacity(1024);
    let mut completed = 0u64;
    let mut submitted = 0u64;
    while completed < jobs {
        while submitted < jobs && in_flight.len() < 1024 {
            core.submit(Job::new("noop", "{}"), now).expect("accepted");
            submitted += 1;
            while let Some(action) = core.poll_action() {
                if let Action::Dispatch { job, node } = action {
                    in_flight.push((job, node));
                }
            }
        }
        for (job, node) in in_flight.drain(..) {
            let result = JobResult::success(
                job.id.clone(),
                "",
                &node,
                job.attempt,
                Duration::from_micros(50),
            );
            core.result_received(result, &node, now);
        }
        core.tick(now);
        completed += core
            .drain_actions()
            .filter(|a| matches!(a, Action::Complete(_)))
            .count() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let raw = core_baseline(jobs);
    println!(
        "core: {jobs} jobs in {:.3} s = {:.0} jobs/s ({:.0} ns/job) \
         | single-threaded loop, same run (per job: Job::new, a HashMap insert and remove, a VecDeque push and pop): {:.0} jobs/s ({:.0} ns/job)",
        secs,
        jobs as f64 / secs,
        secs * 1e9 / jobs as f64,
        jobs as f64 / raw,
        raw * 1e9 / jobs as f64
    );
}

/// The core's baseline: the least bookkeeping a queue does per job, in
/// batches of 1,024 as the bench keeps in flight; returns seconds.
fn core_baseline(jobs: u64) -> f64 {
    let mut table = HashMap::with_capacity(1024);
    let mut ready = VecDeque::with_capacity(1024);
    let started = Instant::now();
    for n in 0..jobs {
        table.insert(n, Job::new("noop", "{}"));
        ready.push_back(n);
        if ready.len() == 1024 || n + 1 == jobs {
            while let Some(id) = ready.pop_front() {
                std::hint::black_box(table.remove(&id));
            }
        }
    }
    assert!(table.is_empty(), "every job completed");
    started.elapsed().as_secs_f64()
}

/// K worker loops running no-op jobs from one submitter.
async fn bench_engine(jobs: u64, workers: usize) {
    let config = WorkerConfig {
        node: "bench".into(),
        workers,
        queue_capacity: 4096,
        event_capacity: 4096,
        ..WorkerConfig::default()
    };
    let (engine, mut events) =
        WorkerEngine::<()>::start(config, Arc::new(registry())).expect("engine");
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut finished = 0;
        while finished < jobs {
            if let Some(WorkerEvent::Finished { .. }) = events.recv().await {
                finished += 1;
            }
        }
    });
    for _ in 0..jobs {
        engine.submit(Job::new("noop", ""), ()).await.expect("open");
    }
    consumer.await.expect("consumer");
    let secs = started.elapsed().as_secs_f64();
    engine.shutdown().await;
    let raw = engine_baseline(jobs, workers).await;
    println!(
        "engine (K={workers}): {jobs} jobs in {secs:.3} s = {:.0} jobs/s \
         | bare tokio mpsc, same run (the same Job values round robin to {workers} tasks and back to one consumer, capacity 4096): {:.0} jobs/s",
        jobs as f64 / secs,
        jobs as f64 / raw
    );
}

/// The engine's baseline: `jobs` no-op `Job`s from one submitter through
/// bare mpsc channels to `workers` tasks (round robin) that send each back
/// to one consumer; returns seconds.
async fn engine_baseline(jobs: u64, workers: usize) -> f64 {
    let (done_tx, mut done_rx) = mpsc::channel::<Job>(4096);
    let mut queues = Vec::with_capacity(workers);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                done.send(job).await.expect("consumer alive");
            }
        }));
        queues.push(tx);
    }
    drop(done_tx);
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut finished = 0;
        while finished < jobs {
            let Some(job) = done_rx.recv().await else {
                break;
            };
            std::hint::black_box(job);
            finished += 1;
        }
        finished
    });
    for n in 0..jobs {
        let queue = &queues[n as usize % workers];
        queue.send(Job::new("noop", "")).await.expect("task alive");
    }
    let finished = consumer.await.expect("consumer");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(finished, jobs, "every job came back");
    drop(queues);
    for task in tasks {
        task.await.expect("baseline task");
    }
    secs
}

fn router_config(name: &str) -> RouterConfig {
    RouterConfig::new(name, "bench-cookie").timing(
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(4),
    )
}

/// The setup: a coordinator node and two worker nodes on loopback
/// (three routers in this process).
struct Cluster {
    coord_node: Router,
    workers: Vec<Router>,
}

impl Cluster {
    async fn start(prefix: &str) -> Cluster {
        let coord_node = Router::start(router_config(&format!("{prefix}-c")))
            .await
            .expect("coordinator node");
        let mut workers = Vec::new();
        for i in 1..=2 {
            let cfg = router_config(&format!("{prefix}-w{i}")).seeds([coord_node.url()]);
            workers.push(Router::start(cfg).await.expect("worker node"));
        }
        Cluster {
            coord_node,
            workers,
        }
    }

    /// Waits until the coordinator node sees both workers serving `noop`.
    async fn converge(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = |r: &Router| {
            r.get_all_peers()
                .iter()
                .filter(|m| m.has_tag("kind:noop"))
                .count()
                == 2
        };
        while !ready(&self.coord_node) {
            assert!(Instant::now() < deadline, "cluster did not converge");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(self) {
        for w in &self.workers {
            w.shutdown().await;
        }
        self.coord_node.shutdown().await;
    }
}

/// Throughput with `window` jobs in flight, then latency one at a time.
/// The pools keep their default queue (1,024): the coordinator holds what
/// does not fit in their windows.
async fn bench_cluster(jobs: usize, window: usize) {
    let cluster = Cluster::start("bench").await;
    let pool_config = WorkerPoolConfig {
        workers: 2,
        ..WorkerPoolConfig::default()
    };
    let mut pools = Vec::new();
    for w in &cluster.workers {
        let pool = WorkerPool::start(w, registry(), pool_config.clone()).await;
        pools.push(pool.expect("pool"));
    }
    cluster.converge().await;
    let coord = Coordinator::start(&cluster.coord_node, CoordinatorOptions::default())
        .await
        .expect("coordinator");
    // Warm-up: links, buffers, allocator.
    run_window(&coord, 20_000, window).await;
    let started = Instant::now();
    run_window(&coord, jobs, window).await;
    let secs = started.elapsed().as_secs_f64();
    if std::env::var("JOB_QUEUE_BENCH_DEBUG").is_ok() {
        for r in std::iter::once(&cluster.coord_node).chain(&cluster.workers) {
            let t = r.transport_stats();
            println!(
                "  {}: frames out {} envelopes out {} frames in {} envelopes in {}",
                r.node_id(),
                t.frames_out,
                t.envelopes_out,
                t.frames_in,
                t.envelopes_in
            );
        }
    }
    let raw_echo = raw_ws::echo(RAW_BYTES, window, jobs).await;
    let raw_rate = jobs as f64 / raw_echo.as_secs_f64();
    println!(
        "cluster (coordinator + 2 worker nodes, {window} in flight): {jobs} jobs in {secs:.3} s = {:.0} jobs/s \
         | raw WebSocket echo on loopback, same run ({RAW_BYTES} B messages, {window} in flight, {jobs} round trips): {raw_rate:.0} round trips/s",
        jobs as f64 / secs
    );
    let mut sequential = Vec::with_capacity(5000);
    for _ in 0..5000 {
        let t = Instant::now();
        let result = coord.run(Job::new("noop", "")).await.expect("result");
        assert!(result.is_success(), "{result:?}");
        sequential.push(t.elapsed());
    }
    sequential.sort_unstable();
    let raw = raw_ws::ping_pong(RAW_BYTES, sequential.len()).await;
    println!(
        "cluster (coordinator + 2 worker nodes, one in flight): p50 {:?} p99 {:?} \
         | raw WebSocket ping-pong on loopback, same run ({RAW_BYTES} B messages): p50 {:?} p99 {:?}",
        sequential[2500], sequential[4950], raw[2500], raw[4950]
    );
    let stats = coord.stats().await.expect("stats");
    println!(
        "  retries {} refusals {} late results {} failed {}",
        stats.retries, stats.refusals, stats.late_results, stats.failed
    );
    for node in &stats.nodes {
        println!("  {}: {} completed", node.node, node.completed);
    }
    coord.shutdown().await;
    // The same with a data directory: every job journaled (group-committed
    // fsync) before it is acknowledged.
    let dir = std::env::temp_dir().join(format!("job-queue-bench-{}", std::process::id()));
    let options = CoordinatorOptions {
        data_dir: Some(dir.clone()),
        ..CoordinatorOptions::default()
    };
    let journaled = Coordinator::start(&cluster.coord_node, options)
        .await
        .expect("journaled coordinator");
    let started = Instant::now();
    run_window(&journaled, jobs / 2, window).await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "cluster, journaled in {} ({window} in flight): {} jobs in {secs:.3} s = {:.0} jobs/s \
         | raw WebSocket echo on loopback, same run: {raw_rate:.0} round trips/s (as on the first cluster line)",
        dir.display(),
        jobs / 2,
        (jobs / 2) as f64 / secs
    );
    journaled.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    for pool in pools {
        pool.shutdown().await;
    }
    cluster.shutdown().await;
}

/// Runs `jobs` no-op jobs keeping `window` of them in flight: `window`
/// client tasks, each submitting its next job when the previous one is done.
async fn run_window(coord: &Coordinator, jobs: usize, window: usize) {
    let clients: Vec<_> = (0..window)
        .map(|i| {
            let coord = coord.clone();
            let share = jobs / window + usize::from(i < jobs % window);
            tokio::spawn(async move {
                for _ in 0..share {
                    let result = coord.run(Job::new("noop", "")).await.expect("result");
                    assert!(result.is_success(), "{result:?}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
}

/// A `worker@<node>` that swallows every dispatch: jobs stay queued in the
/// coordinator (running, until their timeout).
#[derive(Debug)]
struct Sink(Arc<AtomicU64>);

#[async_trait::async_trait]
impl Actor for Sink {
    type Message = Envelope;

    async fn handle(&mut self, _env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Waits until the sinks stop receiving dispatches (the coordinator has
/// sent all it will: the windows of the two nodes).
async fn settle(received: &AtomicU64) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = received.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Memory per queued job: `n` jobs submitted to worker nodes that never
/// answer (the default window of 1,024 per node is dispatched, the rest
/// waits in the coordinator's ready queue); live heap bytes grown while
/// they sit in the coordinator, divided by `n`.
async fn bench_memory(n: usize) {
    let cluster = Cluster::start("mem").await;
    let received = Arc::new(AtomicU64::new(0));
    for w in &cluster.workers {
        let sink = actor_core::spawn(format!("sink@{}", w.node_id()), Sink(received.clone()));
        w.register("worker", sink).expect("register sink");
        w.set_tags(vec!["kind:noop".to_owned()]);
    }
    cluster.converge().await;
    let mut options = CoordinatorOptions::default();
    options.core.strategy = StrategyKind::RoundRobin;
    let coord = Coordinator::start(&cluster.coord_node, options)
        .await
        .expect("coordinator");
    // Warm-up so that lazily built state is not counted.
    let mut warm = Vec::new();
    for _ in 0..1000 {
        warm.push(coord.submit(Job::new("noop", "")).await.expect("submitted"));
    }
    settle(&received).await;
    let mut pending = Vec::with_capacity(n);
    let before = live_heap_bytes();
    for _ in 0..n {
        pending.push(coord.submit(Job::new("noop", "")).await.expect("submitted"));
    }
    settle(&received).await;
    let after = live_heap_bytes();
    let stats = coord.stats().await.expect("stats");
    assert_eq!(stats.in_progress as usize, n + 1000);
    println!(
        "memory: {n} jobs in the coordinator ({} waiting in its ready queue): {:.0} live heap bytes per job (includes the caller's PendingJob handles)",
        stats.queued,
        (after - before) as f64 / n as f64
    );
    drop(pending);
    drop(warm);
    coord.shutdown().await;
    cluster.shutdown().await;
}

fn main() {
    // `JOB_QUEUE_BENCH=cluster` runs only the cluster figures (for profiling).
    let only_cluster = std::env::var("JOB_QUEUE_BENCH").is_ok_and(|v| v == "cluster");
    if only_cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let task = runtime.spawn(bench_cluster(200_000, 10_000));
        runtime.block_on(task).expect("benchmark task");
        return;
    }
    bench_core(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Everything runs on the runtime's two worker threads (the main thread
    // only waits), as in a node.
    runtime
        .block_on(runtime.spawn(async {
            bench_memory(100_000).await;
            bench_engine(500_000, 2).await;
            bench_cluster(200_000, 10_000).await;
        }))
        .expect("benchmark task");
}
