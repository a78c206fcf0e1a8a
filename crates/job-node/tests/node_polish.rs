//! What a new user trips over, on real processes: HTTP batches are all or
//! none, `submit --file` reports every bad line, errors are printed once,
//! `/metrics` speaks the format the scraper asks for.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_batch_is_accepted_whole_or_not_at_all() {
    let node = NodeProc::start("node-1", &["--http", "127.0.0.1:0"]).await;
    let api = node.http();
    let stats = || async { http(api, "GET", "/v1/stats", None).await.json() };
    let before = stats().await["submitted"].clone();

    // A bad id at index 1: nothing runs, and the error names the index.
    let bad = json!([
        {"kind": "echo", "id": "batch-a-0", "data": "x"},
        {"kind": "echo", "id": "bad id"},
        {"kind": "echo", "id": "batch-a-2"}
    ]);
    let reply = http(api, "POST", "/v1/jobs", Some(&bad.to_string())).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("job 1"), "{}", reply.body);
    // The same id twice in one batch is refused by the coordinator, whole.
    let twice = json!([
        {"kind": "echo", "id": "batch-b-0"},
        {"kind": "echo", "id": "batch-b-1"},
        {"kind": "echo", "id": "batch-b-1"}
    ]);
    let reply = http(api, "POST", "/v1/jobs", Some(&twice.to_string())).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("job 2"), "{}", reply.body);
    for id in ["batch-a-0", "batch-a-2", "batch-b-0", "batch-b-1"] {
        let found = http(api, "GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(found.status, 404, "{id} was accepted: {}", found.body);
    }
    assert_eq!(stats().await["submitted"], before);

    // The corrected batch runs, every job once, answers in order.
    let good = json!([
        {"kind": "echo", "id": "batch-a-0", "data": "x"},
        {"kind": "echo", "id": "batch-a-1", "data": "y"},
        {"kind": "echo", "id": "batch-a-2", "data": "z"}
    ]);
    let reply = http(api, "POST", "/v1/jobs?wait=true", Some(&good.to_string())).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let jobs = reply.json()["jobs"].clone();
    let outputs: Vec<_> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| (j["id"].clone(), j["state"].clone(), j["result"].clone()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            (json!("batch-a-0"), json!("succeeded"), json!("x")),
            (json!("batch-a-1"), json!("succeeded"), json!("y")),
            (json!("batch-a-2"), json!("succeeded"), json!("z")),
        ],
        "{jobs}"
    );
}
