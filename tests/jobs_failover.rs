//! Failures across a real cluster: panics and permanent errors, dead letters
//! and resubmission, a node dying mid-job, and timeouts.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use job_queue::{FailureCause, Job, StrategyKind};
use support::jobs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_retried_on_every_node_then_dead_lettered_and_workers_survive() {
    let nodes = cluster(&[("pa-a", &[]), ("pa-b", &[]), ("pa-c", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let result = within(STEP, "boom", coord.run(Job::new("boom", "")))
        .await
        .unwrap();
    let failure = result.error.clone().expect("a panic result");
    assert_eq!((failure.cause, result.attempt), (FailureCause::Panic, 3));
    assert!(failure.message.contains("boom on"), "{}", failure.message);
    let letters = within(STEP, "dead letters", coord.dead_letters())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.job.id, result.id);
    let causes: Vec<FailureCause> = letter.failures.iter().map(|f| f.failure.cause).collect();
    assert_eq!(causes, [FailureCause::Panic; 3]);
    let tried: HashSet<String> = letter
        .failures
        .iter()
        .filter_map(|f| f.node.clone())
        .collect();
    assert_eq!(
        tried.len(),
        3,
        "each attempt on a different node: {tried:?}"
    );
    // Every node's workers keep going.
    let mut ran_on = HashSet::new();
    for _ in 0..3 {
        let ok = within(STEP, "whoami", coord.run(Job::new("whoami", "")))
            .await
            .unwrap();
        assert!(ok.is_success(), "{ok:?}");
        ran_on.insert(ok.worker_node);
    }
    assert_eq!(ran_on.len(), 3);
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_get_one_attempt_and_can_be_resubmitted() {
    let nodes = cluster(&[("pe-a", &[]), ("pe-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let result = within(STEP, "reject", coord.run(Job::new("reject", "x")))
        .await
        .unwrap();
    let failure = result.error.clone().unwrap();
    assert_eq!(
        (failure.cause, failure.retryable, result.attempt),
        (FailureCause::Handler, false, 1)
    );
    let letters = within(STEP, "dead letters", coord.dead_letters())
        .await
        .unwrap();
    assert_eq!(letters[0].failures.len(), 1);
    let again = within(STEP, "resubmit", coord.resubmit(result.id.clone()))
        .await
        .unwrap();
    assert_eq!(again.id(), &result.id);
    let second = within(STEP, "resubmitted result", again.result())
        .await
        .unwrap();
    assert_eq!(second.attempt, 1, "fresh attempts");
    assert!(!second.is_success());
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!((stats.submitted, stats.failed, stats.retries), (2, 2, 0));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_node_that_dies_is_retried_elsewhere_at_once() {
    let nodes = cluster(&[("nd-a", &[]), ("nd-b", &[]), ("nd-c", &[])], "nd-b").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    // Round robin: the first job goes to nd-a, the stalling one to nd-b.
    let first = within(STEP, "warm-up", coord.run(Job::new("whoami", "")))
        .await
        .unwrap();
    assert_eq!(first.worker_node, "nd-a");
    let stalled = Job::new("stall", "").with_timeout(Duration::from_secs(120));
    let pending = within(STEP, "submit", coord.submit(stalled)).await.unwrap();
    within(STEP, "job reaches nd-b", async {
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        while nodes[1].pool.in_flight() == 0 {
            ticker.tick().await;
        }
    })
    .await;
    within(STEP, "nd-b dies", nodes[1].router.shutdown()).await;
    within(
        STEP,
        "nd-b marked down",
        wait_down(&nodes[0].router, "nd-b"),
    )
    .await;
    // Far sooner than the 120 s timeout: the Down event triggers the retry.
    let result = within(Duration::from_secs(10), "retried result", pending.result())
        .await
        .unwrap();
    assert_eq!(result.outcome(), Ok("nd-c"));
    assert_eq!(result.attempt, 2);
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_is_retried_on_another_node() {
    let nodes = cluster(&[("to-a", &[]), ("to-b", &[]), ("to-c", &[])], "to-b").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let first = within(STEP, "warm-up", coord.run(Job::new("whoami", "")))
        .await
        .unwrap();
    assert_eq!(first.worker_node, "to-a");
    // Attempt 1 hangs on to-b until its timeout; attempt 2 (to-c) must
    // finish within the same timeout, hence a generous one.
    let job = Job::new("stall", "").with_timeout(RETRY_FITS);
    let result = within(STEP, "timed-out job", coord.run(job)).await.unwrap();
    assert_eq!(result.outcome(), Ok("to-c"));
    assert_eq!(result.attempt, 2);
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    let b = stats.nodes.iter().find(|n| n.node == "to-b").unwrap();
    assert_eq!((b.failed, b.in_flight), (1, 0));
    assert_eq!(stats.retries, 1);
    finish(coord, nodes).await;
}
