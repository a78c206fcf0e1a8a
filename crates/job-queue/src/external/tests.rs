use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, EnvelopeKind, PayloadFormat};
use serde_json::{json, Value};

use super::*;

fn addr(s: &str) -> ActorAddr {
    s.parse().unwrap()
}

fn state() -> ExternalWorkers<u32> {
    ExternalWorkers::new(
        addr("external@n"),
        vec!["zone-a".into()],
        vec!["echo".into()],
        ExternalLimits::new(4),
    )
}

fn msg(from: &str, payload: Value) -> Envelope {
    Envelope::new(
        addr("external@n"),
        addr(from),
        PayloadFormat::Json,
        Bytes::from(payload.to_string()),
    )
}

/// Sends `payload` from `from`; returns the answer (Ok payload or Err
/// reason) and the other effects.
fn call(
    ext: &mut ExternalWorkers<u32>,
    from: &str,
    payload: Value,
    now: Instant,
) -> (Result<Value, String>, Vec<Effect<u32>>) {
    let env = msg(from, payload);
    ext.on_message(&env, now);
    let mut effects = ext.take_effects();
    let answer = effects
        .iter()
        .position(|e| matches!(e, Effect::Send(r) if r.correlation_id == Some(env.id)))
        .expect("every message is answered");
    let Effect::Send(reply) = effects.remove(answer) else {
        unreachable!()
    };
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    let answer = match reply.kind {
        EnvelopeKind::Message => Ok(body),
        _ => Err(body.as_str().unwrap().to_owned()),
    };
    (answer, effects)
}

fn register(ext: &mut ExternalWorkers<u32>, from: &str, kinds: &[&str], n: u32) -> u64 {
    let payload = json!({"op":"register","kinds":kinds,"concurrency":n});
    let (answer, _) = call(ext, from, payload, Instant::now());
    answer.unwrap()["worker"].as_u64().unwrap()
}

/// The tasks pushed to clients among `effects`: (client, task id, job id).
fn pushed(effects: &[Effect<u32>]) -> Vec<(String, u64, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(env) if env.correlation_id.is_none() => {
                let v: Value = serde_json::from_slice(&env.payload).ok()?;
                (v["op"] == "job").then(|| {
                    let task = v["task"].as_u64().unwrap();
                    (
                        env.to.to_string(),
                        task,
                        v["job"]["id"].as_str().unwrap().to_owned(),
                    )
                })
            }
            _ => None,
        })
        .collect()
}

fn finished(effects: &[Effect<u32>]) -> Vec<(JobResult, u32)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Finished(r, t) => Some((r.clone(), *t)),
            _ => None,
        })
        .collect()
}

fn job(id: &str, kind: &str) -> Job {
    Job::new(kind, "data").with_id(JobId::new(id).unwrap())
}

#[test]
fn register_dispatch_result_and_concurrency_bound() {
    let mut ext = state();
    let now = Instant::now();
    let w = register(&mut ext, "client-1@n", &["resize"], 2);
    assert!(ext.serves("resize"));
    assert_eq!(ext.advertised(), vec!["kind:resize".to_owned()]);
    let coord = addr("coordinator@m");
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        ext.submit(job(id, "resize"), coord.clone(), i as u32, now);
    }
    let effects = ext.take_effects();
    let tasks = pushed(&effects);
    assert_eq!(tasks.len(), 2, "never more than the concurrency: {tasks:?}");
    assert_eq!(ext.queued(), 2);
    let (answer, effects) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"result","task":tasks[0].1,"result":{"ok":1}}),
        now,
    );
    assert_eq!(answer.unwrap()["op"], "ack");
    let done = finished(&effects);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0.result.as_deref(), Some(r#"{"ok":1}"#));
    assert_eq!(done[0].1, 0);
    assert_eq!(
        pushed(&effects).len(),
        1,
        "the freed slot takes a queued job"
    );
    // Answering the same task again is refused: exactly one result.
    let (again, effects) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"result","task":tasks[0].1,"result":"x"}),
        now,
    );
    assert!(again.unwrap_err().contains("is not running"));
    assert!(finished(&effects).is_empty());
    let _ = w;
}

