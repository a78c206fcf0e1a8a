//! Helpers of the process tests: node processes that die with the test,
//! the CLI with a timeout, and a tiny HTTP/1.1 client.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use job_node::ClusterSecret;
use job_node::ReadyReport;
use job_node::Session;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::timeout;

/// The bound on every wait.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_job-node");

/// A `job-node start --supervised` process, killed on drop.
pub struct NodeProc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub ready: ReadyReport,
}

impl NodeProc {
    /// Starts node `name` on a free loopback port with `extra` arguments
    /// (2 workers unless they say `--workers`) and waits for its ready line.
    pub async fn start(name: &str, extra: &[&str]) -> NodeProc {
        NodeProc::start_with_env(name, extra, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables.
    pub async fn start_with_env(name: &str, extra: &[&str], env: &[(&str, &str)]) -> NodeProc {
        let mut command = Command::new(BIN);
        command.envs(env.iter().copied());
        command
            .args(["start", "--name", name, "--listen", "127.0.0.1:0"])
            .arg("--supervised")
            .args(if extra.contains(&"--workers") {
                &[][..]
            } else {
                &["--workers", "2"][..]
            })
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "error".into()),
            )
            .env_remove("JOBMESH_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn job-node");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(LIMIT, lines.next_line())
            .await
            .expect("no ready line in time")
            .expect("read stdout")
            .expect("node exited before it was ready");
        let ready = ReadyReport::parse(&line).unwrap_or_else(|| panic!("not a ready line: {line}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeProc {
            child,
            stdin,
            ready,
        }
    }

    /// The node's cluster URL.
    pub fn url(&self) -> &str {
        &self.ready.url
    }

    /// The HTTP address, when started with `--http`.
    pub fn http(&self) -> SocketAddr {
        self.ready.http.expect("node has no --http")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = self.child.id().expect("node still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub async fn exit_code(&mut self) -> Option<i32> {
        timeout(LIMIT, self.child.wait())
            .await
            .expect("node did not exit in time")
            .expect("wait for node")
            .code()
    }

    /// Closes stdin (a supervised node drains and exits).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

/// Starts `n` nodes `node-1..` (the first is the seed; `first_extra` goes
/// to it only) and waits until every one sees all of them up with the
/// built-in kinds.
pub async fn cluster(n: usize, first_extra: &[&str]) -> Vec<NodeProc> {
    let mut nodes = vec![NodeProc::start("node-1", first_extra).await];
    let seed = nodes[0].url().to_owned();
    for i in 2..=n {
        nodes.push(NodeProc::start(&format!("node-{i}"), &["--join", &seed]).await);
    }
    for node in &nodes {
        wait_formed(node.url(), n).await;
    }
    nodes
}

/// Waits until the node at `url` sees `n` members up, each serving `echo`.
pub async fn wait_formed(url: &str, n: usize) {
    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(url, &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    timeout(LIMIT, async {
        loop {
            let view = session.cluster(LIMIT).await.expect("membership");
            let ready = view
                .members
                .iter()
                .filter(|m| m.status == "up" && m.tags.iter().any(|t| t == "kind:echo"))
                .count();
            if ready == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("cluster at {url} did not reach {n} ready members"));
}

/// Runs the CLI to completion (bounded).
pub async fn cli(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_CLUSTER")
        .env_remove("JOBMESH_SECRET_FILE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    timeout(LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("job-node {args:?} did not finish in time"))
        .expect("run job-node")
}

/// Stdout of a CLI run as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a CLI run as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One HTTP exchange.
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpReply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`content-type: application/json` when `body` is
/// given) and reads the whole answer.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> HttpReply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    raw_http(addr, &request).await
}

/// Sends `request` as is and reads the whole answer.
pub async fn raw_http(addr: SocketAddr, request: &str) -> HttpReply {
    timeout(LIMIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        let (head, body) = text.split_once("\r\n\r\n").expect("no header end");
        let status = head[9..12].parse().expect("status code");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        HttpReply {
            status,
            head: head.to_owned(),
            body,
        }
    })
    .await
    .expect("HTTP exchange in time")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
