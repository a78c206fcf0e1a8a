//! Job-queue benchmarks: the sans-IO coordinator core, the worker engine,
//! and end-to-end jobs through a two-node loopback cluster.
//!
//! Run with `cargo bench -p jobmesh --bench job_queue`; it prints one line
//! per figure. Quote medians of several runs: the machine is noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::{
    Action, Coordinator, CoordinatorConfig, CoordinatorCore, CoordinatorOptions, HandlerError,
    HandlerRegistry, Job, JobContext, JobResult, NodeInfo, StrategyKind, WorkerConfig,
    WorkerEngine, WorkerEvent, WorkerPool, WorkerPoolConfig,
};

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
    println!(
        "core: {jobs} jobs in {:.3} s = {:.0} jobs/s ({:.0} ns/job)",
        secs,
        jobs as f64 / secs,
        secs * 1e9 / jobs as f64
    );
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
    println!(
        "engine (K={workers}): {jobs} jobs in {secs:.3} s = {:.0} jobs/s",
        jobs as f64 / secs
    );
    engine.shutdown().await;
}

fn router_config(name: &str) -> RouterConfig {
    RouterConfig::new(name, "bench-cookie").timing(
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(4),
    )
}

/// Jobs submitted on node a, run on the pools of a and b, `window` in flight.
async fn bench_cluster(jobs: usize, window: usize) {
    let a = Router::start(router_config("bench-a")).await.expect("a");
    let b = Router::start(router_config("bench-b").seeds([a.url()]))
        .await
        .expect("b");
    let pool_config = WorkerPoolConfig {
        workers: 2,
        queue_capacity: 4096,
        ..WorkerPoolConfig::default()
    };
    let pa = WorkerPool::start(&a, registry(), pool_config.clone())
        .await
        .expect("pool a");
    let pb = WorkerPool::start(&b, registry(), pool_config)
        .await
        .expect("pool b");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = |r: &Router| {
        r.get_all_peers()
            .iter()
            .filter(|m| m.has_tag("kind:noop"))
            .count()
            == 2
    };
    while !ready(&a) {
        assert!(Instant::now() < deadline, "cluster did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let coord = Coordinator::start(&a, CoordinatorOptions::default())
        .await
        .expect("coordinator");
    let mut latencies = Vec::with_capacity(jobs);
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0;
    while latencies.len() < jobs {
        while sent < jobs && pending.len() < window {
            let t = Instant::now();
            pending.push_back((
                t,
                coord.submit(Job::new("noop", "")).await.expect("submitted"),
            ));
            sent += 1;
        }
        let (t, job) = pending.pop_front().expect("pending");
        let result = job.result().await.expect("result");
        assert!(result.is_success(), "{result:?}");
        latencies.push(t.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "cluster (2 nodes, window {window}): {jobs} jobs in {secs:.3} s = {:.0} jobs/s, latency p50 {:?} p99 {:?}",
        jobs as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
    let mut sequential = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        coord.run(Job::new("noop", "")).await.expect("result");
        sequential.push(t.elapsed());
    }
    sequential.sort_unstable();
    println!(
        "cluster (2 nodes, one at a time): p50 {:?} p99 {:?}",
        sequential[1000], sequential[1980]
    );
    coord.shutdown().await;
    pa.shutdown().await;
    pb.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

fn main() {
    bench_core(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        bench_engine(500_000, 1).await;
        bench_engine(500_000, 2).await;
        bench_cluster(50_000, 1024).await;
    });
}
