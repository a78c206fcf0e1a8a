//! Progress reports reach the submitter: a library caller through its
//! `PendingJob`, an external JSON client as progress replies before the
//! result when it asks for them.

#[path = "jobs_support.rs"]
mod jobs_support;

use cluster_router::{client_token, Secret};
use futures_util::{SinkExt, StreamExt};
use job_queue::{Job, StrategyKind};
use jobs_support::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

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
    within(STEP, "coordinator shutdown", coord.shutdown()).await;
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_client_asking_for_progress_gets_it_before_the_result() {
    let nodes = cluster(&[("pj-a", &[]), ("pj-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut request = nodes[1].router.url().into_client_request().unwrap();
    let bearer = format!("Bearer {}", client_token(&Secret::from(SECRET)));
    request
        .headers_mut()
        .insert("Authorization", HeaderValue::from_str(&bearer).unwrap());
    let (ws, _) = within(STEP, "connect", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let mut read = async || -> Value {
        loop {
            match within(STEP, "frame", stream.next()).await.unwrap().unwrap() {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    };
    loop {
        let frame = read().await;
        let payload = frame.get("payload").and_then(Value::as_str);
        if payload.is_some_and(|p| p.contains("welcome")) {
            break;
        }
    }
    let cmd = json!({"to": "coordinator@pj-a", "id": 9, "payload":
        {"cmd": "submit", "job": {"id": "pj-1", "kind": "progress"}, "progress": true}});
    within(
        STEP,
        "send",
        sink.send(Message::Text(cmd.to_string().into())),
    )
    .await
    .unwrap();
    let first = read().await;
    assert_eq!(first["correlation_id"], 9);
    let progress: Value = serde_json::from_str(first["payload"].as_str().unwrap()).unwrap();
    assert_eq!(progress["progress"]["id"], "pj-1");
    assert_eq!(progress["progress"]["note"], "half way");
    let second = read().await;
    assert_eq!(second["correlation_id"], 9);
    let result: Value = serde_json::from_str(second["payload"].as_str().unwrap()).unwrap();
    assert_eq!(result["id"], "pj-1");
    assert!(result["error"].is_null(), "{result}");
    within(STEP, "coordinator shutdown", coord.shutdown()).await;
    stop_all(nodes).await;
}