#[test]
fn clients_cannot_answer_tasks_of_others_or_speak_for_other_nodes() {
    let mut ext = state();
    let now = Instant::now();
    register(&mut ext, "client-1@n", &["k"], 1);
    ext.submit(job("a", "k"), addr("coordinator@m"), 0, now);
    let task = pushed(&ext.take_effects())[0].1;
    let (answer, effects) = call(
        &mut ext,
        "client-2@n",
        json!({"op":"result","task":task,"result":"forged"}),
        now,
    );
    assert!(answer.unwrap_err().contains("not running on client-2@n"));
    assert!(finished(&effects).is_empty());
    let (answer, _) = call(&mut ext, "client-1@other", json!({"op":"heartbeat"}), now);
    assert!(answer.unwrap_err().contains("clients of n only"));
    let (answer, _) = call(&mut ext, "coordinator@n", json!({"op":"heartbeat"}), now);
    assert!(answer.is_err());
    let (answer, _) = call(&mut ext, "client-1@n", json!({"op":"explode"}), now);
    assert!(answer.unwrap_err().contains("malformed"));
}

#[test]
fn registrations_are_validated_and_bounded() {
    let mut ext = state();
    let now = Instant::now();
    let cases = [
        json!({"op":"register","kinds":[]}),
        json!({"op":"register","kinds":["echo"]}),
        json!({"op":"register","kinds":["has space"]}),
        json!({"op":"register","kinds":["k"],"tags":["kind:x"]}),
        json!({"op":"register","kinds":["k"],"concurrency":0}),
        json!({"op":"register","kinds":["k"],"concurrency":513}),
        json!({"op":"register","kinds":["k"],"heartbeat_ms":1}),
        json!({"op":"register","kinds":["k".repeat(65)]}),
        // The map-reduce engine's task kinds, though this node does not
        // serve them itself.
        json!({"op":"register","kinds":["mr.map"]}),
        json!({"op":"register","kinds":["k","mr.reduce"]}),
    ];
    for case in cases {
        let (answer, _) = call(&mut ext, "client-1@n", case.clone(), now);
        assert!(answer.is_err(), "{case} must be refused");
    }
    assert!(!ext.serves("k"));
    for _ in 0..2 {
        let (ok, _) = call(
            &mut ext,
            "client-1@n",
            json!({"op":"register","kinds":["k"],"concurrency":256}),
            now,
        );
        ok.unwrap();
    }
    let (over, _) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"register","kinds":["k"],"concurrency":1}),
        now,
    );
    assert!(over.unwrap_err().contains("at most 512"));
}

#[test]
fn timeout_gives_one_result_and_keeps_the_slot_until_the_worker_answers() {
    let mut ext = state();
    let now = Instant::now();
    register(&mut ext, "client-1@n", &["k"], 1);
    let coord = addr("coordinator@m");
    ext.submit(
        job("a", "k").with_timeout(Duration::from_millis(50)),
        coord.clone(),
        1,
        now,
    );
    ext.submit(job("b", "k"), coord, 2, now);
    let task = pushed(&ext.take_effects())[0].1;
    ext.tick(now + Duration::from_millis(60));
    let effects = ext.take_effects();
    let done = finished(&effects);
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].0.error.as_ref().unwrap().cause,
        FailureCause::Timeout
    );
    assert!(pushed(&effects).is_empty(), "the slot is still taken");
    assert!(effects.iter().any(|e| matches!(e, Effect::Send(env)
        if String::from_utf8_lossy(&env.payload).contains("\"cancel\""))));
    let later = now + Duration::from_millis(70);
    let (answer, effects) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"result","task":task,"result":"late"}),
        later,
    );
    assert_eq!(answer.unwrap()["late"], true);
    assert!(finished(&effects).is_empty(), "no second result");
    assert_eq!(pushed(&effects).len(), 1, "now the queued job goes");
}

