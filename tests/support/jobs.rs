//! Nodes with worker pools and coordinators for the `jobs_*` tests: a fast
//! cluster, handlers for every scenario, membership waits.

use std::time::Duration;

use cluster_router::{MemberEvent, Router, RouterConfig};
use job_queue::{
    Coordinator, CoordinatorOptions, HandlerError, HandlerRegistry, JobContext, StrategyKind,
    WorkerPool, WorkerPoolConfig,
};

// Re-exported so that `use support::<area>::*` brings the bounded awaits.
use super::{fast_router, until_members};
#[allow(unused_imports)]
pub use super::{wait_until, within};

/// The cluster secret of every test.
pub const SECRET: &str = "jobs-test-cookie";

/// Bound of every single await in these tests.
pub const STEP: Duration = Duration::from_secs(15);

/// [`fast_router`] with [`SECRET`], a 3 s request timeout and `tags`, and
/// failure detection that tolerates a loaded machine: a link closes after
/// 2 s without a frame (not 300 ms), a silent node is Suspect after 2 s and
/// Down after 3 s. A node that flapped to Suspect under load would not be
/// eligible for a moment, and the tests that check which node ran which
/// attempt (`jobs_failover`, `jobs_retries`) would see another node or an
/// extra attempt. A node that really dies still closes its links at once
/// (Suspect at once, Down 3 s later).
pub fn fast(name: &str, tags: &[&str]) -> RouterConfig {
    let mut cfg = fast_router(name, SECRET).tags(tags.iter().copied());
    cfg.request_timeout = Duration::from_secs(3);
    cfg.transport.heartbeat_misses = 20;
    cfg.suspect_after = Duration::from_secs(2);
    cfg.down_after = Duration::from_secs(3);
    cfg.give_up_after = Duration::from_secs(6);
    cfg
}

/// A per-attempt timeout for jobs that must time out on a hung node while
/// their retry finishes well within it, even on a loaded machine: the
/// retry's dispatch, run and result must fit, so it is generous.
pub const RETRY_FITS: Duration = Duration::from_secs(3);

/// The handlers every test node serves.
///
/// - `echo`: returns its data;
/// - `whoami`: returns the node's name;
/// - `boom`: panics; `reject`: permanent error;
/// - `stall`: never finishes on `stall_node` (hangs), echoes elsewhere.
pub fn registry(stall_node: &'static str) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry
        .register("echo", |ctx: JobContext| async move {
            Ok::<_, HandlerError>(ctx.data().to_owned())
        })
        .register("whoami", |ctx: JobContext| async move {
            Ok::<_, HandlerError>(ctx.node().to_owned())
        })
        .register("boom", |ctx: JobContext| async move {
            if ctx.attempt() > 0 {
                panic!("boom on {}", ctx.node());
            }
            Ok::<_, HandlerError>(String::new())
        })
        .register("reject", |_ctx: JobContext| async move {
            Err::<String, _>(HandlerError::permanent("never"))
        })
        .register("stall", move |ctx: JobContext| async move {
            if ctx.node() == stall_node {
                std::future::pending::<()>().await;
            }
            Ok::<_, HandlerError>(ctx.node().to_owned())
        })
        .register("sleep", |ctx: JobContext| async move {
            let ms: u64 = ctx.data().parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(ctx.node().to_owned())
        })
        .register("flaky", |ctx: JobContext| async move {
            Err::<String, _>(HandlerError::retryable(format!(
                "flaky on {} (attempt {})",
                ctx.node(),
                ctx.attempt()
            )))
        })
        .register("progress", |ctx: JobContext| async move {
            ctx.progress(0.5, "half way");
            Ok::<_, HandlerError>(ctx.node().to_owned())
        });
    registry
}

/// [`registry`], with every `whoami` taking `delay` longer (an injected
/// network or processing delay on one node).
pub fn delayed_registry(delay: Duration) -> HandlerRegistry {
    let mut registry = registry("");
    registry.register("whoami", move |ctx: JobContext| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, HandlerError>(ctx.node().to_owned())
    });
    registry
}

/// A node: its router and worker pool.
#[derive(Debug)]
pub struct Node {
    /// The node's router.
    pub router: Router,
    /// The node's worker pool.
    pub pool: WorkerPool,
}

/// Starts one node per `(name, tags)`, all joining through the first, each
/// with a worker pool of 2 loops serving [`registry`]; waits until the first
/// node sees every node Up and advertising `kind:echo`.
pub async fn cluster(nodes: &[(&str, &[&str])], stall_node: &'static str) -> Vec<Node> {
    cluster_with(nodes, |_| registry(stall_node), Duration::from_millis(100)).await
}

/// Like [`cluster`], with each node's handlers from `make(node name)` and
/// the pools' load published every `load_interval`.
pub async fn cluster_with(
    nodes: &[(&str, &[&str])],
    make: impl Fn(&str) -> HandlerRegistry,
    load_interval: Duration,
) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for (name, tags) in nodes {
        let seed = out.first().map(|n: &Node| n.router.url());
        out.push(start_node(seed, name, tags, make(name), load_interval).await);
    }
    let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
    within(
        STEP,
        "cluster convergence",
        converged(&out[0].router, &names),
    )
    .await;
    out
}

