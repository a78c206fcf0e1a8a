//! Scheduling on a heterogeneous cluster: makespan and p99 job latency for
//! round-robin, least-in-flight and earliest-finish.
//!
//! Three worker nodes with two worker loops each, one of them slow: the
//! kind `work` sleeps `10 ms x factor`, where the factor is a property of
//! the node's handler (1 on `w1` and `w2`, 4 on `w3`): a node-dependent
//! kind, as a slow machine would be. A coordinator node (no pool) gets
//! 1,200 jobs at once; each strategy runs on a fresh cluster (fresh
//! statistics). The raw baseline printed in the same run is the ideal
//! makespan: the total work divided by the cluster's capacity
//! (2/10 ms + 2/10 ms + 2/40 ms = 450 jobs/s).
//!
//! Run with `cargo bench -p jobmesh --bench scheduling` (end to end over
//! loopback, three routers and a coordinator in this process).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::{
    Coordinator, CoordinatorConfig, CoordinatorOptions, HandlerError, HandlerRegistry, Job,
    JobContext, StrategyKind, WorkerPool, WorkerPoolConfig,
};

const JOBS: usize = 1_200;
const BASE_MS: u64 = 10;
const FACTORS: [u64; 3] = [1, 1, 4];

fn registry(factor: u64) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry.register("work", move |_ctx: JobContext| async move {
        tokio::time::sleep(Duration::from_millis(BASE_MS * factor)).await;
        Ok::<_, HandlerError>(String::new())
    });
    registry
}

fn router_config(name: &str) -> RouterConfig {
    RouterConfig::new(name, "bench-cookie").timing(
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(4),
    )
}

struct Outcome {
    makespan: Duration,
    p99: Duration,
    per_node: Vec<(String, usize)>,
}

async fn run(strategy: StrategyKind, prefix: &str) -> Outcome {
    let coord_node = Router::start(router_config(&format!("{prefix}-c")))
        .await
        .expect("coordinator node");
    let mut workers = Vec::new();
    let mut pools = Vec::new();
    for (i, factor) in FACTORS.iter().enumerate() {
        let cfg = router_config(&format!("{prefix}-w{}", i + 1)).seeds([coord_node.url()]);
        let router = Router::start(cfg).await.expect("worker node");
        let config = WorkerPoolConfig {
            workers: 2,
            ..WorkerPoolConfig::default()
        };
        pools.push(
            WorkerPool::start(&router, registry(*factor), config)
                .await
                .expect("pool"),
        );
        workers.push(router);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while coord_node
        .get_all_peers()
        .iter()
        .filter(|m| m.has_tag("kind:work"))
        .count()
        < FACTORS.len()
    {
        assert!(Instant::now() < deadline, "cluster did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let options = CoordinatorOptions {
        core: CoordinatorConfig {
            strategy,
            ..CoordinatorConfig::default()
        },
        ..CoordinatorOptions::default()
    };
    let coord = Coordinator::start(&coord_node, options)
        .await
        .expect("coordinator");
    let start = Instant::now();
    let jobs: Vec<Job> = (0..JOBS).map(|_| Job::new("work", "")).collect();
    let pending = coord.submit_many(jobs).await.expect("submit");
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(JOBS)));
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    let mut tasks = Vec::new();
    for job in pending {
        let latencies = Arc::clone(&latencies);
        tasks.push(tokio::spawn(async move {
            let result = job.result().await.expect("result");
            latencies.lock().push(start.elapsed());
            result.worker_node
        }));
    }
    for task in tasks {
        *per_node.entry(task.await.expect("task")).or_default() += 1;
    }
    let makespan = start.elapsed();
    let mut all = latencies.lock().clone();
    all.sort_unstable();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    coord.shutdown().await;
    for pool in pools {
        pool.shutdown().await;
    }
    for w in &workers {
        w.shutdown().await;
    }
    coord_node.shutdown().await;
    Outcome {
        makespan,
        p99,
        per_node: per_node.into_iter().collect(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let capacity: f64 = FACTORS
        .iter()
        .map(|f| 2.0 / (BASE_MS * f) as f64 * 1e3)
        .sum();
    let ideal = JOBS as f64 / capacity;
    println!(
        "heterogeneous cluster: {JOBS} jobs of {BASE_MS} ms x node factor {FACTORS:?}, 2 loops per node"
    );
    println!(
        "baseline (ideal makespan, work / capacity): {:.0} ms",
        ideal * 1e3
    );
    let runs = 3;
    for strategy in [
        StrategyKind::RoundRobin,
        StrategyKind::LeastInFlight,
        StrategyKind::EarliestFinish,
    ] {
        let mut makespans = Vec::new();
        let mut p99s = Vec::new();
        let mut last = Vec::new();
        for run_no in 0..runs {
            let outcome = run(strategy, &format!("{}-{run_no}", strategy.as_str())).await;
            makespans.push(outcome.makespan.as_secs_f64() * 1e3);
            p99s.push(outcome.p99.as_secs_f64() * 1e3);
            last = outcome.per_node;
        }
        println!(
            "{:<16} makespan median {:.0} ms (runs {:?}), p99 latency median {:.0} ms, jobs per node (last run) {:?}",
            strategy.as_str(),
            support::median(makespans.clone()),
            makespans.iter().map(|m| m.round() as u64).collect::<Vec<_>>(),
            support::median(p99s),
            last
        );
    }
}