#[test]
fn a_stalled_or_gone_client_fails_its_tasks_retryably() {
    let mut ext = state();
    let now = Instant::now();
    register(&mut ext, "client-1@n", &["k"], 2);
    register(&mut ext, "client-2@n", &["k"], 2);
    let coord = addr("coordinator@m");
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        ext.submit(job(id, "k"), coord.clone(), i as u32, now);
    }
    let tasks = pushed(&ext.take_effects());
    assert_eq!(tasks.len(), 4);
    // client-2 keeps sending heartbeats; client-1 goes silent.
    let later = now + Duration::from_secs(5);
    let _ = call(&mut ext, "client-2@n", json!({"op":"heartbeat"}), later);
    ext.tick(now + Duration::from_millis(6100));
    let done = finished(&ext.take_effects());
    assert_eq!(done.len(), 2, "{done:?}");
    for (result, _) in &done {
        let failure = result.error.as_ref().unwrap();
        assert_eq!(failure.cause, FailureCause::NodeDown);
        assert!(failure.retryable);
        assert!(failure.message.contains("missed heartbeats"));
    }
    assert!(ext.serves("k"));
    ext.on_client_gone(&addr("client-2@n"), later);
    assert_eq!(finished(&ext.take_effects()).len(), 2);
    assert!(!ext.serves("k"));
    assert_eq!(ext.in_flight(), 0);
    assert!(ext.advertised().is_empty());
}

#[test]
fn cancel_reaches_the_worker_and_unregister_drains() {
    let mut ext = state();
    let now = Instant::now();
    let w = register(&mut ext, "client-1@n", &["k"], 1);
    let coord = addr("coordinator@m");
    ext.submit(job("a", "k"), coord.clone(), 1, now);
    ext.submit(job("b", "k"), coord.clone(), 2, now);
    let task = pushed(&ext.take_effects())[0].1;
    assert!(
        ext.cancel(&coord, &JobId::new("b").unwrap(), 1, now),
        "queued"
    );
    assert!(
        ext.cancel(&coord, &JobId::new("a").unwrap(), 1, now),
        "running"
    );
    let effects = ext.take_effects();
    let done = finished(&effects);
    assert_eq!(done.len(), 2);
    assert!(done
        .iter()
        .all(|(r, _)| r.error.as_ref().unwrap().cause == FailureCause::Cancelled));
    assert!(effects.iter().any(|e| matches!(e, Effect::Send(env)
        if String::from_utf8_lossy(&env.payload).contains("\"cancel\"")
            && env.to == addr("client-1@n"))));
    let (answer, _) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"unregister","worker":w}),
        now,
    );
    assert_eq!(answer.unwrap()["running"], 1);
    assert!(!ext.serves("k"));
    ext.submit(job("c", "k"), coord, 3, now);
    let refused = finished(&ext.take_effects());
    assert_eq!(
        refused[0].0.error.as_ref().unwrap().cause,
        FailureCause::Refused
    );
    let (answer, _) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"error","task":task,"message":"stopped","retryable":false}),
        now,
    );
    answer.unwrap();
    assert_eq!(ext.in_flight(), 0);
}

#[test]
fn errors_and_progress_map_to_results_and_reports() {
    let mut ext = state();
    let now = Instant::now();
    register(&mut ext, "client-1@n", &["k"], 3);
    let coord = addr("coordinator@m");
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        ext.submit(job(id, "k"), coord.clone(), i as u32, now);
    }
    let tasks = pushed(&ext.take_effects());
    let (_, effects) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"progress","task":tasks[0].1,"fraction":7.0,"note":"n"}),
        now,
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Progress(u, 0) if u.fraction == 1.0)));
    let cases = [
        (
            json!({"op":"error","task":tasks[0].1,"message":"m","retryable":true}),
            FailureCause::Handler,
            true,
        ),
        (
            json!({"op":"error","task":tasks[1].1,"message":"m"}),
            FailureCause::Handler,
            false,
        ),
        (
            json!({"op":"error","task":tasks[2].1,"message":"m","bad_data":true}),
            FailureCause::BadData,
            false,
        ),
    ];
    for (payload, cause, retryable) in cases {
        let (_, effects) = call(&mut ext, "client-1@n", payload, now);
        let failure = finished(&effects)[0].0.error.clone().unwrap();
        assert_eq!((failure.cause, failure.retryable), (cause, retryable));
    }
}

