//! Shows the library API end to end: three nodes in one process on loopback
//! (each a `Router` with a `WorkerPool`), a `Coordinator` on the first node,
//! jobs spread round-robin, a `gpu` job that only runs on the `gpu` node, a
//! failing job that ends in the dead-letter list, and per-node statistics.
//!
//! Run with `cargo run --example local_cluster`.

use std::time::Duration;

use cluster_router::{Router, RouterConfig};
use job_queue::{
    Coordinator, CoordinatorOptions, HandlerError, HandlerRegistry, Job, JobContext, StrategyKind,
    WorkerPool, WorkerPoolConfig,
};

const SECRET: &str = "example-cluster-secret";

/// The handlers every node serves.
fn handlers() -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry
        .register("shout", |ctx: JobContext| async move {
            Ok::<_, HandlerError>(ctx.data().to_uppercase())
        })
        .register("render", |ctx: JobContext| async move {
            ctx.progress(0.5, "half the frames");
            Ok::<_, HandlerError>(format!("rendered {} on {}", ctx.data(), ctx.node()))
        })
        .register("flaky-disk", |ctx: JobContext| async move {
            Err::<String, _>(HandlerError::retryable(format!(
                "disk full on {}",
                ctx.node()
            )))
        });
    registry
}

async fn start_node(name: &str, tags: &[&str], seed: Option<String>) -> (Router, WorkerPool) {
    let mut config = RouterConfig::new(name, SECRET).tags(tags.iter().copied());
    if let Some(seed) = seed {
        config = config.seeds([seed]);
    }
    let router = Router::start(config).await.expect("router starts");
    let pool_config = WorkerPoolConfig {
        workers: 2,
        ..WorkerPoolConfig::default()
    };
    let pool = WorkerPool::start(&router, handlers(), pool_config)
        .await
        .expect("worker pool starts");
    (router, pool)
}

/// Waits until `router` sees `count` members Up that serve `shout`.
async fn wait_for_members(router: &Router, count: usize) {
    let mut events = router.subscribe();
    loop {
        let ready = router
            .get_all_peers()
            .iter()
            .filter(|m| m.tags.iter().any(|t| t == "kind:shout"))
            .count();
        if ready >= count {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (a, pool_a) = start_node("node-a", &[], None).await;
    let (b, pool_b) = start_node("node-b", &[], Some(a.url())).await;
    let (c, pool_c) = start_node("node-c", &["gpu"], Some(a.url())).await;
    tokio::time::timeout(Duration::from_secs(10), wait_for_members(&a, 3)).await?;
    println!(
        "cluster up: {:?}",
        a.get_all_peers()
            .iter()
            .map(|m| m.node.to_string())
            .collect::<Vec<_>>()
    );

    let mut options = CoordinatorOptions::default();
    options.core.strategy = StrategyKind::RoundRobin;
    options.core.backoff.base = Duration::from_millis(20);
    let coordinator = Coordinator::start(&a, options).await?;

    // 300 small jobs, spread round-robin over the three nodes.
    let mut pending = Vec::new();
    for i in 0..300 {
        pending.push(
            coordinator
                .submit(Job::new("shout", format!("order {i}")))
                .await?,
        );
    }
    for job in pending {
        let result = job.result().await?;
        assert!(result.is_success(), "{result:?}");
    }

    // A job that needs a GPU runs on node-c only.
    let gpu = coordinator
        .run(Job::new("render", "intro.mp4").with_tag("gpu"))
        .await?;
    println!("gpu job: {:?} on {}", gpu.result, gpu.worker_node);

    // A job whose handler always fails: three attempts on different nodes,
    // then the dead-letter list.
    let failed = coordinator.run(Job::new("flaky-disk", "backup")).await?;
    println!(
        "failing job: {}",
        failed
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or("?")
    );
    for dead in coordinator.dead_letters().await? {
        println!(
            "dead letter {}: {} attempt(s)",
            dead.job.id,
            dead.failures.len()
        );
        for attempt in &dead.failures {
            let node = attempt.node.as_deref().unwrap_or("-");
            println!(
                "  attempt {} on {node}: {}",
                attempt.attempt, attempt.failure.message
            );
        }
    }

    let stats = coordinator.stats().await?;
    println!(
        "\nsubmitted {}, succeeded {}, failed {}, retries {}",
        stats.submitted, stats.succeeded, stats.failed, stats.retries
    );
    println!(
        "{:<8} {:>9} {:>6} {:>8} {:>8}",
        "node", "completed", "failed", "p50 ms", "p99 ms"
    );
    for node in &stats.nodes {
        println!(
            "{:<8} {:>9} {:>6} {:>8.3} {:>8.3}",
            node.node, node.completed, node.failed, node.timing.p50_ms, node.timing.p99_ms
        );
    }

    coordinator.shutdown().await;
    for (router, pool) in [(c, pool_c), (b, pool_b), (a, pool_a)] {
        pool.shutdown().await;
        router.leave().await;
    }
    Ok(())
}
