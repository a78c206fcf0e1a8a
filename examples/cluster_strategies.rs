//! Shows the seed scenario end to end: three nodes in one process (each a
//! `Router` with a `WorkerPool` serving `worker@<node>`), a `Coordinator` on
//! node-1 dispatching jobs across them with each load-balancing strategy,
//! and every result routed back to the coordinator by its `from` address.
//! node-3 is made slower than the others, so the strategies that watch load
//! or latency send it fewer jobs; the per-node counts are printed.
//!
//! Run with `cargo run --example cluster_strategies`.
//! Depends on: `job-queue`, `cluster-router`, `tokio`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::{
    kind_tag, Coordinator, CoordinatorOptions, HandlerError, HandlerRegistry, Job, JobContext,
    StrategyKind, WorkerPool, WorkerPoolConfig,
};
use tokio::task::JoinSet;

const SECRET: &str = "example-cluster-secret";
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
const JOBS: usize = 600;
/// Callers submitting at the same time.
const CLIENTS: usize = 12;

/// The `deliver` kind: a short task, slower on node-3.
fn handlers() -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry.register("deliver", |ctx: JobContext| async move {
        if ctx.node() == "node-3" {
            // node-3 is the slow rider.
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        Ok::<_, HandlerError>(format!("{} delivered by {}", ctx.data(), ctx.node()))
    });
    registry
}

async fn start_node(
    name: &str,
    seed: Option<String>,
) -> Result<(Router, WorkerPool), Box<dyn std::error::Error>> {
    let mut config = RouterConfig::new(name, SECRET);
    if let Some(seed) = seed {
        config = config.seeds([seed]);
    }
    let router = Router::start(config).await?;
    let pool_config = WorkerPoolConfig {
        workers: 2,
        ..WorkerPoolConfig::default()
    };
    let pool = WorkerPool::start(&router, handlers(), pool_config).await?;
    Ok((router, pool))
}

/// Waits until `router` sees every node Up and serving `deliver`.
async fn wait_for_workers(router: &Router) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = router.subscribe();
    let tag = kind_tag("deliver");
    tokio::time::timeout(Duration::from_secs(10), async {
        while router
            .get_all_peers()
            .iter()
            .filter(|m| m.tags.contains(&tag))
            .count()
            < NODES.len()
        {
            let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
        }
    })
    .await?;
    Ok(())
}

/// Runs `JOBS` jobs with `strategy` from `CLIENTS` callers that each wait
/// for one result before submitting their next job (a steady stream, so the
/// in-flight counts and latencies the strategies look at differ by node);
/// returns the jobs per worker node.
async fn run(
    coordinator: &Coordinator,
    strategy: StrategyKind,
) -> Result<BTreeMap<String, usize>, Box<dyn std::error::Error>> {
    let mut clients = JoinSet::new();
    for client in 0..CLIENTS {
        let coordinator = coordinator.clone();
        clients.spawn(async move {
            let mut nodes = Vec::new();
            for i in 0..JOBS / CLIENTS {
                let job =
                    Job::new("deliver", format!("order {client}-{i}")).with_strategy(strategy);
                let result = coordinator.run(job).await?;
                let output = result.outcome().map_err(|f| f.to_string())?;
                // The result came back from the node that ran the job.
                assert!(output.ends_with(&result.worker_node), "{output}");
                nodes.push(result.worker_node);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(nodes)
        });
    }
    let mut per_node = BTreeMap::new();
    while let Some(nodes) = clients.join_next().await {
        for node in nodes?.map_err(|e| e.to_string())? {
            *per_node.entry(node).or_insert(0) += 1;
        }
    }
    Ok(per_node)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut nodes = vec![start_node(NODES[0], None).await?];
    let seed = nodes[0].0.url();
    for name in &NODES[1..] {
        nodes.push(start_node(name, Some(seed.clone())).await?);
    }
    wait_for_workers(&nodes[0].0).await?;
    println!("cluster up: {}", NODES.join(", "));

    // One coordinator, on node-1: it sends jobs to worker@node-N and the
    // results come back to coordinator@node-1.
    let coordinator = Coordinator::start(&nodes[0].0, CoordinatorOptions::default()).await?;
    println!(
        "{:<16} {:>7} {:>7} {:>7} {:>8}",
        "strategy", NODES[0], NODES[1], NODES[2], "time ms"
    );
    for strategy in StrategyKind::ALL {
        let started = Instant::now();
        let per_node = run(&coordinator, strategy).await?;
        let count = |node: &str| per_node.get(node).copied().unwrap_or(0);
        println!(
            "{:<16} {:>7} {:>7} {:>7} {:>8}",
            strategy.as_str(),
            count(NODES[0]),
            count(NODES[1]),
            count(NODES[2]),
            started.elapsed().as_millis()
        );
        assert_eq!(per_node.values().sum::<usize>(), JOBS);
    }

    let stats = coordinator.stats().await?;
    println!(
        "all {} jobs succeeded ({} failed, {} retries)",
        stats.succeeded, stats.failed, stats.retries
    );
    coordinator.shutdown().await;
    for (router, pool) in nodes.into_iter().rev() {
        pool.shutdown().await;
        router.leave().await;
    }
    Ok(())
}
