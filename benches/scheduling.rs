//! Scheduling on a heterogeneous cluster: makespan and job latency (p50,
//! p99) for round-robin, least-in-flight and earliest-finish, each with and
//! without speculative backups, in two scenarios:
//!
//! - **batch**: 1,200 jobs submitted at once (a saturated cluster, then the
//!   tail at the end of the batch);
//! - **open loop**: 1,500 jobs arriving at a steady 65 % of the cluster's
//!   capacity (a realistic, unsaturated load; makespan is then set by the
//!   arrivals, latency is what differs).
//!
//! Three worker nodes with two worker loops each, one of them slow: the
//! kind `work` sleeps `10 ms x factor`, where the factor is a property of
//! the node's handler (1 on `w1` and `w2`, 4 on `w3`): a node-dependent
//! kind, as a slow machine would be. Every node also has hiccups, as real
//! machines do (a pause, a noisy neighbour): every 300th attempt on each
//! node takes 20 times as long, whichever job it is. Jobs "with backups"
//! (rare enough that p99 shows the scheduling and p99.9 the hiccups) are marked `speculative` (default settings: a backup after
//! `max(3 x p95, 100 ms) + 50 ms`); the others never run twice. A
//! coordinator node (no pool) places the jobs; each row runs on a fresh
//! cluster (fresh statistics).
//!
//! Raw baselines printed in the same run: the ideal batch makespan (the
//! work without hiccups divided by the cluster's capacity, 2/10 ms +
//! 2/10 ms + 2/40 ms = 450 jobs/s) and the ideal latency (one job on an
//! idle fast node, 10 ms).
//!
//! Run with `cargo bench -p jobmesh --bench scheduling` (end to end over
//! loopback, four routers and a coordinator in this process).
//! `SCHED_RUNS=n` sets the runs per row (default 3; medians are printed).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::{
    Coordinator, CoordinatorConfig, CoordinatorOptions, HandlerError, HandlerRegistry, Job,
    JobContext, PendingJob, StrategyKind, WorkerPool, WorkerPoolConfig,
};

const BATCH_JOBS: usize = 1_200;
const OPEN_JOBS: usize = 1_500;
const OPEN_LOAD: f64 = 0.65;
const BASE_MS: u64 = 10;
const FACTORS: [u64; 3] = [1, 1, 4];
const HICCUP_EVERY: u64 = 300;
const HICCUP_FACTOR: u64 = 20;

