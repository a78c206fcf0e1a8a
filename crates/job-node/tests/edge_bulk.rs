//! The edge under bulk load, with real `job-node` processes: `submit
//! --file --wait` of 50,000 echo jobs (sent in `submit_batch` frames) to one
//! node and to a 3-node cluster, one of whose nodes is killed in the middle
//! of the run, returns every result exactly once; a raw WebSocket client that sends 50,000 jobs
//! before reading a single answer gets them all (flow control pauses the
//! reading of its socket, it does not drop it); a client that stops
//! reading is closed with 1013, but only after the node's idle limit.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Jobs per bulk run.
const JOBS: usize = 50_000;
/// Bound on one bulk CLI run (debug build, loaded 2-core machine).
const BULK_LIMIT: Duration = Duration::from_secs(600);

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("job-node-edge-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `n` echo jobs without ids (the CLI assigns them).
fn echo_file(dir: &Scratch, n: usize) -> String {
    let path = dir.0.join("jobs.jsonl");
    let lines: String = (0..n)
        .map(|i| format!("{{\"kind\":\"echo\",\"data\":\"payload {i}\"}}\n"))
        .collect();
    std::fs::write(&path, lines).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `submit --file --wait` of [`JOBS`] echo jobs against `url` and
/// checks one correct line per job, ids `<prefix>-1..=JOBS` and the
/// `--ids-out` file; `after(n)` runs once `n` result lines were read.
async fn bulk_submit(url: &str, tag: &str, mut after: impl FnMut(usize)) {
    let dir = Scratch::new(tag);
    let file = echo_file(&dir, JOBS);
    let ids_out = dir.0.join("ids.txt");
    let mut child = Command::new(BIN)
        .args([
            "submit",
            "--cluster",
            url,
            "--file",
            &file,
            "--wait",
            "--id-prefix",
            tag,
            "--ids-out",
            ids_out.to_str().unwrap(),
        ])
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_CLUSTER")
        .env_remove("JOBMESH_SECRET_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run job-node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = HashSet::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            let id = v["id"].as_str().expect("an id");
            let n: usize = id
                .strip_prefix(&format!("{tag}-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("id {id} is not {tag}-<n>"));
            assert_eq!(v["result"], format!("payload {}", n - 1), "{line}");
            assert!(seen.insert(n), "job {id} answered twice");
            after(seen.len());
        }
    };
    tokio::time::timeout(BULK_LIMIT, read)
        .await
        .unwrap_or_else(|_| panic!("submit --file to {url} did not finish in time"));
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exits")
        .expect("job-node");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(seen.len(), JOBS, "one line per job");
    let recorded = std::fs::read_to_string(&ids_out).unwrap();
    assert_eq!(recorded.lines().count(), JOBS);
    assert_eq!(recorded.lines().next(), Some(format!("{tag}-1").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_jobs_from_a_file_to_one_node() {
    let node = NodeProc::start("node-1", &[]).await;
    bulk_submit(node.url(), "one", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_jobs_from_a_file_to_three_nodes_one_killed_midway() {
    let mut nodes = cluster(3, &[]).await;
    let (head, tail) = nodes.split_at_mut(2);
    let victim = &mut tail[0];
    // Killed (SIGKILL) after a fifth of the results: its attempts in
    // flight go again elsewhere, and the client still gets each job once.
    bulk_submit(head[1].url(), "three", |n| {
        if n == JOBS / 5 {
            victim.child.start_kill().expect("kill node-3");
        }
    })
    .await;
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket client, as any language would write one: the bearer
/// token on the upgrade, then JSON text frames (the auth reply and the
/// welcome are read and checked here).
async fn raw_client(url: &str) -> RawWs {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let secret = job_node::ClusterSecret::development();
    let token = secret.client_token();
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("upgrade accepted");
    for expected in ["auth", "payload"] {
        let msg = tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert!(v.get(expected).is_some(), "{v}");
    }
    ws
}

/// An echo job as a raw client sends it.
fn raw_job(id: &str, data: &str) -> Message {
    let job = serde_json::json!({"id": id, "kind": "echo", "data": data});
    Message::Text(
        serde_json::json!({"to": "coordinator@node-1", "payload": job})
            .to_string()
            .into(),
    )
}

/// The job id and result of a result frame (None for other frames).
fn raw_result(msg: &Message) -> Option<(String, Value)> {
    let Message::Text(text) = msg else {
        return None;
    };
    let env: Value = serde_json::from_str(text.as_str()).ok()?;
    assert!(env["kind"].is_null(), "a result, not a refusal: {env}");
    let result: Value = serde_json::from_str(env["payload"].as_str()?).ok()?;
    Some((result["id"].as_str()?.to_owned(), result["result"].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_client_with_fifty_thousand_jobs_in_flight_gets_every_result() {
    let node = NodeProc::start("node-1", &[]).await;
    let (mut tx, mut rx) = raw_client(node.url()).await.split();
    // Send everything first, reading nothing (as a naive script would).
    // The node stops reading this socket while 10,000 jobs are unanswered
    // and their answers wait, so the sends stall until the reader starts.
    let sender = tokio::spawn(async move {
        for i in 0..JOBS {
            let msg = raw_job(&format!("raw-{i}"), &format!("r{i}"));
            tokio::time::timeout(BULK_LIMIT, tx.feed(msg))
                .await
                .expect("send in time")
                .expect("socket open");
        }
        tokio::time::timeout(BULK_LIMIT, tx.flush())
            .await
            .unwrap()
            .unwrap();
        tx
    });
    // Give the sender a head start: at least 20,000 jobs out, or stuck.
    let mut stuck_for = 0;
    while !sender.is_finished() && stuck_for < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stuck_for += 1;
    }
    let mut results = HashSet::new();
    while results.len() < JOBS {
        let msg = tokio::time::timeout(LIMIT, rx.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        let Some((id, result)) = raw_result(&msg) else {
            continue;
        };
        let n: usize = id.strip_prefix("raw-").unwrap().parse().unwrap();
        assert_eq!(result, format!("r{n}"));
        assert!(results.insert(n), "{id} twice");
    }
    let _tx = tokio::time::timeout(BULK_LIMIT, sender)
        .await
        .unwrap()
        .unwrap();
}

/// Sends `n` echo jobs of `size` bytes each from a task, without reading;
/// the task ends when all are sent or a send makes no progress for
/// `patience`.
fn send_big(
    mut tx: futures_util::stream::SplitSink<RawWs, Message>,
    prefix: &'static str,
    n: usize,
    size: usize,
    patience: Duration,
) -> tokio::task::JoinHandle<(futures_util::stream::SplitSink<RawWs, Message>, usize)> {
    tokio::spawn(async move {
        let data = "x".repeat(size);
        let mut sent = 0;
        for i in 0..n {
            let msg = raw_job(&format!("{prefix}-{i}"), &data);
            match tokio::time::timeout(patience, tx.send(msg)).await {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        (tx, sent)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_only_after_the_idle_limit() {
    const JOBS_PER_PHASE: usize = 200;
    /// Far more than loopback socket buffers hold (reached only if the node
    /// never stops reading).
    const STALL_CAP: usize = 2_000;
    const SIZE: usize = 128 * 1024;
    let node = NodeProc::start(
        "node-1",
        &["--client-window", "50", "--client-idle-limit", "3"],
    )
    .await;
    let connected = Instant::now();
    let (tx, mut rx) = raw_client(node.url()).await.split();

    // Phase 1: 25 MB of answers owed, nothing read for one second (less
    // than the 3 s limit, whatever the machine's speed: the node's writer
    // cannot have waited longer than the connection exists). Then read:
    // every answer arrives, the connection stays up.
    let sending = send_big(tx, "one", JOBS_PER_PHASE, SIZE, LIMIT);
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(connected.elapsed())).await;
    let mut got = HashSet::new();
    while got.len() < JOBS_PER_PHASE {
        let msg = tokio::time::timeout(LIMIT, rx.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("not closed while reading");
        if let Some((id, _)) = raw_result(&msg) {
            assert!(got.insert(id));
        }
    }
    let (tx, sent) = tokio::time::timeout(LIMIT, sending).await.unwrap().unwrap();
    assert_eq!(sent, JOBS_PER_PHASE, "a reading client is read");

    // Phase 2: stop reading for good. The node stops reading us too (the
    // sender stalls for 5 s: the node wrote no answer for that long, or it
    // would have read more), and after the idle limit it closes with 1013
    // (the close frame waits in the node until we read again).
    let stalled = send_big(tx, "two", STALL_CAP, SIZE, Duration::from_secs(5));
    let (_tx, sent) = tokio::time::timeout(LIMIT * 4, stalled)
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent < STALL_CAP,
        "the node kept reading a client that does not read"
    );
    // The writer has been stuck since before the sender's last 5 s; the
    // 3 s limit has passed, and the node has had 2 s more to notice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut answers = 0;
    let code = loop {
        match tokio::time::timeout(LIMIT, rx.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| (f.code, f.reason.to_string())),
            Some(Ok(msg)) => answers += usize::from(raw_result(&msg).is_some()),
            Some(Err(err)) => panic!("socket failed after {answers} answers: {err}"),
            None => panic!("socket ended after {answers} answers"),
        }
    };
    let (code, reason) = code.expect("a close frame");
    assert_eq!(code, CloseCode::Again, "{reason}");
    assert!(reason.contains("idle"), "{reason}");
    assert!(answers < sent, "what it did not read was dropped with it");
}
