//! Speculative backups against real processes: one node is made ten times
//! slower (the test-only `JOBMESH_TEST_SLOWDOWN`, which stretches `sleep`);
//! a job marked `--speculative` that lands there finishes through its
//! backup on the fast node, and a job not marked is never backed up.

mod common;

use std::time::Instant;

use common::{cli, http, stdout, wait_formed, NodeProc};
use serde_json::Value;

/// What one job takes on the fast node, in ms (ten times that on the slow one).
const SLEEP_MS: &str = "200";

async fn submit(url: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "submit",
        "--cluster",
        url,
        "--kind",
        "sleep",
        "--data",
        SLEEP_MS,
        "--wait",
    ];
    args.extend_from_slice(extra);
    let out = cli(&args).await;
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

async fn record(url: &str, id: &str) -> Value {
    let out = cli(&["get", "--cluster", url, id]).await;
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// `(attempt, node, cause)` of each attempt in a job record.
fn attempts(record: &Value) -> Vec<(u64, String, Option<String>)> {
    record["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("attempts in {record}"))
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["node"].as_str().unwrap().to_owned(),
                a["cause"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Waits (bounded) until `node`'s gossiped load, as `via` sees it, is zero.
async fn wait_idle(via: &NodeProc, node: &str) {
    let deadline = Instant::now() + common::LIMIT;
    loop {
        let view = http(via.http(), "GET", "/v1/cluster", None).await.json();
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let idle = members.iter().any(|m| {
            m["node"] == node && m["load"]["in_flight"] == 0 && m["load"]["queue_depth"] == 0
        });
        if idle {
            return;
        }
        assert!(Instant::now() < deadline, "{node} never idle: {view}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speculative_job_on_a_slow_node_finishes_through_its_backup() {
    // Names sort the slow node first: with nothing measured on it, the
    // earliest-finish strategy takes it at the fast node's time and
    // prefers it (no round trip measured yet, lower name on a tie).
    let slow = NodeProc::start_with_env("a-slow", &[], &[("JOBMESH_TEST_SLOWDOWN", "10")]).await;
    let fast = NodeProc::start(
        "b-fast",
        &[
            "--join",
            slow.url(),
            "--tags",
            "fast",
            "--http",
            "127.0.0.1:0",
        ],
    )
    .await;
    wait_formed(fast.url(), 2).await;
    wait_formed(slow.url(), 2).await;

    // The fast node's coordinator measures `sleep` on itself (tag `fast`).
    for _ in 0..6 {
        let result = submit(fast.url(), &["--tags", "fast"]).await;
        assert_eq!(result["worker_node"], "b-fast", "{result}");
    }

    // Marked speculative: dispatched to the slow node (2 s there), backed
    // up on the fast node after ~3 x 200 ms, which answers first.
    let started = Instant::now();
    let result = submit(fast.url(), &["--speculative", "--id-prefix", "spec"]).await;
    let took = started.elapsed();
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["worker_node"], "b-fast", "{result}");
    assert_eq!(result["attempt"], 2, "{result}");
    let id = result["id"].as_str().unwrap();
    let rec = record(fast.url(), id).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    let tries = attempts(&rec);
    assert_eq!(tries.len(), 2, "{rec}");
    assert_eq!(
        tries[0],
        (1, "a-slow".into(), Some("cancelled".into())),
        "{rec}"
    );
    assert_eq!(tries[1], (2, "b-fast".into(), None), "{rec}");
    eprintln!("speculative job finished in {took:?} (2 s on the slow node alone)");

    // Not marked: runs its 2 s on the slow node, once, although the fast
    // node could take a backup. Submitted through the slow node's own
    // coordinator, which has measured nothing on either node, so its own
    // node (no round trip) is where the job finishes first; through the
    // fast node's coordinator the choice would hang on measured round
    // trips, which a loaded machine moves. First the slow node must report
    // itself idle again (its cancelled attempt gone).
    wait_idle(&fast, "a-slow").await;
    let result = submit(slow.url(), &["--id-prefix", "plain"]).await;
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["worker_node"], "a-slow", "{result}");
    assert_eq!(result["attempt"], 1, "{result}");
    let rec = record(slow.url(), result["id"].as_str().unwrap()).await;
    assert_eq!(attempts(&rec).len(), 1, "{rec}");

    let stats = http(fast.http(), "GET", "/v1/stats", None).await.json();
    assert_eq!(stats["speculative_started"], 1, "{stats}");
    assert_eq!(stats["speculative_won"], 1, "{stats}");
    let metrics = http(fast.http(), "GET", "/metrics", None).await.body;
    assert!(
        metrics.contains("jobmesh_jobs_speculative_won_total 1"),
        "{metrics}"
    );
}