fn registry(factor: u64) -> HandlerRegistry {
    let attempts = Arc::new(AtomicU64::new(0));
    let mut registry = HandlerRegistry::new();
    registry.register("work", move |_ctx: JobContext| {
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let hiccup = if n % HICCUP_EVERY == 0 {
            HICCUP_FACTOR
        } else {
            1
        };
        async move {
            tokio::time::sleep(Duration::from_millis(BASE_MS * factor * hiccup)).await;
            Ok::<_, HandlerError>(String::new())
        }
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

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Batch,
    OpenLoop,
}

struct Outcome {
    makespan: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    per_node: Vec<(String, usize)>,
    backups: u64,
}

struct Cluster {
    coord_node: Router,
    workers: Vec<Router>,
    pools: Vec<WorkerPool>,
}

async fn cluster(prefix: &str) -> Cluster {
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
    Cluster {
        coord_node,
        workers,
        pools,
    }
}

type Waiter = tokio::task::JoinHandle<(Duration, String)>;

/// Waits for the result of `job` submitted at `submitted` (spawned at once,
/// so that its latency is taken when the result arrives).
fn wait_for(submitted: Instant, job: PendingJob) -> Waiter {
    tokio::spawn(async move {
        let result = job.result().await.expect("result");
        assert!(result.error.is_none(), "{result:?}");
        (submitted.elapsed(), result.worker_node)
    })
}

/// Waits for every result; returns (latency, worker node) per job.
async fn collect(tasks: Vec<Waiter>) -> Vec<(Duration, String)> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

async fn run(
    scenario: Scenario,
    strategy: StrategyKind,
    speculative: bool,
    prefix: &str,
) -> Outcome {
    let cluster = cluster(prefix).await;
    let options = CoordinatorOptions {
        core: CoordinatorConfig {
            strategy,
            ..CoordinatorConfig::default()
        },
        ..CoordinatorOptions::default()
    };
    let coord = Coordinator::start(&cluster.coord_node, options)
        .await
        .expect("coordinator");
    let job = || Job::new("work", "").with_speculative(speculative);
    let start = Instant::now();
    let pending: Vec<Waiter> = match scenario {
        Scenario::Batch => {
            let jobs: Vec<Job> = (0..BATCH_JOBS).map(|_| job()).collect();
            let pending = coord.submit_many(jobs).await.expect("submit");
            pending.into_iter().map(|p| wait_for(start, p)).collect()
        }
        Scenario::OpenLoop => {
            let gap = Duration::from_secs_f64(1.0 / (capacity() * OPEN_LOAD));
            let mut pending = Vec::with_capacity(OPEN_JOBS);
            for i in 0..OPEN_JOBS {
                // On schedule, not paced by the previous submission.
                let due = start + gap.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let submitted = Instant::now();
                let job = coord.submit(job()).await.expect("submit");
                pending.push(wait_for(submitted, job));
            }
            pending
        }
    };
    let results = collect(pending).await;
    let makespan = start.elapsed();
    let mut latencies: Vec<Duration> = results.iter().map(|(l, _)| *l).collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for (_, node) in results {
        let short = node.rsplit('-').next().unwrap_or_default().to_owned();
        *per_node.entry(short).or_default() += 1;
    }
    let backups = coord.stats().await.map_or(0, |s| s.speculative_started);
    coord.shutdown().await;
    for pool in cluster.pools {
        pool.shutdown().await;
    }
    for w in &cluster.workers {
        w.shutdown().await;
    }
    cluster.coord_node.shutdown().await;
    Outcome {
        makespan,
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        per_node: per_node.into_iter().collect(),
        backups,
    }
}

/// Jobs per second the cluster completes without hiccups.
fn capacity() -> f64 {
    FACTORS
        .iter()
        .map(|f| 2.0 / (BASE_MS * f) as f64 * 1e3)
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("SCHED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(3);
    println!(
        "heterogeneous cluster: work = {BASE_MS} ms x node factor {FACTORS:?}, 2 loops per node, \
         every {HICCUP_EVERY}th attempt per node x{HICCUP_FACTOR}; medians of {runs} runs"
    );
    println!(
        "baseline: ideal batch makespan (work / capacity, hiccups not counted) {:.0} ms; \
         ideal latency (idle fast node) {BASE_MS} ms",
        BATCH_JOBS as f64 / capacity() * 1e3
    );
    for scenario in [Scenario::Batch, Scenario::OpenLoop] {
        match scenario {
            Scenario::Batch => println!("\nbatch: {BATCH_JOBS} jobs at once"),
            Scenario::OpenLoop => println!(
                "\nopen loop: {OPEN_JOBS} jobs at {:.0} jobs/s ({:.0} % of capacity; arrivals alone take {:.0} ms)",
                capacity() * OPEN_LOAD,
                OPEN_LOAD * 100.0,
                OPEN_JOBS as f64 / (capacity() * OPEN_LOAD) * 1e3
            ),
        }
        for strategy in [
            StrategyKind::RoundRobin,
            StrategyKind::LeastInFlight,
            StrategyKind::EarliestFinish,
        ] {
            for speculative in [false, true] {
                let (mut spans, mut p50s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
                let mut p999s = Vec::new();
                let mut last = (Vec::new(), 0);
                for run_no in 0..runs {
                    let prefix =
                        format!("{}-{}-{run_no}", strategy.as_str(), u8::from(speculative));
                    let o = run(scenario, strategy, speculative, &prefix).await;
                    spans.push(ms(o.makespan));
                    p50s.push(ms(o.p50));
                    p99s.push(ms(o.p99));
                    p999s.push(ms(o.p999));
                    last = (o.per_node, o.backups);
                }
                println!(
                    "{:<16} {:<12} makespan {:>6.0} ms (runs {:?})  p50 {:>5.0} ms  p99 {:>6.0} ms  p99.9 {:>6.0} ms  \
                     jobs per node {:?}, backups {} (last run)",
                    strategy.as_str(),
                    if speculative { "with backups" } else { "no backups" },
                    support::median(spans.clone()),
                    spans.iter().map(|m| m.round() as u64).collect::<Vec<_>>(),
                    support::median(p50s),
                    support::median(p99s),
                    support::median(p999s),
                    last.0,
                    last.1
                );
            }
        }
    }
}
