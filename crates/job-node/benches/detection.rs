//! Failure detection time, end to end over real `job-node` processes on
//! loopback: three nodes with the default membership settings; `n3` is
//! killed with SIGKILL and restarted, 20 times. Each round measures, at
//! the two survivors, the time from the kill until `system@<survivor>`
//! reports `n3` Down (polled every 20 ms, so a figure may be up to ~20 ms
//! late), and prints p50 / max over the rounds, next to the raw baseline
//! of the same run: the round trip of one such poll.
//!
//! Run: `cargo bench -p job-node --bench detection` (optionally
//! `-- ROUNDS`). The node binary is the one cargo built for this bench.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use job_node::ClusterSecret;
use job_node::{ClientFrame, ClusterClient};

const BIN: &str = env!("CARGO_BIN_EXE_job-node");
const POLL: Duration = Duration::from_millis(20);
const LIMIT: Duration = Duration::from_secs(30);

/// A node process, killed on drop.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, join: Option<&str>) -> Node {
    let mut command = Command::new(BIN);
    command
        .args(["start", "--name", name, "--listen", "127.0.0.1:0"])
        .args(["--workers", "1", "--supervised"]);
    if let Some(seed) = join {
        command.args(["--join", seed]);
    }
    let mut child = command
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn job-node");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(LIMIT) {
        Ok(Some(Ok(line))) => line,
        other => panic!("{name} did not start: {other:?}"),
    };
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line");
    let url = ready["url"].as_str().expect("url").to_owned();
    Node { child, url }
}

async fn client(url: &str) -> ClusterClient {
    let token = ClusterSecret::development().client_token();
    ClusterClient::connect(url, &token, LIMIT)
        .await
        .expect("client connects")
}

/// `n3`'s status as `node` reports it (`None`: absent or no answer).
async fn status_of_n3(client: &mut ClusterClient, node: &str) -> Option<String> {
    let id = client
        .send(&format!("system@{node}"), r#"{"cmd":"members"}"#)
        .await
        .ok()?;
    loop {
        let frame = tokio::time::timeout(LIMIT, client.recv())
            .await
            .ok()?
            .ok()?;
        let ClientFrame::Envelope(env) = frame else {
            continue;
        };
        if env.correlation_id != id {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&env.payload).ok()?;
        return value["members"]
            .as_array()?
            .iter()
            .find(|m| m["node"] == "n3")
            .and_then(|m| m["status"].as_str())
            .map(str::to_owned);
    }
}

/// Polls `node` until it reports `n3` as `status`; returns when it first did.
async fn wait_for(client: &mut ClusterClient, node: &str, status: &str) -> Instant {
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            if status_of_n3(client, node).await.as_deref() == Some(status) {
                return Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{node} never reported n3 {status}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let n1 = start("n1", None);
    let n2 = start("n2", Some(&n1.url));
    let mut c1 = client(&n1.url).await;
    let mut c2 = client(&n2.url).await;
    let mut everywhere = Vec::new();
    let mut each = Vec::new();
    for round in 1..=rounds {
        let mut victim = start("n3", Some(&n1.url));
        wait_for(&mut c1, "n1", "up").await;
        wait_for(&mut c2, "n2", "up").await;
        let killed = Instant::now();
        victim.child.kill().expect("kill -9");
        let (a, b) = tokio::join!(
            wait_for(&mut c1, "n1", "down"),
            wait_for(&mut c2, "n2", "down")
        );
        let (a, b) = ((a - killed).as_secs_f64(), (b - killed).as_secs_f64());
        println!("round {round:2}: n1 saw n3 Down after {a:.3} s, n2 after {b:.3} s");
        each.extend([a, b]);
        everywhere.push(a.max(b));
        drop(victim);
    }
    // Raw baseline of the same run: one poll's round trip.
    let mut rtt = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        status_of_n3(&mut c1, "n1").await;
        rtt.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for xs in [&mut everywhere, &mut each, &mut rtt] {
        xs.sort_by(f64::total_cmp);
    }
    println!(
        "detection of kill -9 (end to end, 3 processes on loopback, default settings), {rounds} kills:\n  \
         at both survivors: p50 {:.3} s, max {:.3} s, min {:.3} s\n  \
         per survivor:      p50 {:.3} s, max {:.3} s\n  \
         raw baseline, one members poll round trip: p50 {:.2} ms, max {:.2} ms",
        percentile(&everywhere, 0.5),
        everywhere[everywhere.len() - 1],
        everywhere[0],
        percentile(&each, 0.5),
        each[each.len() - 1],
        percentile(&rtt, 0.5),
        rtt[rtt.len() - 1],
    );
}
