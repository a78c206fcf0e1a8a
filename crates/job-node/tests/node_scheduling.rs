//! Scheduling against real processes: exact eligibility (an `exec` job
//! goes only to a node that allows its program), a node joining mid-run
//! gets work at once, a draining node hands back its unstarted jobs.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{cli, cluster, stdout, wait_formed, NodeProc, BIN, LIMIT};
use job_node::{ClusterSecret, Session};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::time::timeout;

/// Submits one job through `url`'s coordinator and returns its result JSON.
async fn submit_one(url: &str, kind: &str, data: &str) -> Value {
    let out = cli(&[
        "submit",
        "--cluster",
        url,
        "--kind",
        kind,
        "--data",
        data,
        "--wait",
    ])
    .await;
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_job_goes_only_to_a_node_that_allows_its_program() {
    let closed = NodeProc::start("closed", &[]).await;
    let seed = closed.url().to_owned();
    let echo = NodeProc::start("allows-echo", &["--join", &seed, "--allow-exec", "echo"]).await;
    let date = NodeProc::start("allows-date", &["--join", &seed, "--allow-exec", "date"]).await;
    wait_formed(closed.url(), 3).await;
    // The gossip of the later nodes' tags reaches the first one.
    wait_formed(echo.url(), 3).await;
    wait_formed(date.url(), 3).await;

    // Submitted to the node that allows nothing: every attempt of every job
    // lands on the one node that allows its program, never elsewhere.
    for i in 0..6 {
        let data = format!(r#"{{"program":"echo","args":["{i}"]}}"#);
        let result = submit_one(closed.url(), "exec", &data).await;
        assert_eq!(result["worker_node"], "allows-echo", "{result}");
        assert_eq!(result["attempt"], 1, "{result}");
        let output: Value = serde_json::from_str(result["result"].as_str().unwrap()).unwrap();
        assert_eq!(output["stdout"], format!("{i}\n"));
    }
    let result = submit_one(echo.url(), "exec", r#"{"program":"date"}"#).await;
    assert_eq!(result["worker_node"], "allows-date", "{result}");
    assert!(result["error"].is_null(), "{result}");

    // A program no node allows is not sent anywhere: it fails at once
    // (never run, not dead-lettered) and says why.
    let result = submit_one(closed.url(), "exec", r#"{"program":"/bin/echo"}"#).await;
    assert_eq!(result["error"]["cause"], "no_eligible_node", "{result}");
    assert_eq!(result["attempt"], 0, "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("accept:exec:/bin/echo"), "{message}");

    // The node without an allow-list does not advertise `exec` at all.
    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(closed.url(), &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    let view = session.cluster(LIMIT).await.expect("membership");
    let tags = |name: &str| -> Vec<String> {
        let member = view.members.iter().find(|m| m.node == name);
        member
            .unwrap_or_else(|| panic!("{name} in {view:?}"))
            .tags
            .clone()
    };
    assert!(!tags("closed").iter().any(|t| t == "kind:exec"));
    assert!(tags("allows-echo").iter().any(|t| t == "kind:exec"));
    assert!(tags("allows-echo").iter().any(|t| t == "accept:exec:echo"));
}

/// Writes `n` jobs `<prefix>-<i>` of kind `sleep` (`ms` each) to a file and
/// starts `submit --file --wait` against `url`; returns the process and
/// its result lines (one JSON result per line, in completion order).
fn submit_backlog(
    url: &str,
    prefix: &str,
    n: usize,
    ms: u64,
) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>) {
    let dir = std::env::temp_dir().join(format!("job-node-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{prefix}.jsonl"));
    let lines: String = (0..n)
        .map(|i| format!("{{\"id\":\"{prefix}-{i}\",\"kind\":\"sleep\",\"data\":\"{ms}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let mut child = Command::new(BIN)
        .args(["submit", "--cluster", url, "--wait", "--file"])
        .arg(&file)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

/// Reads result lines until one satisfies `done`; returns it, counting
/// every line read into `per_node` and `seen`.
async fn read_until(
    results: &mut Lines<BufReader<ChildStdout>>,
    per_node: &mut HashMap<String, usize>,
    seen: &mut HashSet<String>,
    mut done: impl FnMut(&Value, usize) -> bool,
) -> Value {
    timeout(LONG, async {
        loop {
            let line = results.next_line().await.unwrap().expect("a result line");
            let value: Value = serde_json::from_str(&line).unwrap();
            let id = value["id"].as_str().unwrap().to_owned();
            assert!(seen.insert(id.clone()), "duplicate result for {id}");
            assert!(value["error"].is_null(), "{value}");
            let node = value["worker_node"].as_str().unwrap().to_owned();
            *per_node.entry(node).or_default() += 1;
            if done(&value, seen.len()) {
                return value;
            }
        }
    })
    .await
    .expect("results in time")
}

/// The bound on a whole backlog's run.
const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_mid_run_gets_work_within_a_second() {
    const JOBS: usize = 3_000;
    let nodes = cluster(2, &["--workers", "4"]).await;
    let (mut submit, mut results) = submit_backlog(nodes[0].url(), "join", JOBS, 20);
    let mut per_node = HashMap::new();
    let mut seen = HashSet::new();
    read_until(&mut results, &mut per_node, &mut seen, |_, _| true).await;
    // The rest of the results are read meanwhile (the pipe must not fill).
    let reader = tokio::spawn(async move {
        read_until(&mut results, &mut per_node, &mut seen, |_, n| n == JOBS).await;
        per_node
    });

    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(nodes[0].url(), &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    let started = Instant::now();
    let joiner = NodeProc::start("joiner", &["--join", nodes[0].url(), "--workers", "4"]).await;
    let ready = started.elapsed();
    // node-1's coordinator holds the backlog: how soon does it give the
    // joiner work (an attempt in flight or done there)?
    let (queued, to_first_job) = timeout(LIMIT, async {
        loop {
            let stats = session.stats(LIMIT).await.expect("stats");
            let stats = serde_json::to_value(&stats).unwrap();
            let busy = stats["nodes"].as_array().unwrap().iter().any(|n| {
                n["node"] == "joiner"
                    && (n["in_flight"].as_u64() > Some(0) || n["completed"].as_u64() > Some(0))
            });
            if busy {
                return (stats["queued"].as_u64().unwrap(), started.elapsed() - ready);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the joiner never got work");
    println!(
        "joiner: ready line after {:.0} ms; given work {:.0} ms later, with {queued} of {JOBS} jobs still queued at node-1",
        ready.as_secs_f64() * 1e3,
        to_first_job.as_secs_f64() * 1e3,
    );
    assert!(queued > 500, "the backlog was still there");
    assert!(
        to_first_job < Duration::from_secs(1),
        "the joiner got its first job {to_first_job:?} after it was up"
    );
    let per_node = timeout(LONG, reader).await.expect("all results").unwrap();
    println!("jobs per node: {per_node:?}");
    assert!(per_node["joiner"] > 100, "{per_node:?}");
    drop(joiner);
    let _ = timeout(LIMIT, submit.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_hands_back_its_unstarted_jobs_at_once() {
    const JOBS: usize = 5_000;
    let mut nodes = cluster(3, &["--workers", "4"]).await;
    let (mut submit, mut results) = submit_backlog(nodes[0].url(), "drain", JOBS, 10);
    let mut per_node = HashMap::new();
    let mut seen = HashSet::new();
    // node-3 is running jobs and holds a window of unstarted ones.
    read_until(&mut results, &mut per_node, &mut seen, |v, _| {
        v["worker_node"] == "node-3"
    })
    .await;
    let started = Instant::now();
    nodes[2].sigterm();
    let code = nodes[2].exit_code().await;
    let drain = started.elapsed();
    let unfinished = JOBS - seen.len();
    println!(
        "drain of node-3 with {unfinished} of {JOBS} jobs unfinished: exited after {:.0} ms",
        drain.as_secs_f64() * 1e3
    );
    assert_eq!(code, Some(0));
    assert!(unfinished > 1_000, "the backlog was still there");
    // Its running jobs take 10 ms; the unstarted ones are handed back.
    assert!(
        drain < Duration::from_millis(2_000 + 10),
        "drain took {drain:?}"
    );
    read_until(&mut results, &mut per_node, &mut seen, |_, n| n == JOBS).await;
    println!("jobs per node: {per_node:?}");
    let _ = timeout(LIMIT, submit.wait()).await;
}

/// Starts `submit` of one job in the background (`--wait`), with `extra`
/// flags; the job's result is printed when it finishes.
fn spawn_submit(
    url: &str,
    id: &str,
    kind: &str,
    data: &str,
    extra: &[&str],
) -> tokio::process::Child {
    Command::new(BIN)
        .args([
            "submit",
            "--cluster",
            url,
            "--wait",
            "--kind",
            kind,
            "--data",
            data,
        ])
        .args(["--id-prefix", id])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The job records of `ids`, from `url`'s cluster.
async fn records(url: &str, ids: &[String]) -> Vec<Value> {
    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(url, &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    let lookup = session.get(ids, LIMIT).await.expect("get");
    assert!(lookup.unknown.is_empty(), "{:?}", lookup.unknown);
    lookup.records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_start_by_priority_on_a_single_worker() {
    let node = NodeProc::start("single", &["--workers", "1"]).await;
    // Two blockers fill the node's window (twice its one worker): what
    // comes next waits in the coordinator, where priorities apply.
    let mut blockers = vec![
        spawn_submit(node.url(), "blocker-a", "sleep", "800", &[]),
        spawn_submit(node.url(), "blocker-b", "sleep", "800", &[]),
    ];
    let blocker_ids = ["blocker-a-1".to_owned(), "blocker-b-1".to_owned()];
    timeout(LIMIT, async {
        loop {
            let secret = ClusterSecret::development();
            let mut session = Session::connect(node.url(), &secret, LIMIT).await.unwrap();
            let lookup = session.get(&blocker_ids, LIMIT).await.unwrap();
            if lookup.records.len() == 2 && lookup.records.iter().all(|r| r["state"] == "running") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both blockers dispatched");

    let jobs = [
        ("low-a", 0),
        ("high-a", 10),
        ("neg", -5),
        ("mid", 5),
        ("low-b", 0),
        ("high-b", 10),
    ];
    let dir = std::env::temp_dir().join(format!("job-node-prio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prio.jsonl");
    let lines: String = jobs
        .iter()
        .map(|(id, p)| {
            format!("{{\"id\":\"{id}\",\"kind\":\"echo\",\"data\":\"{id}\",\"priority\":{p}}}\n")
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = timeout(LIMIT, async {
        Command::new(BIN)
            .args(["submit", "--cluster", node.url(), "--wait", "--file"])
            .arg(&file)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    })
    .await
    .expect("the prioritised jobs finish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for blocker in &mut blockers {
        let _ = timeout(LIMIT, blocker.wait()).await;
    }
    // One worker runs them in the order they were dispatched, and answers
    // in that order (several may be dispatched within one millisecond, so
    // the records' `started_ms` cannot tell them apart).
    let text = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let order: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    println!("run order: {order:?}");
    assert_eq!(order, ["high-a", "high-b", "mid", "low-a", "low-b", "neg"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_does_not_start_early() {
    let node = NodeProc::start("delays", &[]).await;
    let delayed = ["delayed-1".to_owned()];
    // The node turns the delay into a start time when it reads the job,
    // which is after this instant (the record's `submitted_ms` is taken a
    // little later still, so it is not the bound).
    let asked_at = unix_ms();
    let mut submit = spawn_submit(node.url(), "delayed", "echo", "later", &["--delay", "1.5"]);
    let status = timeout(LIMIT, submit.wait()).await.expect("done").unwrap();
    assert!(status.success());
    let record = &records(node.url(), &delayed).await[0];
    let started = record["started_ms"].as_u64().unwrap();
    let waited = started.saturating_sub(asked_at);
    println!("delayed job: started {waited} ms after it was submitted (asked: 1500 ms)");
    assert!(started >= asked_at + 1_500, "{record}");
    assert_eq!(record["state"], "succeeded");
    assert_eq!(record["attempt"], 1, "the wait is no attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_job_fires_on_schedule_and_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("job-node-cron-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_str().unwrap().to_owned();
    let mut node = NodeProc::start("cron", &["--data-dir", &data]).await;
    let out = cli(&[
        "recurring",
        "--cluster",
        node.url(),
        "add",
        "--name",
        "beat",
        "--cron",
        "*/2 * * * * *",
        "--kind",
        "echo",
        "--data",
        "tick",
    ])
    .await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let added: Value = serde_json::from_str(text.trim()).unwrap();
    let first = added["next_ms"].as_u64().expect("next_ms");
    assert_eq!(first % 2_000, 0, "fires on even seconds: {first}");

    // The next two fires: jobs `beat-<fire ms>`, accepted at their time.
    let fires = [first, first + 2_000];
    let ids: Vec<String> = fires.iter().map(|ms| format!("beat-{ms}")).collect();
    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(node.url(), &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    let found = timeout(LIMIT, async {
        loop {
            let lookup = session.get(&ids, LIMIT).await.expect("get");
            let done = lookup
                .records
                .iter()
                .filter(|r| r["state"] == "succeeded")
                .count();
            if done == ids.len() {
                return lookup.records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("both fires ran");
    for (record, fire) in found.iter().zip(fires) {
        let submitted = record["submitted_ms"].as_u64().unwrap();
        println!(
            "fire at {fire}: accepted {} ms later",
            submitted as i64 - fire as i64
        );
        assert!(submitted >= fire, "fired early: {record}");
        assert!(submitted < fire + 1_000, "fired late: {record}");
    }

    // Durable: a restarted node (same data directory) still has it.
    node.sigterm();
    assert_eq!(node.exit_code().await, Some(0));
    let node = NodeProc::start("cron", &["--data-dir", &data]).await;
    let out = cli(&["recurring", "--cluster", node.url(), "list"]).await;
    let listed: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(listed["name"], "beat", "{listed}");
    assert_eq!(listed["cron"], "*/2 * * * * *");
    let out = cli(&["recurring", "--cluster", node.url(), "remove", "beat"]).await;
    assert!(out.status.success(), "{}", stdout(&out));
    let out = cli(&["recurring", "--cluster", node.url(), "list"]).await;
    assert_eq!(stdout(&out).trim(), "", "removed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The wall clock in unix milliseconds (the clock job records use).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
