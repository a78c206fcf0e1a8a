//! The local path: a coordinator hands jobs to the worker pool of its own
//! node (same process) as typed values and gets typed results back, with
//! every semantic of the envelope path: results, cancels, fencing of a
//! restarted coordinator's queued jobs, a pool replaced on the same node,
//! and envelopes for the pools of other nodes.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use job_queue::{
    Fault, HandlerError, HandlerRegistry, Job, JobContext, StrategyKind, WorkerPool,
    WorkerPoolConfig,
};
use support::jobs::*;
use support::{wait_until, within};
use tokio::sync::watch;

/// The test handlers plus `gated` (returns its data once `open` is true,
/// or ends early when cancelled, counting it in `cancelled`).
fn gated_registry(open: &watch::Receiver<bool>, cancelled: &Arc<AtomicUsize>) -> HandlerRegistry {
    let mut registry = registry("");
    let open = open.clone();
    let cancelled = Arc::clone(cancelled);
    registry.register("gated", move |ctx: JobContext| {
        let mut open = open.clone();
        let cancelled = Arc::clone(&cancelled);
        async move {
            tokio::select! {
                _ = open.wait_for(|open| *open) => Ok::<_, HandlerError>(ctx.data().to_owned()),
                () = ctx.cancelled() => {
                    cancelled.fetch_add(1, Ordering::SeqCst);
                    Err(HandlerError::permanent("cancelled"))
                }
            }
        }
    });
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_the_coordinators_own_node_take_the_local_path() {
    let nodes = cluster(&[("lp-solo", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;

    // One at a time: every dispatch and every result goes the local way.
    for i in 0..200 {
        let pending = within(
            STEP,
            "submit",
            coord.submit(Job::new("echo", format!("one-{i}"))),
        )
        .await
        .unwrap();
        let result = within(STEP, "result", pending.result()).await.unwrap();
        assert_eq!(result.outcome(), Ok(format!("one-{i}").as_str()));
        assert_eq!(result.worker_node, "lp-solo");
    }
    assert_eq!(nodes[0].pool.local_jobs(), 200);
    assert_eq!(nodes[0].pool.local_results(), 200);

    // In bulk: a full mailbox may send some by envelope; none is lost.
    echo_batch(&coord, "bulk", 20_000).await;
    assert!(
        nodes[0].pool.local_jobs() > 200,
        "the bulk went locally too"
    );
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!((stats.succeeded, stats.failed), (20_200, 0));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_pool_still_gets_envelopes() {
    let nodes = cluster(&[("lp-a", &[]), ("lp-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let jobs = (0..2_000)
        .map(|i| Job::new("echo", i.to_string()))
        .collect();
    let pending = within(STEP, "submit", coord.submit_many(jobs))
        .await
        .unwrap();
    for (i, job) in pending.into_iter().enumerate() {
        let result = within(STEP, "result", job.result()).await.unwrap();
        assert_eq!(result.outcome(), Ok(i.to_string().as_str()));
    }
    assert!(
        nodes[0].pool.local_jobs() > 0,
        "the own node's share is local"
    );
    assert!(
        nodes[1].pool.finished() > 0,
        "round-robin used the other node"
    );
    assert_eq!(nodes[1].pool.local_jobs(), 0, "no coordinator on lp-b");
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_a_job_on_the_local_path() {
    let (_open, gate) = watch::channel(false);
    let cancelled = Arc::new(AtomicUsize::new(0));
    let nodes = cluster_with(
        &[("lp-cancel", &[])],
        |_| gated_registry(&gate, &cancelled),
        Duration::from_millis(100),
    )
    .await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;
    let pending = submit_gated_jobs(&coord, 2).await;
    let running = wait_until(STEP, || nodes[0].pool.in_flight() == 2).await;
    assert!(running, "both gated jobs run");
    assert_eq!(nodes[0].pool.local_jobs(), 2);

    let ids: Vec<_> = pending.iter().map(|p| p.id().clone()).collect();
    let report = within(STEP, "cancel", coord.cancel(ids)).await.unwrap();
    assert_eq!(report.cancelled.len(), 2, "{report:?}");
    for job in pending {
        let result = within(STEP, "cancelled result", job.result())
            .await
            .unwrap();
        assert!(result.error.is_some(), "{result:?}");
    }
    // The handlers saw the cancel (a typed cancel to the local pool).
    let seen = wait_until(STEP, || cancelled.load(Ordering::SeqCst) == 2).await;
    assert!(
        seen,
        "handlers cancelled: {}",
        cancelled.load(Ordering::SeqCst)
    );
    let idle = wait_until(STEP, || nodes[0].pool.in_flight() == 0).await;
    assert!(idle, "the pool's loops are free again");
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_fences_its_predecessors_queued_local_jobs() {
    const JOBS: usize = 2_000;
    let (open, gate) = watch::channel(false);
    let cancelled = Arc::new(AtomicUsize::new(0));
    let nodes = cluster_with(
        &[("lp-fence", &[])],
        |_| gated_registry(&gate, &cancelled),
        Duration::from_millis(100),
    )
    .await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;
    let pending = submit_gated_jobs(&coord, JOBS).await;
    // Both loops run a gated job, and more wait in the pool's queue.
    let busy = wait_until(STEP, || {
        nodes[0].pool.in_flight() == 2 && nodes[0].pool.queue_depth() > 0
    })
    .await;
    assert!(busy, "jobs queue on the local pool");
    let before = nodes[0].pool.local_jobs();
    assert!(before > 2, "dispatched locally: {before}");

    within(STEP, "inject", coord.inject_fault(Fault::Panic))
        .await
        .unwrap();
    // The successor resumes every job under its own incarnation; its first
    // local dispatch fences what its predecessor queued here and has not
    // started, and the predecessor's results are dropped as late.
    open.send_replace(true);
    for (i, job) in pending.into_iter().enumerate() {
        let result = within(Duration::from_secs(60), "result", job.result())
            .await
            .unwrap();
        assert_eq!(result.outcome(), Ok(i.to_string().as_str()), "{result:?}");
    }
    assert_eq!(coord.restarts(), 1);
    assert!(
        nodes[0].pool.local_jobs() > before,
        "the successor went locally"
    );
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!((stats.succeeded, stats.failed), (JOBS as u64, 0));
    // Every job the predecessor dispatched here was either fenced before
    // it started or ran and came back under the old incarnation.
    let old = stats.late_results + nodes[0].pool.fenced();
    assert!(
        old >= before,
        "late {} + fenced {} < {before}",
        stats.late_results,
        nodes[0].pool.fenced()
    );
    assert!(
        stats.late_results >= 2,
        "the two running ones came back late"
    );
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_replaced_on_the_same_node_is_reached_locally() {
    let mut nodes = cluster(&[("lp-swap", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;
    let run = |tag: &'static str| {
        let coord = coord.clone();
        async move { echo_batch(&coord, tag, 1_000).await }
    };
    run("first").await;
    assert!(nodes[0].pool.local_jobs() > 0);

    let node = nodes.pop().unwrap();
    within(STEP, "pool shutdown", node.pool.shutdown()).await;
    let config = WorkerPoolConfig {
        workers: 2,
        queue_capacity: 256,
        load_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(200),
        ..WorkerPoolConfig::default()
    };
    let pool = within(
        STEP,
        "new pool",
        WorkerPool::start(&node.router, registry(""), config),
    )
    .await
    .unwrap();
    nodes.push(Node {
        router: node.router,
        pool,
    });
    run("second").await;
    assert_eq!(
        nodes[0].pool.local_jobs(),
        1_000,
        "all to the new pool, locally"
    );
    finish(coord, nodes).await;
}
