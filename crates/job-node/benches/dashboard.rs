//! The dashboard's job search with 100,000 jobs in the store, end to end:
//! one real `job-node` process with `--http`, 100,000 echo jobs submitted
//! over HTTP (batches of 10,000, waited for), then `GET /v1/job-records`
//! queries as the dashboard's Jobs page sends them, timed from a loopback
//! HTTP client. Prints the median and the slowest of 21 runs per query,
//! next to the raw baseline of the same run: `GET /v1/stats`, the same HTTP
//! path and coordinator round trip without a scan.
//!
//! Run: `cargo bench -p job-node --bench dashboard` (optionally `-- JOBS`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_job-node");
const RUNS: usize = 21;

/// The node process, killed on drop.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Node, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["start", "--name", "bench", "--listen", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--supervised", "--workers", "2"])
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn job-node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready JSON");
    let http = ready["http"].as_str().expect("http").parse().expect("addr");
    (Node(child), http)
}

/// One HTTP/1.1 request on its own connection; the status and body.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (head[9..12].parse().expect("status"), body.to_owned())
}

async fn time(addr: SocketAddr, path: &str) -> (Duration, Duration, String) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let (status, body) = request(addr, "GET", path, "").await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
        last = body;
    }
    times.sort_unstable();
    (times[RUNS / 2], times[RUNS - 1], last)
}

fn total_of(body: &str) -> String {
    body.split("\"total\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("?")
        .to_owned()
}

async fn bench(jobs: usize) {
    let (_node, addr) = start();
    let started = Instant::now();
    let mut submitted = 0;
    while submitted < jobs {
        let n = (jobs - submitted).min(10_000);
        let batch: Vec<String> = (submitted..submitted + n)
            .map(|i| {
                let kind = if i % 10 == 0 { "sha256" } else { "echo" };
                format!(r#"{{"kind":"{kind}","data":"job {i}","id":"job-{i:07}"}}"#)
            })
            .collect();
        let body = format!("[{}]", batch.join(","));
        let (status, reply) = request(addr, "POST", "/v1/jobs?wait=true&timeout=600", &body).await;
        assert_eq!(status, 200, "{reply}");
        submitted += n;
    }
    println!(
        "{jobs} jobs submitted and finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (p50, max, _) = time(addr, "/v1/stats").await;
    println!("baseline GET /v1/stats: median {p50:.2?}, slowest {max:.2?}");
    for (what, path) in [
        ("first page (50)", "/v1/job-records?limit=50"),
        (
            "state=succeeded",
            "/v1/job-records?state=succeeded&limit=50",
        ),
        ("kind=sha256", "/v1/job-records?kind=sha256&limit=50"),
        ("node filter", "/v1/job-records?node=bench&limit=50"),
        ("id contains", "/v1/job-records?id=job-00424&limit=50"),
        ("last page", "/v1/job-records?offset=99950&limit=50"),
        ("no match", "/v1/job-records?state=dead&limit=50"),
    ] {
        let (p50, max, body) = time(addr, path).await;
        println!(
            "GET /v1/job-records {what:<16}: median {p50:.2?}, slowest {max:.2?} (total {})",
            total_of(&body)
        );
    }
}

fn main() {
    let jobs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(jobs));
}
