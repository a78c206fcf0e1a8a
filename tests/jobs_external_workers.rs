//! External workers, spoken by a raw WebSocket client (any language's
//! view of the protocol in `docs/wire.md`, "External workers"): register,
//! jobs pushed within the concurrency, progress, result, errors, forged
//! answers refused, heartbeat, cancellation, unregister, and a worker that
//! disconnects mid-job (its job runs again on another worker).

mod support;

use std::time::Duration;

use cluster_router::NodeId;
use job_queue::{FailureCause, Job, JobId, StrategyKind};
use serde_json::{json, Value};
use support::jobs::*;
use support::ws::{connect_bearer, next_json, send_json, welcome, Ws};

const LIMIT: Duration = Duration::from_secs(20);

/// A raw external worker: sends tagged envelopes to `external@<node>`.
struct RawWorker {
    ws: Ws,
    node: String,
    tag: u64,
    /// Pushes read while waiting for an answer.
    pushes: Vec<Value>,
}

impl RawWorker {
    async fn connect(url: &str, node: &str) -> RawWorker {
        let mut ws = connect_bearer(LIMIT, url, SECRET).await;
        welcome(LIMIT, &mut ws, node).await;
        RawWorker {
            ws,
            node: node.to_owned(),
            tag: 0,
            pushes: Vec::new(),
        }
    }

    /// Sends `payload`; returns the answer envelope (pushes read before it
    /// are kept in `pushes`).
    async fn call(&mut self, payload: Value) -> Value {
        self.tag += 1;
        let to = format!("external@{}", self.node);
        let env = json!({"to": to, "id": self.tag, "payload": payload});
        send_json(LIMIT, &mut self.ws, &env).await;
        loop {
            let frame = next_json(LIMIT, &mut self.ws).await;
            if frame["correlation_id"] == self.tag {
                return frame;
            }
            assert!(frame.get("correlation_id").is_none(), "{frame}");
            self.pushes.push(payload_of(&frame));
        }
    }

    /// The next push (job, cancel, closed).
    async fn push(&mut self) -> Value {
        if !self.pushes.is_empty() {
            return self.pushes.remove(0);
        }
        let frame = next_json(LIMIT, &mut self.ws).await;
        assert!(frame.get("correlation_id").is_none(), "{frame}");
        assert_eq!(frame["from"], format!("external@{}", self.node));
        payload_of(&frame)
    }
}

fn payload_of(frame: &Value) -> Value {
    serde_json::from_str(frame["payload"].as_str().unwrap()).unwrap()
}

