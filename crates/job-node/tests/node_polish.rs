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
    // Durations are whole microseconds: no float noise on any interface.
    assert_eq!(
        long_decimals(&reply.body),
        Vec::<String>::new(),
        "{}",
        reply.body
    );
    let stats = http(api, "GET", "/v1/stats", None).await;
    assert_eq!(
        long_decimals(&stats.body),
        Vec::<String>::new(),
        "{}",
        stats.body
    );
}

/// Numbers in a JSON text with more than 3 decimals (`0.060000000000000005`).
fn long_decimals(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Number(n) => {
                let shown = n.to_string();
                if shown
                    .split_once('.')
                    .is_some_and(|(_, frac)| frac.len() > 3)
                {
                    out.push(shown);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::from_str(text).expect("JSON"), &mut out);
    out
}

/// A temporary directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("jobmesh-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_file_reports_every_bad_line_and_sends_nothing() {
    let node = NodeProc::start("node-1", &["--http", "127.0.0.1:0"]).await;
    let scratch = Scratch::new("badlines");
    let path = scratch.0.join("jobs.jsonl");
    // 20,000 lines, three of them bad in different ways, one blank.
    let mut text = String::new();
    let bad_at = [
        (7_usize, "{\"kind\":"),
        (12_345, "{\"kind\":\"echo\",\"id\":\"has space\"}"),
        (19_999, "[1,2]"),
    ];
    let mut line = 0;
    while line < 20_000 {
        line += 1;
        match bad_at.iter().find(|(at, _)| *at == line) {
            Some((_, bad)) => text.push_str(bad),
            None if line == 100 => {}
            None => text.push_str(&format!("{{\"kind\":\"echo\",\"data\":\"{line}\"}}")),
        }
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write jobs");
    let file = path.to_str().expect("utf-8 path");
    let out = cli(&["submit", "--cluster", node.url(), "--file", file, "--wait"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for (at, _) in bad_at {
        assert!(
            err.contains(&format!("{file}:{at}: ")),
            "line {at} not reported: {err}"
        );
    }
    assert!(err.contains("forbidden character"), "{err}");
    assert!(
        err.contains(&format!(
            "3 of 19999 jobs in {file} are not valid; nothing was submitted"
        )),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let stats = http(node.http(), "GET", "/v1/stats", None).await.json();
    assert_eq!(stats["submitted"], 0, "{stats}");

    // Fixed, the same file runs: 19,999 result lines.
    let fixed: String = std::fs::read_to_string(&path)
        .expect("read back")
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if bad_at.iter().any(|(at, _)| *at == i + 1) {
                format!("{{\"kind\":\"echo\",\"data\":\"fixed-{}\"}}\n", i + 1)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&path, fixed).expect("rewrite jobs");
    let out = cli(&["submit", "--cluster", node.url(), "--file", file, "--wait"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 19_999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_each_cause_once() {
    let scratch = Scratch::new("errors-once");
    let missing = scratch.0.join("missing.jsonl");
    let missing = missing.to_str().expect("utf-8 path");
    let out = cli(&["submit", "--cluster", "ws://127.0.0.1:1", "--file", missing]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.matches("cannot read jobs file").count(), 1, "{err}");

    let out = cli(&[
        "status",
        "--cluster",
        "ws://127.0.0.1:1",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.matches("cannot connect to ws://127.0.0.1:1").count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("os error").count(), 1, "{err}");

    let node = NodeProc::start("node-1", &[]).await;
    let secret = scratch.0.join("secret");
    std::fs::write(&secret, "not the cluster secret\n").expect("write secret");
    let secret = secret.to_str().expect("utf-8 path");
    let out = cli(&["status", "--cluster", node.url(), "--secret-file", secret]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("wrong client token").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_handshakes_is_logged_once_a_second_with_a_count() {
    let scratch = Scratch::new("handshake-log");
    let log_path = scratch.0.join("node.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let args = [
        "--name",
        "node-1",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
    ];
    let (mut child, ready) = start_raw(&args, log.into()).await;
    let url = ready.url.clone();

    let probes = 2_000;
    let started = std::time::Instant::now();
    for _ in 0..probes {
        let refused = job_node::ClusterClient::connect(&url, "not-the-token", LIMIT).await;
        assert!(refused.is_err(), "a wrong token was accepted");
    }
    let elapsed = started.elapsed();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let text = std::fs::read_to_string(&log_path).expect("read log");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("client refused: invalid"))
        .collect();
    assert!(!warnings.is_empty(), "no warning at all: {text}");
    // One a second at most (plus the first), each counting the others.
    let bound = elapsed.as_secs() as usize + 2;
    assert!(
        warnings.len() <= bound,
        "{} warnings in {elapsed:?} for {probes} probes",
        warnings.len()
    );
    let counted: u64 = warnings
        .iter()
        .filter_map(|l| {
            l.split("suppressed=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    // Everything but the probes after the last warning is accounted for.
    assert!(
        counted + warnings.len() as u64 <= probes,
        "{counted} suppressed + {} logged > {probes}",
        warnings.len()
    );
    if warnings.len() > 1 {
        assert!(
            counted > 0,
            "later warnings say nothing was suppressed: {warnings:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_resumed_after_a_crash_keeps_its_kind() {
    let scratch = Scratch::new("resumed-kind");
    let data = scratch.0.join("data");
    let data = data.to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", &data, "--http", "127.0.0.1:0"];
    let mut node = NodeProc::start("node-1", &args).await;
    let job = json!({"id": "resumed-1", "kind": "sleep", "data": "1500", "timeout_ms": 60000});
    let reply = http(node.http(), "POST", "/v1/jobs", Some(&job.to_string())).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let pid = node.child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    node.exit_code().await;

    let node = NodeProc::start("node-1", &args).await;
    let record = http(node.http(), "GET", "/v1/jobs/resumed-1", None).await;
    assert_eq!(record.status, 200, "{}", record.body);
    assert_eq!(record.json()["kind"], "sleep", "{}", record.body);
    let reply = http(
        node.http(),
        "POST",
        "/v1/jobs?wait=true&timeout=30",
        Some(&job.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = reply.json();
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(view["kind"], "sleep", "{view}");
    let record = http(node.http(), "GET", "/v1/jobs/resumed-1", None).await;
    assert_eq!(record.json()["kind"], "sleep", "{}", record.body);
    assert_eq!(record.json()["state"], "succeeded", "{}", record.body);
}

/// `job-node start --supervised ARGS` with `RUST_LOG=warn` and stderr to
/// `stderr`; the child (killed on drop) and its ready line.
async fn start_raw(
    args: &[&str],
    stderr: std::process::Stdio,
) -> (tokio::process::Child, job_node::ReadyReport) {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new(BIN)
        .arg("start")
        .args(args)
        .arg("--supervised")
        .env("RUST_LOG", "warn")
        .env_remove("JOBMESH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn job-node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .expect("ready line");
    let ready = job_node::ReadyReport::parse(&line).expect("ready line");
    (child, ready)
}

#[tokio::test]
async fn without_a_name_a_node_is_named_after_its_bound_port() {
    let (_child, ready) =
        start_raw(&["--listen", "127.0.0.1:0"], std::process::Stdio::null()).await;
    let port = ready.url.rsplit(':').next().expect("port");
    assert_ne!(port, "0");
    assert_eq!(ready.node, format!("node-{port}"), "{ready:?}");
}
