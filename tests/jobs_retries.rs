//! Retries across a real cluster: a handler that always fails, one that
//! sleeps past its timeout, and one that panics.

mod support;

use std::time::Duration;

use job_queue::{FailureCause, Job, StrategyKind};
use support::jobs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_job_is_tried_three_times_then_dead_lettered() {
    let nodes = cluster(&[("af-a", &[]), ("af-b", &[]), ("af-c", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let result = within(STEP, "flaky", coord.run(Job::new("flaky", "")))
        .await
        .unwrap();
    let failure = result.error.clone().expect("a failure");
    assert_eq!(
        (failure.cause, failure.retryable, result.attempt),
        (FailureCause::Handler, true, 3)
    );
    let letters = within(STEP, "dead letters", coord.dead_letters())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    let attempts: Vec<u32> = letters[0].failures.iter().map(|f| f.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    for f in &letters[0].failures {
        assert_eq!(f.failure.cause, FailureCause::Handler);
        let node = f.node.as_deref().unwrap();
        let expected = format!("flaky on {node} (attempt {})", f.attempt);
        assert!(
            f.failure.message.contains(&expected),
            "{}",
            f.failure.message
        );
    }
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!((stats.submitted, stats.failed, stats.retries), (1, 1, 2));
    assert_eq!(stats.dead_letters, 1);
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_sleeping_past_its_timeout_is_retried_elsewhere_and_succeeds() {
    // sl-b's handler sleeps far past any bound of this test (it is
    // cancelled when the pool shuts down), so it can never complete.
    let make = |name: &str| {
        if name == "sl-b" {
            delayed_registry(Duration::from_secs(600))
        } else {
            registry("")
        }
    };
    let names: [(&str, &[&str]); 3] = [("sl-a", &[]), ("sl-b", &[]), ("sl-c", &[])];
    let nodes = cluster_with(&names, make, Duration::from_millis(100)).await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let first = within(STEP, "warm-up", coord.run(Job::new("whoami", "")))
        .await
        .unwrap();
    assert_eq!(first.worker_node, "sl-a");
    // Round robin sends this one to sl-b, where it overruns its timeout;
    // the retry on sl-c must fit in the same timeout, hence a generous one.
    let job = Job::new("whoami", "").with_timeout(RETRY_FITS);
    let result = within(STEP, "retried job", coord.run(job)).await.unwrap();
    assert_eq!(result.outcome(), Ok("sl-c"));
    assert_eq!(result.attempt, 2);
    let letters = within(STEP, "dead letters", coord.dead_letters())
        .await
        .unwrap();
    assert!(letters.is_empty());
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    let b = stats.nodes.iter().find(|n| n.node == "sl-b").unwrap();
    assert_eq!((b.failed, b.completed), (1, 0));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_an_error_result_and_the_next_job_on_that_node_succeeds() {
    let nodes = cluster(&[("pn-a", &[]), ("pn-b", &["solo"])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let boom = Job::new("boom", "").with_tag("solo").with_max_attempts(1);
    let result = within(STEP, "boom", coord.run(boom)).await.unwrap();
    let failure = result.error.clone().expect("an error result");
    assert_eq!(failure.cause, FailureCause::Panic);
    assert_eq!((result.worker_node.as_str(), result.attempt), ("pn-b", 1));
    // Both worker loops of pn-b still run jobs.
    let mut pending = Vec::new();
    for _ in 0..4 {
        let job = Job::new("whoami", "").with_tag("solo");
        pending.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    for job in pending {
        let ok = within(STEP, "whoami", job.result()).await.unwrap();
        assert_eq!(ok.outcome(), Ok("pn-b"));
    }
    assert_eq!(nodes[1].pool.finished(), 5);
    finish(coord, nodes).await;
}
