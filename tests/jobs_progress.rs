//! Progress reports reach the submitter: a library caller through its
//! `PendingJob`, an external JSON client as progress replies before the
//! result when it asks for them.

mod support;

use job_queue::{Job, StrategyKind};
use serde_json::{json, Value};
use support::jobs::*;
use support::ws::{connect_bearer, next_json, send_json, welcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_submitter_sees_progress_then_the_result() {
    let nodes = cluster(&[("pg-a", &[]), ("pg-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut pending = within(
        STEP,
        "submit",
        coord.submit_with_progress(Job::new("progress", "")),
    )
    .await
    .unwrap();
    let update = within(STEP, "progress", pending.next_progress())
        .await
        .expect("a progress report");
    assert_eq!(&update.job_id, pending.id());
    assert_eq!(
        (update.fraction, update.note.as_str(), update.attempt),
        (0.5, "half way", 1)
    );
    assert_eq!(
        within(STEP, "end of progress", pending.next_progress()).await,
        None
    );
    let result = within(STEP, "result", pending.result()).await.unwrap();
    assert!(result.is_success(), "{result:?}");
    // Without asking, a submitter gets no progress.
    let mut plain = within(STEP, "submit", coord.submit(Job::new("progress", "")))
        .await
        .unwrap();
    assert_eq!(
        within(STEP, "no progress", plain.next_progress()).await,
        None
    );
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_client_asking_for_progress_gets_it_before_the_result() {
    let nodes = cluster(&[("pj-a", &[]), ("pj-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut ws = connect_bearer(STEP, &nodes[1].router.url(), SECRET).await;
    welcome(STEP, &mut ws, "pj-b").await;
    let cmd = json!({"to": "coordinator@pj-a", "id": 9, "payload":
        {"cmd": "submit", "job": {"id": "pj-1", "kind": "progress"}, "progress": true}});
    send_json(STEP, &mut ws, &cmd).await;
    let first = next_json(STEP, &mut ws).await;
    assert_eq!(first["correlation_id"], 9);
    let progress: Value = serde_json::from_str(first["payload"].as_str().unwrap()).unwrap();
    assert_eq!(progress["progress"]["id"], "pj-1");
    assert_eq!(progress["progress"]["note"], "half way");
    let second = next_json(STEP, &mut ws).await;
    assert_eq!(second["correlation_id"], 9);
    let result: Value = serde_json::from_str(second["payload"].as_str().unwrap()).unwrap();
    assert_eq!(result["id"], "pj-1");
    assert!(result["error"].is_null(), "{result}");
    finish(coord, nodes).await;
}
