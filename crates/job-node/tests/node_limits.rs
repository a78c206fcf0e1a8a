//! Cluster-wide limits per kind against real processes: three `job-node`
//! processes, each configured `--limit kind=sleep,...`, each accepting
//! jobs of the limited kind (once with the leader killed mid-run).
//! Concurrency is read from the job records' attempt times (each attempt's
//! run lies within its dispatch and the arrival of its result at the
//! coordinator), not from timing windows.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{http, wait_formed, NodeProc, BIN, LIMIT};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::time::timeout;

/// Starts three nodes with `limit` and an HTTP API each.
async fn three_nodes(limit: &str) -> Vec<NodeProc> {
    let first = NodeProc::start("node-1", &["--limit", limit, "--http", "127.0.0.1:0"]).await;
    let seed = first.url().to_owned();
    let mut nodes = vec![first];
    for name in ["node-2", "node-3"] {
        let extra = ["--join", &seed, "--limit", limit, "--http", "127.0.0.1:0"];
        nodes.push(NodeProc::start(name, &extra).await);
    }
    for node in &nodes {
        wait_formed(node.url(), 3).await;
    }
    nodes
}

/// Starts `submit --file --wait` of `n` sleep jobs of `ms` through each
/// node at once (one process per node); returns the result-line readers.
fn spawn_submits(nodes: &[&NodeProc], n: usize, ms: u64, tag: &str) -> Vec<Submit> {
    let dir = std::env::temp_dir().join(format!("job-node-limits-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let file = dir.join(format!("jobs-{k}.jsonl"));
        let lines: String = (0..n)
            .map(|i| format!("{{\"id\":\"{tag}-{k}-{i}\",\"kind\":\"sleep\",\"data\":\"{ms}\"}}\n"))
            .collect();
        std::fs::write(&file, lines).unwrap();
        let mut child = Command::new(BIN)
            .args(["submit", "--cluster", node.url(), "--wait", "--file"])
            .arg(&file)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        out.push(Submit { child, lines });
    }
    out
}

/// A running `submit --wait` and its result lines.
struct Submit {
    child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Submit {
    /// The next result, `None` at the end.
    async fn next(&mut self) -> Option<Value> {
        let line = timeout(Duration::from_secs(120), self.lines.next_line())
            .await
            .expect("results in time")
            .unwrap()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    /// Every remaining result; the process must succeed.
    async fn rest(mut self, results: &mut Vec<Value>) {
        while let Some(result) = self.next().await {
            results.push(result);
        }
        let status = timeout(LIMIT, self.child.wait())
            .await
            .expect("submit exits")
            .unwrap();
        assert!(status.success(), "submit failed");
    }
}

/// Submits `n` sleep jobs of `ms` through each node at once and waits for
/// every result.
async fn submit_everywhere(nodes: &[NodeProc], n: usize, ms: u64, tag: &str) -> Vec<Value> {
    let nodes: Vec<&NodeProc> = nodes.iter().collect();
    let mut results = Vec::new();
    for submit in spawn_submits(&nodes, n, ms, tag) {
        submit.rest(&mut results).await;
    }
    results
}

/// Every attempt `(started_ms, ended_ms)` of the `sleep` jobs each node
/// accepted, from its job records.
async fn attempts(nodes: &[NodeProc], expected_per_node: usize) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for node in nodes {
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let path = format!("/v1/job-records?kind=sleep&limit=500&offset={offset}");
            let page = http(node.http(), "GET", &path, None).await.json();
            let jobs = page["jobs"].as_array().unwrap().clone();
            offset += jobs.len();
            records.extend(jobs);
            if offset as u64 >= page["total"].as_u64().unwrap() {
                break;
            }
        }
        assert_eq!(records.len(), expected_per_node);
        for record in records {
            assert_eq!(record["state"], "succeeded", "{record}");
            for attempt in record["attempts"].as_array().unwrap() {
                let started = attempt["started_ms"].as_u64().unwrap();
                let ended = attempt["ended_ms"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{record}"));
                out.push((started, ended));
            }
        }
    }
    out
}

/// The most attempts running at once. An attempt holds its slot from its
/// dispatch until its result reached its coordinator, and a slot is handed
/// on only after that: at equal milliseconds, ends count first.
fn max_concurrent(attempts: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i32)> = attempts
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_limit_of_two_holds_across_three_coordinators() {
    let nodes = three_nodes("kind=sleep,running=2").await;
    let per_node = 150;
    let results = submit_everywhere(&nodes, per_node, 10, "run").await;
    assert_eq!(results.len(), 3 * per_node);
    for result in &results {
        assert!(result["error"].is_null(), "{result}");
    }
    let attempts = attempts(&nodes, per_node).await;
    assert_eq!(
        max_concurrent(&attempts),
        2,
        "most sleep attempts running at once"
    );
    // A figure, not a bound: how much of the limit the slot hand-offs use.
    let first = attempts.iter().map(|a| a.0).min().unwrap();
    let last = attempts.iter().map(|a| a.1).max().unwrap();
    let busy: u64 = attempts.iter().map(|a| a.1 - a.0).sum();
    eprintln!(
        "running=2: {} attempts of 10 ms in {} ms from the first start to the last end \
         (slots busy {:.0} %; 10 ms x {} / 2 = {} ms if hand-offs were free)",
        attempts.len(),
        last - first,
        100.0 * busy as f64 / (2 * (last - first)) as f64,
        attempts.len(),
        attempts.len() * 10 / 2
    );
    // Every node's workers ran some: the limit is the cluster's, not a split.
    for node in ["node-1", "node-2", "node-3"] {
        assert!(
            results.iter().any(|r| r["worker_node"] == node),
            "{node} ran none"
        );
    }
    // Each coordinator shows the limit and who leads it.
    let stats = http(nodes[1].http(), "GET", "/v1/stats", None).await.json();
    let limit = &stats["limits"][0];
    assert_eq!(
        (limit["kind"].as_str(), limit["running"].as_u64()),
        (Some("sleep"), Some(2)),
        "{stats}"
    );
    assert_eq!(limit["leader"], "node-1", "{stats}");
    assert_eq!(stats["waiting_for_limit"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spreads_the_starts() {
    // 20 starts per second, a bucket of 2 (a tenth of a second's worth):
    // 100 starts take at least (100 - 2) / 20 s of tokens, less the 0.25 s
    // a token stays valid: 4.65 s between the first and the last start.
    let nodes = three_nodes("kind=sleep,rate=20").await;
    let results = submit_everywhere(&nodes[..2], 50, 0, "rate").await;
    assert_eq!(results.len(), 100);
    let starts: Vec<u64> = attempts(&nodes[..2], 50)
        .await
        .iter()
        .map(|a| a.0)
        .collect();
    let span = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(
        span >= 4_500,
        "100 starts within {span} ms at 20 per second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_when_its_leader_is_killed() {
    let mut nodes = three_nodes("kind=sleep,running=2").await;
    let survivors: Vec<&NodeProc> = nodes[1..].iter().collect();
    // More work than the two slots finish within a lease after the kill:
    // the rest needs the next leader.
    let submits = spawn_submits(&survivors, 300, 20, "crash");
    // Some jobs are through (the leader, node-1, grants): kill it. The
    // coordinators' statistics say how far the run is (the results wait in
    // the submit processes' pipes, unread).
    let mut results = Vec::new();
    timeout(LIMIT, async {
        loop {
            let stats = http(nodes[1].http(), "GET", "/v1/stats", None).await.json();
            if stats["succeeded"].as_u64().unwrap() >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("20 jobs through in time");
    timeout(LIMIT, nodes[0].child.kill())
        .await
        .expect("killed in time")
        .unwrap();
    let killed_ms = unix_ms();
    for submit in submits {
        submit.rest(&mut results).await;
    }
    assert_eq!(results.len(), 600);
    for result in &results {
        assert!(result["error"].is_null(), "{result}");
    }
    let attempts = attempts(&nodes[1..], 300).await;
    assert!(
        max_concurrent(&attempts) <= 2,
        "more than 2 running at once"
    );
    // Work went on under the next leader, after the old leases ran out.
    let lease_ms = 2_000;
    let later = attempts
        .iter()
        .filter(|a| a.0 > killed_ms + lease_ms)
        .count();
    assert!(later > 0, "no attempt started after the old leases expired");
    let stats = http(nodes[1].http(), "GET", "/v1/stats", None).await.json();
    assert_eq!(stats["limits"][0]["leader"], "node-2", "{stats}");
}

fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as u64
}
