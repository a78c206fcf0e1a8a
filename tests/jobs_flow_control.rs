//! Flow control end to end: a coordinator node and two worker nodes whose
//! pools have small queues (64). The coordinator keeps at most a pool's
//! advertised window outstanding per node and holds the rest in its ready
//! queue, so a flood of jobs is never refused by a full pool: every job
//! succeeds on its first attempt, with no retry and no dead letter.
//! Also: `submit_many` batches.

mod support;

use std::time::Duration;

use cluster_router::Router;
use job_queue::{
    Coordinator, CoordinatorOptions, Job, JobError, JobResult, PendingJob, StrategyKind,
    SubmitError, WorkerPoolConfig,
};
use support::jobs::*;

const QUEUE: usize = 64;

/// A coordinator node (no pool) and two worker nodes with `loops` worker
/// loops and queues of [`QUEUE`].
async fn small_queue_cluster(prefix: &str, loops: usize) -> (Router, Vec<Node>) {
    let coord_node = within(
        STEP,
        "router start",
        Router::start(fast(&format!("{prefix}-c"), &[])),
    )
    .await
    .expect("router starts");
    let config = WorkerPoolConfig {
        workers: loops,
        queue_capacity: QUEUE,
        load_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(200),
        ..WorkerPoolConfig::default()
    };
    let mut nodes = Vec::new();
    let mut names = Vec::new();
    for i in 1..=2 {
        let name = format!("{prefix}-w{i}");
        let seed = Some(coord_node.url());
        let node = start_node_with(seed, &name, &[], registry(""), config.clone()).await;
        nodes.push(node);
        names.push(name);
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    within(STEP, "convergence", converged(&coord_node, &names)).await;
    (coord_node, nodes)
}

/// Submits `jobs` from 4 concurrent tasks, one `submit` each, and waits
/// for every result.
async fn flood(coord: &Coordinator, jobs: Vec<Job>) -> Vec<JobResult> {
    let per_task = jobs.len().div_ceil(4);
    let mut tasks = Vec::new();
    let mut jobs = jobs.into_iter();
    for _ in 0..4 {
        let share: Vec<Job> = jobs.by_ref().take(per_task).collect();
        let coord = coord.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending: Vec<PendingJob> = Vec::with_capacity(share.len());
            for job in share {
                pending.push(
                    within(STEP, "submit", coord.submit(job))
                        .await
                        .expect("accepted"),
                );
            }
            let mut results = Vec::with_capacity(pending.len());
            for p in pending {
                results.push(within(STEP, "result", p.result()).await.expect("a result"));
            }
            results
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(within(STEP * 4, "flood task", task).await.expect("task"));
    }
    results
}

async fn assert_nothing_refused(coord: &Coordinator, results: &[JobResult], expected: usize) {
    assert_eq!(results.len(), expected);
    for result in results {
        assert!(result.is_success(), "{result:?}");
        assert_eq!(result.attempt, 1, "{result:?}");
    }
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!(stats.succeeded, expected as u64, "{stats:?}");
    assert_eq!(
        (
            stats.retries,
            stats.refusals,
            stats.failed,
            stats.dead_letters
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.in_progress, stats.queued), (0, 0));
    assert!(within(STEP, "dead letters", coord.dead_letters())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_jobs_on_small_queues_all_succeed_first_time() {
    let (coord_node, nodes) = small_queue_cluster("fc", 2).await;
    let coord = coordinator(&coord_node, StrategyKind::LeastInFlight).await;
    let jobs: Vec<Job> = (0..20_000)
        .map(|i| Job::new("echo", i.to_string()))
        .collect();
    let results = flood(&coord, jobs).await;
    assert_nothing_refused(&coord, &results, 20_000).await;
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    for node in &stats.nodes {
        if node.node.ends_with("-w1") || node.node.ends_with("-w2") {
            assert!(node.completed > 1_000, "both nodes work: {:?}", stats.nodes);
        }
    }
    finish(coord, nodes).await;
    within(STEP, "router shutdown", coord_node.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_jobs_on_three_loops_wait_in_the_coordinator_not_in_retries() {
    let (coord_node, nodes) = small_queue_cluster("fs", 3).await;
    let coord = coordinator(&coord_node, StrategyKind::RoundRobin).await;
    let jobs: Vec<Job> = (0..2_000).map(|_| Job::new("sleep", "2")).collect();
    let results = flood(&coord, jobs).await;
    assert_nothing_refused(&coord, &results, 2_000).await;
    finish(coord, nodes).await;
    within(STEP, "router shutdown", coord_node.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_many_is_one_all_or_nothing_batch() {
    let (coord_node, nodes) = small_queue_cluster("fb", 2).await;
    let dir = std::env::temp_dir().join(format!("jobs-flow-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = CoordinatorOptions {
        data_dir: Some(dir.clone()),
        ..CoordinatorOptions::default()
    };
    let coord = coordinator_with(&coord_node, StrategyKind::LeastInFlight, options).await;
    let jobs: Vec<Job> = (0..1_000)
        .map(|i| Job::new("echo", i.to_string()))
        .collect();
    let pending = within(STEP, "submit_many", coord.submit_many(jobs))
        .await
        .expect("accepted");
    assert_eq!(pending.len(), 1_000);
    for (i, p) in pending.into_iter().enumerate() {
        let result = within(STEP, "result", p.result()).await.unwrap();
        assert_eq!(
            result.outcome(),
            Ok(i.to_string().as_str()),
            "batch order kept"
        );
        assert_eq!(result.attempt, 1);
    }
    // One bad job refuses the whole batch.
    let bad = vec![
        Job::new("echo", "a"),
        Job::new("", "no kind"),
        Job::new("echo", "b"),
    ];
    let err = within(STEP, "bad batch", coord.submit_many(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JobError::Submit(SubmitError::InBatch { index: 1, .. })),
        "{err:?}"
    );
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!(
        (stats.submitted, stats.succeeded, stats.refusals),
        (1_000, 1_000, 0)
    );
    assert!(
        dir.join("jobs.journal").metadata().unwrap().len() > 0,
        "journaled"
    );
    within(STEP, "coordinator shutdown", coord.shutdown()).await;
    let _ = std::fs::remove_dir_all(&dir);
    stop_all(nodes).await;
    within(STEP, "router shutdown", coord_node.shutdown()).await;
}