/// Starts one node joining through `seed`, with a worker pool of 2 loops
/// serving `registry`.
pub async fn start_node(
    seed: Option<String>,
    name: &str,
    tags: &[&str],
    registry: HandlerRegistry,
    load_interval: Duration,
) -> Node {
    let config = WorkerPoolConfig {
        workers: 2,
        queue_capacity: 256,
        load_interval,
        shutdown_grace: Duration::from_millis(200),
        ..WorkerPoolConfig::default()
    };
    start_node_with(seed, name, tags, registry, config).await
}

/// Starts one node joining through `seed`, with a worker pool configured
/// by `config` serving `registry`.
pub async fn start_node_with(
    seed: Option<String>,
    name: &str,
    tags: &[&str],
    registry: HandlerRegistry,
    config: WorkerPoolConfig,
) -> Node {
    let mut cfg = fast(name, tags);
    if let Some(seed) = seed {
        cfg = cfg.seeds([seed]);
    }
    let router = within(STEP, "router start", Router::start(cfg))
        .await
        .expect("router starts");
    let pool = within(
        STEP,
        "pool start",
        WorkerPool::start(&router, registry, config),
    )
    .await
    .expect("pool starts");
    Node { router, pool }
}

/// Whether `router` sees every node in `names` Up with its kinds advertised.
fn sees_all(router: &Router, names: &[&str]) -> bool {
    let peers = router.get_all_peers();
    names.iter().all(|n| {
        peers
            .iter()
            .any(|m| m.node == *n && m.tags.iter().any(|t| t == "kind:echo"))
    })
}

/// Waits (on membership events) until `router` sees every node in `names`
/// Up with its kinds advertised.
pub async fn converged(router: &Router, names: &[&str]) {
    until_members(router, |r| sees_all(r, names)).await;
}

/// Waits until `router` reports `node` Down.
pub async fn wait_down(router: &Router, node: &str) {
    let mut events = router.subscribe();
    loop {
        let down = router
            .members()
            .iter()
            .any(|m| m.node == node && !m.status.is_reachable());
        if down {
            return;
        }
        match events.recv().await {
            Ok(MemberEvent::Down(m)) if m.node == node => return,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("membership events closed: {e}"),
        }
    }
}

/// A coordinator on `router` with `strategy`, a 20 ms sweep and short backoff.
pub async fn coordinator(router: &Router, strategy: StrategyKind) -> Coordinator {
    coordinator_with(router, strategy, CoordinatorOptions::default()).await
}

/// [`coordinator`] on top of `options`.
pub async fn coordinator_with(
    router: &Router,
    strategy: StrategyKind,
    mut options: CoordinatorOptions,
) -> Coordinator {
    options.core.strategy = strategy;
    options.core.backoff.base = Duration::from_millis(20);
    options.core.backoff.max = Duration::from_millis(200);
    within(
        STEP,
        "coordinator start",
        Coordinator::start(router, options),
    )
    .await
    .expect("coordinator starts")
}

/// Shuts every node down.
pub async fn stop_all(nodes: Vec<Node>) {
    for node in nodes {
        within(STEP, "pool shutdown", node.pool.shutdown()).await;
        within(STEP, "router shutdown", node.router.shutdown()).await;
    }
}

/// Shuts the coordinator down, then every node.
pub async fn finish(coord: Coordinator, nodes: Vec<Node>) {
    within(STEP, "coordinator shutdown", coord.shutdown()).await;
    stop_all(nodes).await;
}

/// Submits `count` echo jobs whose data is `<prefix>-<i>` in one
/// `submit_many` and checks that each result echoes its own data.
pub async fn echo_batch(coord: &Coordinator, prefix: &str, count: usize) {
    let jobs = (0..count)
        .map(|i| job_queue::Job::new("echo", format!("{prefix}-{i}")))
        .collect();
    let pending = within(STEP, "submit_many", coord.submit_many(jobs))
        .await
        .unwrap();
    for (i, job) in pending.into_iter().enumerate() {
        let result = within(STEP, "result", job.result()).await.unwrap();
        assert_eq!(result.outcome(), Ok(format!("{prefix}-{i}").as_str()));
    }
}

/// Submits `count` jobs of the test kind `gated` (data `0`, `1`, ...; a
/// 120 s timeout, so that they wait for their gate, not their deadline) in
/// one `submit_many`.
pub async fn submit_gated_jobs(coord: &Coordinator, count: usize) -> Vec<job_queue::PendingJob> {
    let jobs = (0..count)
        .map(|i| job_queue::Job::new("gated", i.to_string()).with_timeout(Duration::from_secs(120)))
        .collect();
    within(STEP, "submit gated jobs", coord.submit_many(jobs))
        .await
        .unwrap()
}
