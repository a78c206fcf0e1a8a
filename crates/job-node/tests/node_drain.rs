//! SIGTERM on a node drains it: it stops taking jobs, finishes (or hands
//! back) what it holds, leaves, and exits 0 — every job's result reaches
//! its submitter exactly once, and a submission aimed at the draining
//! node's coordinator is refused with a clear error.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{cli, cluster, http, stderr, stdout, wait_formed, NodeProc, BIN, LIMIT};
use job_node::{ClusterSecret, JobReply, JobSubmission, RemoteError, Session};
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

/// Jobs held by the draining node's coordinator while the test probes it.
const HELD: usize = 3;

/// An `exec` job that runs until `release` exists (so the drain lasts
/// exactly as long as the test needs, without guessing durations).
fn held_job(release: &Path) -> JobSubmission {
    let data = serde_json::json!({
        "program": "sh",
        "args": ["-c", "while [ ! -e \"$1\" ]; do sleep 0.02; done; echo released", "sh", release],
    });
    JobSubmission::new("exec", data.to_string())
}

async fn connect(url: &str) -> Session {
    timeout(
        LIMIT,
        Session::connect(url, &ClusterSecret::development(), LIMIT),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// Starts node-1..=3, every one allowed to run `sh`, node-3 with an HTTP
/// API, and waits until each sees all three ready.
async fn exec_cluster() -> Vec<NodeProc> {
    let exec = ["--allow-exec", "sh"];
    let mut nodes = vec![NodeProc::start("node-1", &exec).await];
    let seed = nodes[0].url().to_owned();
    let join = ["--allow-exec", "sh", "--join", seed.as_str()];
    nodes.push(NodeProc::start("node-2", &join).await);
    let http = [&join[..], &["--http", "127.0.0.1:0"]].concat();
    nodes.push(NodeProc::start("node-3", &http).await);
    for node in &nodes {
        wait_formed(node.url(), nodes.len()).await;
    }
    nodes
}

/// Submits echo jobs to `coordinator@<node>` until one is refused; returns
/// the refusal's reason.
async fn first_refusal(session: &mut Session) -> String {
    let to = format!("coordinator@{}", session.node());
    timeout(LIMIT, async {
        for n in 0.. {
            let job = format!(r#"{{"id":"probe-{n}","kind":"echo","data":"probe"}}"#);
            match session.request(&to, &job, LIMIT).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(RemoteError::Refused { reason, .. }) => return reason,
                Err(err) => panic!("probe {n}: {err}"),
            }
        }
        unreachable!("the probe loop only ends by returning")
    })
    .await
    .expect("the draining coordinator refused a submission in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_coordinator_refuses_submissions_and_finishes_its_jobs() {
    let mut nodes = exec_cluster().await;
    let dir = std::env::temp_dir().join(format!("job-node-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let release = dir.join("release");

    // node-3's coordinator holds jobs that run until released.
    let held_by_node3 = connect(nodes[2].url()).await;
    let jobs = vec![held_job(&release); HELD];
    let held = tokio::spawn(async move {
        let mut replies = Vec::new();
        held_by_node3
            .submit_jobs(jobs, true, |_, _, reply| replies.push(reply))
            .await
            .expect("the held jobs' session");
        replies
    });
    let mut probe = connect(nodes[2].url()).await;
    timeout(LIMIT, async {
        while probe.stats(LIMIT).await.expect("stats").submitted < HELD as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("node-3's coordinator took the held jobs");

    nodes[2].sigterm();
    let reason = first_refusal(&mut probe).await;
    assert_eq!(reason, "coordinator on node node-3 is draining");

    // Its HTTP API refuses submissions too, and still answers queries.
    let addr = nodes[2].http();
    let job = r#"{"kind":"echo","data":"late"}"#;
    let refused = http(addr, "POST", "/v1/jobs", Some(job)).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("shutting down"), "{}", refused.body);
    let stats = http(addr, "GET", "/v1/stats", None).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats = stats.json();
    assert!(
        stats["submitted"].as_u64().unwrap() >= HELD as u64,
        "{stats}"
    );
    assert!(
        stats["queued"].is_u64() && stats["refusals"].is_u64(),
        "{stats}"
    );
    let metrics = http(addr, "GET", "/metrics", None).await;
    assert!(
        metrics.body.contains("jobmesh_jobs_queued "),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("jobmesh_dispatches_refused_total "),
        "{}",
        metrics.body
    );

    // The CLI aimed at the draining node: a clear refusal, exit code 1.
    let url3 = nodes[2].url().to_owned();
    let refused = cli(&[
        "submit",
        "--cluster",
        &url3,
        "--kind",
        "echo",
        "--data",
        "late",
        "--wait",
    ])
    .await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("refused: coordinator on node node-3 is draining"),
        "{}",
        stderr(&refused)
    );
    assert!(stdout(&refused).is_empty(), "{}", stdout(&refused));

    // The other nodes keep working meanwhile.
    let url1 = nodes[0].url().to_owned();
    let accepted = cli(&[
        "submit",
        "--cluster",
        &url1,
        "--kind",
        "echo",
        "--data",
        "still-up",
        "--wait",
    ])
    .await;
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    let result: Value = serde_json::from_str(stdout(&accepted).trim()).unwrap();
    assert_eq!(result["result"], "still-up");

    // node-3 is still draining: it finishes what it holds, then leaves.
    std::fs::write(&release, b"").unwrap();
    let replies = timeout(LIMIT, held)
        .await
        .expect("held results in time")
        .unwrap();
    let code = nodes[2].exit_code().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(replies.len(), HELD);
    for reply in &replies {
        let JobReply::Result { json, success } = reply else {
            panic!("a held job was refused: {reply:?}");
        };
        assert!(success, "{json}");
        let output: Value = serde_json::from_str(json).unwrap();
        assert!(
            output["result"].as_str().unwrap().contains("released"),
            "{json}"
        );
    }
    assert_eq!(code, Some(0), "the drained node exits cleanly");
}