async fn serves(router: &cluster_router::Router, node: &str, kind: &str, yes: bool) {
    let node = NodeId::new(node).unwrap();
    let tag = format!("kind:{kind}");
    let seen = wait_until(LIMIT, || {
        router
            .member(&node)
            .is_some_and(|m| m.tags.contains(&tag) == yes)
    })
    .await;
    assert!(
        seen,
        "{node} never {} {kind}",
        if yes { "served" } else { "dropped" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_client_serves_a_kind_through_the_register_protocol() {
    let nodes = cluster(&[("xw-a", &[]), ("xw-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut one = RawWorker::connect(&nodes[1].router.url(), "xw-b").await;

    // Malformed and forbidden registrations are answered with errors.
    let bad = one.call(json!({"op":"register","kinds":["echo"]})).await;
    assert_eq!(bad["kind"], "error", "{bad}");
    assert!(bad["payload"].as_str().unwrap().contains("own handlers"));
    let bad = one.call(json!({"op":"fly"})).await;
    assert_eq!(bad["kind"], "error", "{bad}");

    let reg = one
        .call(json!({"op":"register","kinds":["ext-k"],"concurrency":2,"heartbeat_ms":5000}))
        .await;
    let reg = payload_of(&reg);
    assert_eq!(
        (reg["op"].as_str(), reg["concurrency"].as_u64()),
        (Some("registered"), Some(2))
    );
    let worker_one = reg["worker"].as_u64().unwrap();
    serves(&nodes[0].router, "xw-b", "ext-k", true).await;

    let mut pending = Vec::new();
    for i in 0..3 {
        let job = Job::new("ext-k", format!("d{i}")).with_id(JobId::new(&format!("x{i}")).unwrap());
        pending.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    let first = one.push().await;
    let second = one.push().await;
    assert_eq!(
        (first["op"].as_str(), second["op"].as_str()),
        (Some("job"), Some("job"))
    );
    // The heartbeat's answer follows every push sent before it: no third job.
    let beat = one.call(json!({"op":"heartbeat"})).await;
    assert_eq!(payload_of(&beat)["workers"], 1);
    assert!(
        one.pushes.is_empty(),
        "more than the concurrency: {:?}",
        one.pushes
    );

    // Progress and a result for the first; a forged task number is refused.
    let task1 = first["task"].as_u64().unwrap();
    let ack = one
        .call(json!({"op":"progress","task":task1,"fraction":0.5,"note":"half"}))
        .await;
    assert_eq!(payload_of(&ack)["op"], "ack");
    let forged = one
        .call(json!({"op":"result","task":task1 + 1000,"result":"forged"}))
        .await;
    assert_eq!(forged["kind"], "error", "{forged}");
    let data = first["job"]["data"].as_str().unwrap().to_owned();
    one.call(json!({"op":"result","task":task1,"result":format!("done {data}")}))
        .await;
    // The freed slot takes the third job.
    let third = one.push().await;
    assert_eq!(third["op"], "job");
    // A permanent error for the second.
    let task2 = second["task"].as_u64().unwrap();
    one.call(json!({"op":"error","task":task2,"message":"no","retryable":false}))
        .await;

    // A second worker on the other node; then the first disconnects while
    // it holds the third job, which runs again on the second worker.
    let mut two = RawWorker::connect(&nodes[0].router.url(), "xw-a").await;
    let reg = two
        .call(json!({"op":"register","kinds":["ext-k"],"concurrency":1}))
        .await;
    let worker_two = payload_of(&reg)["worker"].as_u64().unwrap();
    serves(&nodes[0].router, "xw-a", "ext-k", true).await;
    drop(one);
    let retried = two.push().await;
    assert_eq!(retried["job"]["id"], third["job"]["id"]);
    assert_eq!(retried["job"]["attempt"], 2);
    let task3 = retried["task"].as_u64().unwrap();
    two.call(json!({"op":"result","task":task3,"result":"again"}))
        .await;

    let mut results = Vec::new();
    for p in pending {
        results.push(within(STEP, "result", p.result()).await.unwrap());
    }
    let by_id = |id: &str| {
        results
            .iter()
            .find(|r| r.id.as_str() == id)
            .unwrap()
            .clone()
    };
    let r1 = by_id(first["job"]["id"].as_str().unwrap());
    assert_eq!(r1.result.as_deref(), Some(format!("done {data}").as_str()));
    assert_eq!(r1.worker_node, "xw-b");
    let r2 = by_id(second["job"]["id"].as_str().unwrap());
    let failure = r2.error.unwrap();
    assert_eq!(
        (failure.cause, failure.retryable),
        (FailureCause::Handler, false)
    );
    let r3 = by_id(third["job"]["id"].as_str().unwrap());
    assert_eq!((r3.result.as_deref(), r3.attempt), (Some("again"), 2));
    assert_eq!(r3.worker_node, "xw-a");

    // Cancellation reaches the worker; its slot is held until it answers.
    let job = Job::new("ext-k", "c").with_id(JobId::new("x-cancel").unwrap());
    let cancelled = within(STEP, "submit", coord.submit(job)).await.unwrap();
    let push = two.push().await;
    let task4 = push["task"].as_u64().unwrap();
    within(
        STEP,
        "cancel",
        coord.cancel(vec![JobId::new("x-cancel").unwrap()]),
    )
    .await
    .unwrap();
    let cancel = two.push().await;
    assert_eq!(
        (cancel["op"].as_str(), cancel["task"].as_u64()),
        (Some("cancel"), Some(task4))
    );
    let result = within(STEP, "cancelled", cancelled.result()).await.unwrap();
    assert_eq!(result.error.unwrap().cause, FailureCause::Cancelled);
    let gone = two
        .call(json!({"op":"unregister","worker":worker_two}))
        .await;
    assert_eq!(payload_of(&gone)["running"], 1);
    let late = two
        .call(json!({"op":"error","task":task4,"message":"stopped"}))
        .await;
    assert_eq!(payload_of(&late)["late"], true);
    // Another client's registration is not this one's to end.
    let foreign = two
        .call(json!({"op":"unregister","worker":worker_one}))
        .await;
    assert_eq!(foreign["kind"], "error");
    serves(&nodes[0].router, "xw-a", "ext-k", false).await;
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_dropped_and_its_job_fails_retryably() {
    let nodes = cluster(&[("xs-a", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut worker = RawWorker::connect(&nodes[0].router.url(), "xs-a").await;
    let reg = worker
        .call(json!({"op":"register","kinds":["ext-s"],"heartbeat_ms":100}))
        .await;
    let id = payload_of(&reg)["worker"].as_u64().unwrap();
    serves(&nodes[0].router, "xs-a", "ext-s", true).await;
    let job = Job::new("ext-s", "").with_max_attempts(1);
    let pending = within(STEP, "submit", coord.submit(job)).await.unwrap();
    assert_eq!(worker.push().await["op"], "job");
    // Silence: no heartbeat, no answer. The node gives up on the worker.
    let closed = worker.push().await;
    assert_eq!(
        closed,
        json!({"op":"closed","worker":id,"reason":"missed heartbeats"})
    );
    let result = within(STEP, "result", pending.result()).await.unwrap();
    let failure = result.error.unwrap();
    assert_eq!(
        (failure.cause, failure.retryable),
        (FailureCause::NodeDown, true)
    );
    serves(&nodes[0].router, "xs-a", "ext-s", false).await;
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_pool_waits_for_its_external_tasks() {
    let nodes = cluster(&[("xd-a", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut worker = RawWorker::connect(&nodes[0].router.url(), "xd-a").await;
    worker
        .call(json!({"op":"register","kinds":["ext-d"],"heartbeat_ms":60000}))
        .await;
    serves(&nodes[0].router, "xd-a", "ext-d", true).await;
    let pending = within(STEP, "submit", coord.submit(Job::new("ext-d", "")))
        .await
        .unwrap();
    let task = worker.push().await["task"].as_u64().unwrap();
    let pool = &nodes[0].pool;
    let mut drain = Box::pin(pool.drain());
    // The drain does not end while the external task runs...
    let early = tokio::time::timeout(Duration::from_millis(300), &mut drain).await;
    assert!(early.is_err(), "drain ended with an external task running");
    serves(&nodes[0].router, "xd-a", "ext-d", false).await;
    // ... and ends once the worker answers.
    worker
        .call(json!({"op":"result","task":task,"result":"done"}))
        .await;
    within(STEP, "drain", drain).await;
    let result = within(STEP, "result", pending.result()).await.unwrap();
    assert_eq!(result.result.as_deref(), Some("done"));
    finish(coord, nodes).await;
}

/// A pool started without external workers (`job-node start
/// --no-external-workers`) refuses every registration with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_external_workers_refuses_registrations() {
    let config = job_queue::WorkerPoolConfig {
        external_workers: false,
        ..job_queue::WorkerPoolConfig::default()
    };
    let node = start_node_with(None, "xw-off", &[], registry(""), config).await;
    let mut client = RawWorker::connect(&node.router.url(), "xw-off").await;
    let refused = client
        .call(json!({"op":"register","kinds":["ext-off"],"concurrency":1}))
        .await;
    assert_eq!(refused["kind"], "error", "{refused}");
    assert!(
        refused["payload"]
            .as_str()
            .is_some_and(|p| p.contains("external workers are disabled on this node")),
        "{refused}"
    );
    serves(&node.router, "xw-off", "echo", true).await;
    let tags = node
        .router
        .member(&NodeId::new("xw-off").unwrap())
        .map(|m| m.tags)
        .unwrap_or_default();
    assert!(!tags.contains(&"kind:ext-off".to_owned()), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_fences_its_jobs_queued_for_external_workers() {
    let dir = std::env::temp_dir().join(format!(
        "jobs-xw-fence-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let mut options = job_queue::CoordinatorOptions {
        data_dir: Some(dir.clone()),
        ..job_queue::CoordinatorOptions::default()
    };
    // Fixed windows: the jobs must queue at the pool, not in the coordinator.
    options.core.queue_target = None;
    let nodes = cluster(&[("xf-a", &[]), ("xf-b", &[])], "").await;
    let mut worker = RawWorker::connect(&nodes[1].router.url(), "xf-b").await;
    let reg = worker
        .call(json!({"op":"register","kinds":["ext-f"],"concurrency":1,"heartbeat_ms":60000}))
        .await;
    assert_eq!(payload_of(&reg)["op"], "registered", "{reg}");
    serves(&nodes[0].router, "xf-b", "ext-f", true).await;

    let first = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    let ids: Vec<String> = (0..4).map(|i| format!("xf-{i}")).collect();
    for id in &ids {
        let job = Job::new("ext-f", id.as_str()).with_id(JobId::new(id).unwrap());
        within(STEP, "submit", first.submit(job)).await.unwrap();
    }
    // The worker holds the first job; the other three wait at xf-b.
    let held = worker.push().await;
    assert_eq!(held["op"], "job", "{held}");
    within(STEP, "first coordinator stops", first.shutdown()).await;

    let second = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    // The successor dispatches the four again: xf-b drops the three of the
    // old incarnation that never reached the worker.
    let fenced = wait_until(LIMIT, || nodes[1].pool.fenced() == 3).await;
    assert!(fenced, "fenced {}", nodes[1].pool.fenced());
    let held_task = held["task"].as_u64().unwrap();
    let late = worker
        .call(json!({"op":"result","task":held_task,"result":"old"}))
        .await;
    assert_eq!(payload_of(&late)["op"], "ack", "{late}");
    // Each job then reaches the worker once more, and only once.
    let mut pushed = Vec::new();
    for _ in 0..ids.len() {
        let job = worker.push().await;
        assert_eq!(job["op"], "job", "{job}");
        let id = job["job"]["id"].as_str().unwrap().to_owned();
        let task = job["task"].as_u64().unwrap();
        worker
            .call(json!({"op":"result","task":task,"result":format!("new {id}")}))
            .await;
        pushed.push(id);
    }
    pushed.sort();
    assert_eq!(pushed, ids);
    for id in &ids {
        let pending = within(STEP, "attach", second.attach(JobId::new(id).unwrap()))
            .await
            .unwrap();
        let result = within(STEP, "result", pending.result()).await.unwrap();
        assert_eq!(result.result.as_deref(), Some(format!("new {id}").as_str()));
    }
    // Nothing else was pushed: the heartbeat's answer follows every push.
    worker.call(json!({"op":"heartbeat"})).await;
    assert!(worker.pushes.is_empty(), "{:?}", worker.pushes);
    finish(second, nodes).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker that sends its last results and hangs up at once (a script
/// that finishes its work and exits) loses none of them: the node reads
/// a client's frames before it learns the client is gone, so the results
/// count and nothing is failed as "disconnected" (each job has one attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_sent_just_before_a_hang_up_count() {
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 64;
    let nodes = cluster(&[("xh-a", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    for round in 0..ROUNDS {
        let mut worker = RawWorker::connect(&nodes[0].router.url(), "xh-a").await;
        let reg = worker
            .call(json!({"op":"register","kinds":["ext-h"],"concurrency":PER_ROUND,"heartbeat_ms":60000}))
            .await;
        assert_eq!(payload_of(&reg)["op"], "registered", "{reg}");
        serves(&nodes[0].router, "xh-a", "ext-h", true).await;
        let jobs = (0..PER_ROUND)
            .map(|i| Job::new("ext-h", format!("{round}-{i}")).with_max_attempts(1))
            .collect();
        let pending = within(STEP, "submit", coord.submit_many(jobs))
            .await
            .unwrap();
        // Each job's result as soon as it comes, without waiting for an
        // answer; the close follows the last result at once.
        let to = format!("external@{}", worker.node);
        let mut answered = 0;
        while answered < PER_ROUND {
            let frame = next_json(LIMIT, &mut worker.ws).await;
            if frame.get("correlation_id").is_some() {
                continue; // an earlier result's acknowledgement
            }
            let push = payload_of(&frame);
            assert_eq!(push["op"], "job", "{push}");
            let result = json!({"op":"result","task":push["task"],"result":push["job"]["data"]});
            let env = json!({"to": to, "id": 1000 + answered, "payload": result});
            send_json(LIMIT, &mut worker.ws, &env).await;
            answered += 1;
        }
        within(STEP, "close", worker.ws.close(None)).await.unwrap();
        for p in pending {
            let result = within(STEP, "result", p.result()).await.unwrap();
            assert!(
                result.error.is_none(),
                "round {round}: a result sent before the hang-up was lost: {result:?}"
            );
            assert_eq!(result.attempt, 1);
        }
        serves(&nodes[0].router, "xh-a", "ext-h", false).await;
    }
    finish(coord, nodes).await;
}
