//! SIGTERM on a worker node in the middle of a batch drains it: it stops
//! taking jobs, finishes (or hands back) what it holds, leaves, and exits 0
//! — and every job's result reaches the submitter exactly once.

mod common;

use std::collections::HashMap;
use std::process::Stdio;

use common::{cluster, BIN, LIMIT};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

const JOBS: usize = 36;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_worker_without_losing_a_job() {
    let mut nodes = cluster(3, &[]).await;
    let dir = std::env::temp_dir().join(format!("job-node-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.jsonl");
    let lines: String = (0..JOBS)
        .map(|i| format!("{{\"id\":\"drain-{i}\",\"kind\":\"sleep\",\"data\":\"250\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();

    let mut submit = Command::new(BIN)
        .args(["submit", "--cluster", nodes[0].url(), "--wait", "--file"])
        .arg(&file)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut results = BufReader::new(submit.stdout.take().unwrap()).lines();
    let mut seen: HashMap<String, Value> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut record = |line: String| {
        let value: Value = serde_json::from_str(&line).unwrap();
        let id = value["id"].as_str().unwrap().to_owned();
        if seen.insert(id.clone(), value).is_some() {
            duplicates.push(id);
        }
    };

    // The first result means the batch is running on every node: node-3
    // holds jobs now. Drain it.
    let first = timeout(LIMIT, results.next_line()).await.unwrap().unwrap();
    record(first.expect("a first result"));
    nodes[2].sigterm();

    let all = timeout(LIMIT, async {
        while let Some(line) = results.next_line().await.unwrap() {
            record(line);
        }
    });
    all.await.expect("every result in time");
    let status = timeout(LIMIT, submit.wait()).await.unwrap().unwrap();
    let code = nodes[2].exit_code().await;
    let _ = std::fs::remove_dir_all(&dir);

    assert!(duplicates.is_empty(), "results seen twice: {duplicates:?}");
    assert_eq!(seen.len(), JOBS, "a job is missing");
    for (id, result) in &seen {
        assert_eq!(result["result"], "250", "{id}: {result}");
    }
    assert!(status.success(), "submit failed: {status}");
    assert_eq!(code, Some(0), "the drained node exits cleanly");
    let on_node3 = seen
        .values()
        .filter(|r| r["worker_node"] == "node-3")
        .count();
    assert!(on_node3 > 0, "node-3 finished the jobs it held");
}
