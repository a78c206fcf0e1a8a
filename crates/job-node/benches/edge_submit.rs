//! Bulk submission at the edge, end to end over real `job-node` processes
//! on loopback: three nodes; `job-node submit --file F --wait` of 1,000,000
//! echo jobs (one JSON line each) to one of them. Prints jobs/s and the
//! peak RSS (`VmHWM` from `/proc/<pid>/status`) of the client and of each
//! node, next to the raw baseline of the same run: the same lines through
//! a plain tokio TCP echo over loopback (write all, read all back).
//!
//! Run: `cargo bench -p job-node --bench edge_submit` (optionally
//! `-- JOBS`). The binaries are the ones cargo built for this bench
//! (release).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use job_node::{ClusterSecret, Session};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_job-node");
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
    command.args([
        "start",
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
        "--supervised",
    ]);
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

/// CPU seconds (user + system) `pid` has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident set of `pid` in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn wait_formed(url: &str, n: usize) {
    let secret = ClusterSecret::development();
    let mut session = Session::connect(url, &secret, LIMIT)
        .await
        .expect("connect");
    let deadline = Instant::now() + LIMIT;
    loop {
        let view = session.cluster(LIMIT).await.expect("members");
        let ready = view
            .members
            .iter()
            .filter(|m| m.status == "up" && m.tags.iter().any(|t| t == "kind:echo"))
            .count();
        if ready == n {
            return;
        }
        assert!(Instant::now() < deadline, "cluster did not form");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn job_line(i: usize) -> String {
    format!("{{\"kind\":\"echo\",\"data\":\"payload {i}\"}}\n")
}

/// The raw baseline: `jobs` job lines written through one loopback TCP
/// connection to an echo server and read back, jobs/s.
async fn tcp_echo_baseline(jobs: usize) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = tokio::io::BufReader::new(read).lines();
        let mut out = Vec::with_capacity(64 * 1024);
        while let Ok(Some(line)) = lines.next_line().await {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            if out.len() >= 60 * 1024 || lines.get_ref().buffer().is_empty() {
                write.write_all(&out).await.unwrap();
                out.clear();
            }
        }
        write.write_all(&out).await.unwrap();
    });
    let start = Instant::now();
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = socket.into_split();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        for i in 0..jobs {
            buf.extend_from_slice(job_line(i).as_bytes());
            if buf.len() >= 60 * 1024 {
                write.write_all(&buf).await.unwrap();
                buf.clear();
            }
        }
        write.write_all(&buf).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut lines = tokio::io::BufReader::new(read).lines();
    let mut n = 0;
    while let Ok(Some(_)) = lines.next_line().await {
        n += 1;
    }
    assert_eq!(n, jobs);
    writer.await.unwrap();
    server.await.unwrap();
    jobs as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let jobs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("edge-submit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..jobs {
            out.write_all(job_line(i).as_bytes()).unwrap();
        }
    }

    let baseline = runtime.block_on(tcp_echo_baseline(jobs));

    let n1 = start("n1", None);
    let n2 = start("n2", Some(&n1.url));
    let n3 = start("n3", Some(&n1.url));
    runtime.block_on(wait_formed(&n1.url, 3));

    let results = dir.join("results.jsonl");
    let start_time = Instant::now();
    let mut client = Command::new(BIN)
        .args(["submit", "--cluster", &n1.url, "--file"])
        .arg(&file)
        .arg("--wait")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&results).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn submit");
    let pid = client.id();
    let node_cpu_before: Vec<f64> = [&n1, &n2, &n3]
        .iter()
        .map(|n| cpu_seconds(n.child.id()).unwrap_or(f64::NAN))
        .collect();
    let (mut client_peak, mut client_cpu) = (0.0f64, 0.0f64);
    let status = loop {
        if let Some(status) = client.try_wait().expect("wait") {
            break status;
        }
        client_peak = client_peak.max(peak_rss_mib(pid).unwrap_or(0.0));
        client_cpu = client_cpu.max(cpu_seconds(pid).unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start_time.elapsed();
    let lines = BufReader::new(std::fs::File::open(&results).unwrap())
        .lines()
        .count();
    let node_peaks: Vec<f64> = [&n1, &n2, &n3]
        .iter()
        .map(|n| peak_rss_mib(n.child.id()).unwrap_or(f64::NAN))
        .collect();
    let node_cpu: Vec<f64> = [&n1, &n2, &n3]
        .iter()
        .zip(&node_cpu_before)
        .map(|(n, before)| cpu_seconds(n.child.id()).unwrap_or(f64::NAN) - before)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);

    println!("edge_submit: `job-node submit --file F --wait`, {jobs} echo jobs, 3 local nodes (end to end)");
    println!("  exit status          {status}");
    println!("  result lines         {lines}");
    println!(
        "  throughput           {:>10.0} jobs/s  ({:.2} s)",
        jobs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("  peak RSS client      {client_peak:>10.1} MiB (VmHWM, sampled every 50 ms)");
    for (name, peak) in ["n1 (connected)", "n2", "n3"].iter().zip(&node_peaks) {
        println!("  peak RSS {name:<12}{peak:>10.1} MiB (VmHWM)");
    }
    println!("  CPU client           {client_cpu:>10.1} s (user + system, sampled)");
    for (name, cpu) in ["n1 (connected)", "n2", "n3"].iter().zip(&node_cpu) {
        println!("  CPU {name:<17}{cpu:>10.1} s (user + system, during the run)");
    }
    println!("  raw baseline         {baseline:>10.0} lines/s  (same lines, tokio TCP echo over loopback, same run)");
}
