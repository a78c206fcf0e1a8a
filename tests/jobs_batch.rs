//! `{"cmd":"submit_batch","jobs":[..]}` from an external JSON client: each
//! job taken or refused on its own, known and repeated ids waiting for
//! their job, every entry answered exactly once, results gathered into few
//! envelopes, and the batch's bound.

mod support;

use std::collections::HashMap;

use job_queue::{Coordinator, Job, JobId, StrategyKind, MAX_BATCH_JOBS};
use serde_json::{json, Value};
use support::jobs::*;
use support::ws::{connect_bearer, next_json, send_json, welcome, Ws};

/// Sends `jobs` as one batch tagged `tag` to `coordinator@<node>`.
async fn send_batch(ws: &mut Ws, node: &str, tag: u64, jobs: Vec<Value>) {
    let cmd = json!({"to": format!("coordinator@{node}"), "id": tag,
        "payload": {"cmd": "submit_batch", "jobs": jobs}});
    send_json(STEP, ws, &cmd).await;
}

/// One node with a round-robin coordinator, and a client connected to it
/// (its welcome read).
async fn one_node_and_client(name: &str) -> (Vec<Node>, Coordinator, Ws) {
    let nodes = cluster(&[(name, &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut ws = connect_bearer(STEP, &nodes[0].router.url(), SECRET).await;
    welcome(STEP, &mut ws, name).await;
    (nodes, coord, ws)
}

/// Answers of batches: results and refusals per tag, and how many
/// envelopes carried them.
#[derive(Default)]
struct Answers {
    results: HashMap<u64, Vec<Value>>,
    refused: HashMap<u64, Vec<Value>>,
    envelopes: usize,
}

impl Answers {
    fn entries(&self, tag: u64) -> usize {
        self.results.get(&tag).map_or(0, Vec::len) + self.refused.get(&tag).map_or(0, Vec::len)
    }

    /// Reads answers until every tag in `expected` has its count of entries.
    async fn read_until(&mut self, ws: &mut Ws, expected: &[(u64, usize)]) {
        while expected.iter().any(|&(tag, n)| self.entries(tag) < n) {
            let env = next_json(STEP, ws).await;
            assert!(env.get("kind").is_none(), "an error answer: {env}");
            let tag = env["correlation_id"].as_u64().expect("a correlated answer");
            let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
            self.envelopes += 1;
            let results = payload["results"].as_array().expect("results").clone();
            let refused = payload["refused"].as_array().expect("refused").clone();
            self.results.entry(tag).or_default().extend(results);
            self.refused.entry(tag).or_default().extend(refused);
        }
        for &(tag, n) in expected {
            assert_eq!(self.entries(tag), n, "batch {tag} answered more than once");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_has_each_entry_answered_once() {
    let nodes = cluster(&[("bm-a", &[]), ("bm-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    // A job that is already final before the batch names it.
    let done = Job::new("echo", "old").with_id(JobId::new("bm-known").unwrap());
    let pending = within(STEP, "submit", coord.submit(done)).await.unwrap();
    within(STEP, "result", pending.result()).await.unwrap();

    let mut ws = connect_bearer(STEP, &nodes[1].router.url(), SECRET).await;
    welcome(STEP, &mut ws, "bm-b").await;
    let jobs = vec![
        json!({"id": "bm-1", "kind": "echo", "data": "one"}),
        json!({"id": "bm-bad", "kind": "echo", "max_attempts": 0}),
        json!(5),
        json!({"id": "bm-known", "kind": "echo", "data": "new"}),
        json!({"id": "bm-1", "kind": "echo", "data": "again"}),
        json!({"kind": "echo", "data": "no id"}),
        json!({"id": "bm-2", "kind": "reject"}),
        json!({"id": "x".repeat(100_000), "kind": "echo"}),
    ];
    send_batch(&mut ws, "bm-a", 7, jobs).await;
    let mut answers = Answers::default();
    answers.read_until(&mut ws, &[(7, 8)]).await;

    let refused = &answers.refused[&7];
    let mut indexes: Vec<u64> = refused
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [1, 2, 7], "{refused:?}");
    // An over-long id is not echoed back; the index names the entry.
    let long = refused.iter().find(|r| r["index"] == 7).unwrap();
    assert!(long.get("id").is_none(), "{long}");
    let bad = refused.iter().find(|r| r["index"] == 1).unwrap();
    assert_eq!(bad["id"], "bm-bad");
    assert!(bad["reason"].as_str().unwrap().contains("attempt"), "{bad}");
    let undecodable = refused.iter().find(|r| r["index"] == 2).unwrap();
    assert!(undecodable["reason"]
        .as_str()
        .unwrap()
        .starts_with("cannot decode job"));

    let results = &answers.results[&7];
    let by_id = |id: &str| results.iter().filter(|r| r["id"] == id).collect::<Vec<_>>();
    // The repeated id waited for the first: the same result twice.
    let ones = by_id("bm-1");
    assert_eq!(ones.len(), 2, "{results:?}");
    assert!(ones.iter().all(|r| r["result"] == "one"), "{ones:?}");
    // The known id was not run again.
    assert_eq!(by_id("bm-known")[0]["result"], "old");
    assert_eq!(by_id("bm-2")[0]["error"]["cause"], "handler");
    let generated: Vec<_> = results.iter().filter(|r| r["result"] == "no id").collect();
    assert_eq!(generated.len(), 1);
    assert!(generated[0]["id"].as_str().unwrap().starts_with("bm-a-"));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_bounded_and_an_empty_one_is_answered() {
    let (nodes, coord, mut ws) = one_node_and_client("bl-a").await;

    let too_many = vec![json!({"kind": "echo"}); MAX_BATCH_JOBS + 1];
    send_batch(&mut ws, "bl-a", 1, too_many).await;
    let refused = next_json(STEP, &mut ws).await;
    assert_eq!(
        (refused["correlation_id"].as_u64(), refused["kind"].as_str()),
        (Some(1), Some("error"))
    );
    let reason = refused["payload"].as_str().unwrap();
    assert!(reason.contains("too many jobs: 4097"), "{reason}");

    send_batch(&mut ws, "bl-a", 2, Vec::new()).await;
    let empty = next_json(STEP, &mut ws).await;
    assert_eq!(empty["correlation_id"], 2);
    let payload: Value = serde_json::from_str(empty["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({"results": [], "refused": []}));

    let bad = json!({"to": "coordinator@bl-a", "id": 3,
        "payload": {"cmd": "submit_batch", "jobs": {"kind": "echo"}}});
    send_json(STEP, &mut ws, &bad).await;
    let refused = next_json(STEP, &mut ws).await;
    assert_eq!(refused["kind"], "error");
    assert!(refused["payload"].as_str().unwrap().contains("bad command"));

    // A draining coordinator refuses each job of a batch, naming it.
    within(STEP, "drain", coord.drain()).await.unwrap();
    let jobs = (0..3)
        .map(|n| json!({"id": format!("bl-{n}"), "kind": "echo"}))
        .collect();
    send_batch(&mut ws, "bl-a", 4, jobs).await;
    let mut answers = Answers::default();
    answers.read_until(&mut ws, &[(4, 3)]).await;
    for (n, refusal) in answers.refused[&4].iter().enumerate() {
        assert_eq!(refusal["index"], n, "{refusal}");
        assert_eq!(refusal["id"], format!("bl-{n}"));
        assert!(
            refusal["reason"].as_str().unwrap().contains("draining"),
            "{refusal}"
        );
    }
    finish(coord, nodes).await;
}

/// Refusals quote at most `MAX_ERROR_TEXT` bytes of what they refuse, however
/// long the client made it: an unknown command, a job's unknown field, an
/// id, a malformed envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_quote_little_of_a_megabyte_of_input() {
    use cluster_router::MAX_ERROR_TEXT;
    let (nodes, coord, mut ws) = one_node_and_client("bq-a").await;
    let long = "x".repeat(1 << 20);
    let short_error = |env: &Value, tag: u64| {
        assert_eq!(env["correlation_id"], tag, "{}", &env.to_string()[..200]);
        assert_eq!(env["kind"], "error");
        // The payload is the reason as a JSON string.
        let reason: String = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
        assert!(reason.len() <= MAX_ERROR_TEXT, "{} bytes", reason.len());
        reason
    };

    let cmd = json!({"to": "coordinator@bq-a", "id": 1, "payload": {"cmd": long}});
    send_json(STEP, &mut ws, &cmd).await;
    let reason = short_error(&next_json(STEP, &mut ws).await, 1);
    assert!(
        reason.starts_with("bad command: unknown variant `xxx"),
        "{reason}"
    );
    assert!(reason.contains("expected one of"), "{reason}");

    let get = json!({"to": "coordinator@bq-a", "id": 2,
        "payload": {"cmd": "get", "ids": [format!("a {long}")]}});
    send_json(STEP, &mut ws, &get).await;
    let reason = short_error(&next_json(STEP, &mut ws).await, 2);
    assert!(reason.starts_with("bad id \"a xxx"), "{reason}");

    // A job of a batch: its refusal's reason, in the batch's answer.
    send_batch(
        &mut ws,
        "bq-a",
        3,
        vec![json!({"kind": "echo", long.clone(): 1})],
    )
    .await;
    let mut answers = Answers::default();
    answers.read_until(&mut ws, &[(3, 1)]).await;
    let reason = answers.refused[&3][0]["reason"].as_str().unwrap();
    assert!(
        reason.len() <= MAX_ERROR_TEXT + 32,
        "{} bytes",
        reason.len()
    );
    assert!(reason.contains("unknown field `xxx"), "{reason}");

    // Not an envelope at all: the edge's error frame.
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "coordinator@bq-a", long.clone(): 1}),
    )
    .await;
    let frame = next_json(STEP, &mut ws).await;
    let reason = frame["error"].as_str().expect("an error frame");
    assert!(reason.len() <= MAX_ERROR_TEXT, "{} bytes", reason.len());
    assert!(reason.starts_with("malformed envelope"), "{reason}");
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_jobs_in_batches_come_back_once_in_few_envelopes() {
    let nodes = cluster(&[("bt-a", &[]), ("bt-b", &[]), ("bt-c", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;
    let mut ws = connect_bearer(STEP, &nodes[0].router.url(), SECRET).await;
    welcome(STEP, &mut ws, "bt-a").await;
    let (batches, per_batch) = (10u64, 2_000usize);
    for tag in 1..=batches {
        let jobs = (0..per_batch)
            .map(|n| json!({"id": format!("bt-{tag}-{n}"), "kind": "echo", "data": n.to_string()}))
            .collect();
        send_batch(&mut ws, "bt-a", tag, jobs).await;
    }
    let expected: Vec<(u64, usize)> = (1..=batches).map(|tag| (tag, per_batch)).collect();
    let mut answers = Answers::default();
    answers.read_until(&mut ws, &expected).await;
    for tag in 1..=batches {
        assert!(answers.refused.get(&tag).is_none_or(Vec::is_empty));
        let mut ids: Vec<String> = answers.results[&tag]
            .iter()
            .map(|r| {
                assert!(r["error"].is_null(), "{r}");
                r["id"].as_str().unwrap().to_owned()
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), per_batch, "every job of batch {tag} once");
    }
    let total = batches as usize * per_batch;
    println!("{total} results in {} envelopes", answers.envelopes);
    finish(coord, nodes).await;
}

/// `answer` is the error answer to request `tag`, refusing a map-reduce
/// task kind.
fn engine_kind_refused(answer: &Value, tag: u64) {
    assert_eq!(
        (answer["correlation_id"].as_u64(), answer["kind"].as_str()),
        (Some(tag), Some("error")),
        "{answer}"
    );
    let reason = answer["payload"].as_str().unwrap();
    assert!(reason.contains("map-reduce engine"), "{answer}");
}

/// The map-reduce engine's task kinds (`mr.map`, `mr.reduce`) are its
/// drivers' alone: their data names other jobs' blobs and nodes. A client
/// is refused them, alone, in a batch (the other entries run) and as a
/// recurring job's template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_submit_the_map_reduce_engines_task_kinds() {
    let (nodes, coord, mut ws) = one_node_and_client("mk-a").await;

    let task = json!({"job": "someone-else", "spec": "wordcount", "partition": 0,
        "sources": [{"node": "mk-a", "task": 0}], "splits": []});
    let single = json!({"to": "coordinator@mk-a", "id": 1,
        "payload": {"kind": "mr.reduce", "data": task.to_string()}});
    send_json(STEP, &mut ws, &single).await;
    engine_kind_refused(&next_json(STEP, &mut ws).await, 1);

    let jobs = vec![
        json!({"id": "mk-1", "kind": "mr.map", "data": "{}"}),
        json!({"id": "mk-2", "kind": "echo", "data": "fine"}),
        json!({"kind": "mr.reduce", "data": task.to_string()}),
    ];
    send_batch(&mut ws, "mk-a", 2, jobs).await;
    let mut answers = Answers::default();
    answers.read_until(&mut ws, &[(2, 3)]).await;
    let mut refused: Vec<(u64, String)> = answers.refused[&2]
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().unwrap();
            assert!(reason.contains("map-reduce engine"), "{r}");
            (r["index"].as_u64().unwrap(), r["id"].to_string())
        })
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [(0, "\"mk-1\"".to_owned()), (2, "null".to_owned())],
        "{:?}",
        answers.refused
    );
    assert_eq!(answers.results[&2].len(), 1);
    assert_eq!(answers.results[&2][0]["result"], "fine");

    let recurring = json!({"to": "coordinator@mk-a", "id": 3,
        "payload": {"cmd": "recurring_add", "recurring":
            {"name": "mk", "cron": "* * * * * *", "job": {"kind": "mr.map", "data": "{}"}}}});
    send_json(STEP, &mut ws, &recurring).await;
    engine_kind_refused(&next_json(STEP, &mut ws).await, 3);
    finish(coord, nodes).await;
}
