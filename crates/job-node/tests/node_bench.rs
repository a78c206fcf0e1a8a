//! `job-node bench` cannot rot: it runs briefly (small N) against a local
//! cluster it starts (with and without the journal) and against a running
//! node (`--cluster`), and its JSON report must be complete and consistent.
//! Only counts and orderings are checked, never timings.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{cluster, stderr, stdout, wait_formed, NodeProc, BIN};
use serde_json::Value;
use tokio::process::Command;

/// Generous: a debug build on a loaded 2-core machine starts the nodes,
/// runs the jobs and both baselines.
const BENCH_LIMIT: Duration = Duration::from_secs(180);

async fn bench(args: &[&str]) -> Value {
    let mut command = Command::new(BIN);
    command
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_CLUSTER")
        .env_remove("JOBMESH_SECRET_FILE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out: Output = tokio::time::timeout(BENCH_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("job-node bench {args:?} did not finish in time"))
        .expect("run job-node bench");
    assert!(out.status.success(), "bench {args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn number(report: &Value, path: &[&str]) -> f64 {
    let mut v = report;
    for key in path {
        v = &v[key];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {report:#}"))
}

/// What every report must say, whatever the cluster.
fn check_report(report: &Value, jobs: u64, rounds: u64) {
    let t = &report["throughput"];
    assert_eq!(t["jobs"], jobs, "{report:#}");
    assert_eq!(t["succeeded"], jobs, "every job answered once: {report:#}");
    assert_eq!(
        (t["failed"].as_u64(), t["refused"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(number(report, &["throughput", "jobs_per_second"]) > 0.0);
    assert!(number(report, &["throughput", "seconds"]) > 0.0);
    let l = &report["latency"];
    assert_eq!(
        (l["rounds"].as_u64(), l["failed"].as_u64()),
        (Some(rounds), Some(0))
    );
    for what in [&["latency"][..], &["baseline", "ws_ping_pong"][..]] {
        let at = |p: &str| number(report, &[what, &[p]].concat());
        let (p50, p99, p999) = (at("p50_us"), at("p99_us"), at("p999_us"));
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999,
            "{what:?}: {report:#}"
        );
    }
    assert!(number(report, &["baseline", "ws_echo_messages_per_second"]) > 0.0);
    assert_eq!(report["kind"], "echo");
    assert_eq!(report["data_bytes"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_a_local_cluster_end_to_end() {
    let report = bench(&[
        "--nodes",
        "2",
        "--workers",
        "2",
        "--jobs",
        "3000",
        "--window",
        "200",
        "--rounds",
        "100",
    ])
    .await;
    check_report(&report, 3000, 100);
    assert_eq!(report["cluster"], "local");
    assert_eq!(report["throughput"]["clients"], 1);
    assert_eq!(
        (report["nodes"].as_u64(), report["workers"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(report["journal"], false);
    let cpu = number(&report, &["throughput", "cpu_us_per_job"]);
    assert!(cpu > 0.0);
    // Split by process: the two nodes and this client, adding up to it
    // (each read a moment apart from the total's).
    let nodes = report["throughput"]["cpu_us_per_job_nodes"]
        .as_array()
        .expect("per node");
    assert_eq!(nodes.len(), 2, "{report:#}");
    let client = number(&report, &["throughput", "cpu_us_per_job_client"]);
    let split = client + nodes.iter().map(|n| n.as_f64().unwrap()).sum::<f64>();
    assert!(nodes.iter().all(|n| n.as_f64().unwrap() > 0.0) && client > 0.0);
    assert!(
        (split - cpu).abs() <= 0.25 * cpu,
        "{split} against {cpu}: {report:#}"
    );
    // The echo run's own CPU, the CPU figure's baseline.
    assert!(number(&report, &["baseline", "ws_echo_cpu_us_per_message"]) > 0.0);
    assert!(number(&report, &["load_average"]) >= 0.0);
}

/// `--clients 3` on two nodes: the jobs and the window are split over
/// three connections, which go to the nodes in turn (two to the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_spreads_clients_over_the_local_nodes() {
    let report = bench(&[
        "--nodes",
        "2",
        "--workers",
        "2",
        "--clients",
        "3",
        "--jobs",
        "3001",
        "--window",
        "200",
        "--rounds",
        "20",
    ])
    .await;
    check_report(&report, 3001, 20);
    let t = &report["throughput"];
    assert_eq!(t["clients"], 3, "{report:#}");
    let clients = t["per_client"].as_array().expect("per_client");
    let shares: Vec<(u64, u64)> = clients
        .iter()
        .map(|c| (c["jobs"].as_u64().unwrap(), c["window"].as_u64().unwrap()))
        .collect();
    assert_eq!(shares, [(1001, 67), (1000, 67), (1000, 66)], "{report:#}");
    for c in clients {
        assert_eq!(c["succeeded"], c["jobs"], "{report:#}");
        assert!(number(c, &["seconds"]) <= number(&report, &["throughput", "seconds"]));
    }
    let urls: Vec<&str> = clients.iter().map(|c| c["url"].as_str().unwrap()).collect();
    assert_eq!(urls[0], urls[2], "{urls:?}");
    assert_ne!(urls[0], urls[1], "{urls:?}");
    assert!(
        urls.iter().all(|u| u.starts_with("ws://127.0.0.1:")),
        "{urls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_a_journaled_local_cluster() {
    let report = bench(&[
        "--nodes",
        "1",
        "--workers",
        "2",
        "--journal",
        "--jobs",
        "1000",
        "--window",
        "100",
        "--rounds",
        "20",
    ])
    .await;
    check_report(&report, 1000, 20);
    assert_eq!(report["journal"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_a_running_cluster() {
    let node = NodeProc::start("b1", &[]).await;
    wait_formed(node.url(), 1).await;
    let report = bench(&[
        "--cluster",
        node.url(),
        "--clients",
        "2",
        "--jobs",
        "1000",
        "--window",
        "50",
        "--rounds",
        "20",
    ])
    .await;
    check_report(&report, 1000, 20);
    assert_eq!(report["cluster"], node.url());
    // Both clients connect to the one URL given.
    let clients = report["throughput"]["per_client"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{report:#}");
    assert!(clients
        .iter()
        .all(|c| c["url"] == node.url() && c["jobs"] == 500));
    assert_eq!(report["nodes"], 1);
    assert_eq!(report["workers"], Value::Null);
    assert_eq!(report["throughput"]["cpu_us_per_job"], Value::Null);
    assert_eq!(
        report["throughput"]["cpu_us_per_job_nodes"],
        Value::Array(Vec::new())
    );
    assert_eq!(report["throughput"]["cpu_us_per_job_client"], Value::Null);
}

/// `--spread` against a running cluster of two nodes: the clients go to
/// the members' advertised URLs in turn, the connected node's first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_spreads_clients_over_a_running_clusters_members() {
    let nodes = cluster(2, &[]).await;
    let (first, second) = (nodes[0].url(), nodes[1].url());
    let report = bench(&[
        "--cluster",
        second,
        "--spread",
        "--clients",
        "3",
        "--jobs",
        "1500",
        "--window",
        "90",
        "--rounds",
        "20",
    ])
    .await;
    check_report(&report, 1500, 20);
    assert_eq!(report["nodes"], 2);
    let urls: Vec<&str> = report["throughput"]["per_client"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, [second, first, second], "{report:#}");
}

/// `benches/tools/bench_compare.py`, which the README and
/// docs/performance.md name as the command of their figures, runs two
/// builds interleaved and prints a row per build (here the same binary
/// twice, the second with `+--clients=2`, tiny runs: only the table's shape
/// is checked), and a build's `+ARG`s reach its runs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_compare_prints_a_row_per_build() {
    let compare = |builds: [String; 2]| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut command = Command::new("python3");
        command
            .arg(root.join("benches/tools/bench_compare.py"))
            .args(["--runs", "2"])
            .args(builds)
            .args(["--", "--nodes", "1", "--workers", "2"])
            .args(["--jobs", "500", "--window", "100", "--rounds", "20"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(BENCH_LIMIT * 2, command.output())
                .await
                .expect("bench_compare.py did not finish in time")
                .expect("run python3 benches/tools/bench_compare.py")
        }
    };
    // An extra argument out of range fails that build's first run.
    let out = compare([format!("one={BIN}"), format!("bad={BIN}+--clients=0")]).await;
    assert!(!out.status.success());
    let progress = stderr(&out);
    assert!(progress.contains("bad run 1 printed no JSON"), "{progress}");
    assert!(progress.contains("--clients"), "{progress}");

    let out = compare([format!("one={BIN}"), format!("two={BIN}+--clients=2")]).await;
    assert!(out.status.success(), "bench_compare.py: {}", stderr(&out));
    let table = stdout(&out);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 3, "a header and one row per build:\n{table}");
    for (row, label) in rows[1..].iter().zip(["one", "two"]) {
        assert!(row.starts_with(&format!("| {label} | ")), "{table}");
        // A median and the two runs in each figure's column.
        assert_eq!(row.matches('(').count(), 8, "{row}");
    }
    let progress = stderr(&out);
    assert_eq!(progress.matches(" run ").count(), 4, "{progress}");
}

/// The baselines' echo server (`bench-echo`, its own process): it prints
/// its loopback address, echoes text frames, and exits once its stdin
/// closes (as when the bench that started it ends, however it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_server_process_echoes_and_exits_when_stdin_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncBufReadExt;
    use tokio_tungstenite::tungstenite::Message;

    const LIMIT: Duration = Duration::from_secs(30);
    let mut child = Command::new(BIN)
        .args(["bench-echo", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start job-node bench-echo");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the echo server's line in time")
        .unwrap()
        .expect("a line");
    let ready: Value = serde_json::from_str(&line).unwrap();
    let addr = ready["listen"].as_str().expect("its address").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let (mut ws, _) = tokio::time::timeout(
        LIMIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await
    .unwrap()
    .unwrap();
    for n in 0..100 {
        let text = format!(r#"{{"n":{n}}}"#);
        ws.send(Message::text(text.clone())).await.unwrap();
        let back = tokio::time::timeout(LIMIT, ws.next()).await.unwrap();
        assert_eq!(back.unwrap().unwrap(), Message::text(text));
    }
    drop(child.stdin.take());
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("it exits once stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
}
