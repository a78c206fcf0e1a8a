//! A worker node stopped mid-run: every job it held completes elsewhere and
//! is reported exactly once.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use job_queue::{Job, StrategyKind};
use support::jobs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_node_has_its_jobs_completed_elsewhere_exactly_once() {
    let nodes = cluster(&[("nl-a", &[]), ("nl-b", &[]), ("nl-c", &[])], "nl-b").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut pending = Vec::new();
    for i in 0..12 {
        let job = Job::new("stall", format!("{i}")).with_timeout(Duration::from_secs(120));
        pending.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    // Round robin: four jobs on each node; nl-b hangs on its four.
    within(STEP, "nl-b busy", async {
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        while nodes[1].pool.in_flight() + nodes[1].pool.queue_depth() < 4 {
            ticker.tick().await;
        }
    })
    .await;
    within(STEP, "nl-b stops", nodes[1].router.shutdown()).await;
    within(STEP, "nl-b down", wait_down(&nodes[0].router, "nl-b")).await;
    let mut per_node: HashMap<String, u32> = HashMap::new();
    let mut retried = 0;
    for job in pending {
        let result = within(Duration::from_secs(10), "result", job.result())
            .await
            .unwrap();
        assert!(result.is_success(), "{result:?}");
        assert_eq!(result.outcome(), Ok(result.worker_node.as_str()));
        if result.attempt == 2 {
            retried += 1;
        }
        *per_node.entry(result.worker_node).or_default() += 1;
    }
    assert_eq!(retried, 4, "{per_node:?}");
    assert!(!per_node.contains_key("nl-b"));
    assert_eq!(per_node.values().sum::<u32>(), 12);
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!(
        (
            stats.submitted,
            stats.succeeded,
            stats.failed,
            stats.in_progress
        ),
        (12, 12, 0, 0)
    );
    assert_eq!(stats.retries, 4);
    finish(coord, nodes).await;
}