#[test]
fn required_tags_come_from_the_node_or_the_registration() {
    let mut ext = state();
    let now = Instant::now();
    let (ok, _) = call(
        &mut ext,
        "client-1@n",
        json!({"op":"register","kinds":["k"],"tags":["gpu"]}),
        now,
    );
    ok.unwrap();
    register(&mut ext, "client-2@n", &["k"], 1);
    assert_eq!(
        ext.advertised(),
        vec!["kind:k".to_owned(), "gpu".to_owned()]
    );
    let coord = addr("coordinator@m");
    ext.submit(
        job("g", "k").with_tag("gpu").with_tag("zone-a"),
        coord.clone(),
        1,
        now,
    );
    ext.submit(job("h", "k").with_tag("gpu"), coord, 2, now);
    let tasks = pushed(&ext.take_effects());
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].0, "client-1@n");
    assert_eq!(ext.queued(), 1, "only client-1 has the tag; it is busy");
}

#[test]
fn fencing_drops_only_the_queued_jobs_of_the_stale_incarnation() {
    let mut ext = state();
    let now = Instant::now();
    register(&mut ext, "client-1@n", &["resize"], 1);
    let (old, other) = (addr("coordinator@m"), addr("coordinator@o"));
    // The ticket stands for the incarnation: 1 is the old one.
    ext.submit(job("running", "resize"), old.clone(), 1, now);
    ext.submit(job("stale-1", "resize"), old.clone(), 1, now);
    ext.submit(job("other", "resize"), other.clone(), 1, now);
    ext.submit(job("stale-2", "resize"), old.clone(), 1, now);
    ext.submit(job("fresh", "resize"), old.clone(), 2, now);
    let _ = ext.take_effects();
    assert_eq!((ext.in_flight(), ext.queued()), (1, 4));
    assert_eq!(ext.fence(&old, |incarnation| *incarnation < 2), 2);
    assert!(ext.take_effects().is_empty(), "fenced jobs get no result");
    // The running task and the other coordinator's and the new
    // incarnation's queued jobs stay.
    assert_eq!((ext.in_flight(), ext.queued()), (1, 2));
    let left: Vec<&str> = ext.queue.iter().map(|q| q.job.id.as_str()).collect();
    assert_eq!(left, ["other", "fresh"]);
    assert_eq!(ext.fence(&old, |incarnation| *incarnation < 2), 0);
}

#[test]
fn a_node_may_restrict_the_kinds_external_workers_serve() {
    let mut ext = ExternalWorkers::<u32>::new(
        addr("external@n"),
        Vec::new(),
        vec!["echo".into()],
        ExternalLimits {
            allowed_kinds: Some(vec!["resize".into(), "ocr".into()]),
            ..ExternalLimits::new(4)
        },
    );
    let now = Instant::now();
    let payload = json!({"op":"register","kinds":["resize","billing"],"concurrency":1});
    let (answer, _) = call(&mut ext, "client-1@n", payload, now);
    let why = answer.unwrap_err();
    assert!(
        why.contains("may only serve resize, ocr") && why.contains("\"billing\""),
        "{why}"
    );
    assert!(
        !ext.serves("resize"),
        "a refused registration serves nothing"
    );
    register(&mut ext, "client-1@n", &["ocr", "resize"], 1);
    assert!(ext.serves("resize") && ext.serves("ocr"));
}
