//! Entry points for the fuzz targets in `/fuzz`; not a stable API.
//!
//! [`job_wire`] takes arbitrary bytes, runs every decoder of jobs and
//! results that reads a payload from another node or an external client
//! (`Job`/`JobResult` JSON and bincode, the worker protocol's `decode_job`,
//! `decode_jobs` and `decode_reply` in both payload formats, and the batch
//! sequences, the limits protocol's messages), and checks the round trips
//! of what is accepted (a limits message is also fed to a limits engine
//! as if from a member node). It never
//! panics on any input; a panic is a violated invariant, i.e. a bug (what
//! the fuzzers look for). [`job_wire_seeds`] builds seed inputs with the
//! real encoders. The same functions are run on stable by
//! `tests/fuzz_smoke.rs` of the main workspace and by `fuzz/tests/seeds.rs`.

use std::time::Duration;

use cluster_router::PayloadFormat;

use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::limits::{KindLimit, LimitEngine, LimitMsg, LimitsConfig};
use crate::protocol::{self, WorkerReply};
use crate::wire::{decode_job_seq, decode_result_seq, encode_job_seq, encode_result_seq};

const FORMATS: [PayloadFormat; 2] = [PayloadFormat::Json, PayloadFormat::Binary];

/// Runs every job / result decoder on `data` and checks that what each one
/// accepts re-encodes in the same form to something that decodes equal.
pub fn job_wire(data: &[u8]) {
    job_forms(data);
    sequences(data);
    for format in FORMATS {
        worker_protocol(data, format);
    }
    limits_protocol(data);
}

/// A limits message: re-encodes equal, and an engine that leads its kind
/// (and one that follows another leader) takes it without panicking.
fn limits_protocol(data: &[u8]) {
    let Ok(msg) = LimitMsg::decode(data) else {
        return;
    };
    assert_eq!(LimitMsg::decode(&msg.encode()).expect("own encoding"), msg);
    let now = std::time::Instant::now();
    let limit = KindLimit {
        kind: msg.kind().to_owned(),
        running: Some(2),
        rate: Some(5.0),
        burst: None,
    };
    let config = LimitsConfig {
        kinds: vec![limit.clone()],
        lease: Duration::from_millis(100),
    };
    for me in ["a", "c"] {
        let mut engine = LimitEngine::new(me.into(), config.clone(), now);
        engine.observe_node("b", true, &[limit.tag()], now);
        engine.received("b", msg.clone(), now);
        engine.received("b", msg.clone(), now + Duration::from_millis(150));
        let _ = engine.take_outbox();
        let _ = engine.snapshot();
    }
}

/// `Job` and `JobResult` in their JSON (client) and bincode (node) forms.
fn job_forms(data: &[u8]) {
    if let Ok(job) = Job::from_bincode(data) {
        let back = Job::from_bincode(&job.to_bincode()).expect("own bincode decodes");
        assert_eq!(back, job);
        let _ = job.validate();
        let _ = job.heap_bytes();
    }
    if let Ok(res) = JobResult::from_bincode(data) {
        let back = JobResult::from_bincode(&res.to_bincode()).expect("own bincode decodes");
        assert_eq!(back, res);
        let _ = res.outcome();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Job::from_json(text) {
        Ok(job) => {
            let back = Job::from_json(&job.to_json()).expect("own JSON decodes");
            assert_eq!(back, job);
            let _ = job.validate();
        }
        // The refusal goes back to the client: it quotes little of it.
        Err(err) => assert_bounded(&err.to_string()),
    }
    if let Ok(res) = JobResult::from_json(text) {
        let back = JobResult::from_json(&res.to_json()).expect("own JSON decodes");
        assert_same_result(&back, &res);
    }
}

/// An error text for a client is at most [`cluster_router::MAX_ERROR_TEXT`]
/// bytes, and a little for its prefix.
fn assert_bounded(text: &str) {
    assert!(
        text.len() <= cluster_router::MAX_ERROR_TEXT + 32,
        "an error of {} bytes: {}...",
        text.len(),
        text.chars().take(80).collect::<String>()
    );
}

/// The bincode sequences of jobs and results carried in batches.
fn sequences(data: &[u8]) {
    if let Ok(jobs) = decode_job_seq(data) {
        let mut out = Vec::new();
        encode_job_seq(&jobs, &mut out);
        assert_eq!(decode_job_seq(&out).expect("own job batch decodes"), jobs);
    }
    if let Ok(results) = decode_result_seq(data) {
        let mut out = Vec::new();
        encode_result_seq(&results, &mut out);
        assert_eq!(
            decode_result_seq(&out).expect("own result batch decodes"),
            results
        );
    }
}

/// What a worker pool decodes from a dispatch (`decode_job`, `decode_jobs`)
/// and a coordinator from a worker's reply (`decode_reply`), in `format`.
fn worker_protocol(data: &[u8], format: PayloadFormat) {
    if let Ok(job) = protocol::decode_job(data, format) {
        let back = protocol::decode_job(&protocol::encode_job(&job, format), format)
            .expect("own job payload decodes");
        assert_eq!(back, job);
    }
    if let Ok(jobs) = protocol::decode_jobs(data, format) {
        assert!(!jobs.is_empty() || format == PayloadFormat::Binary);
        if format == PayloadFormat::Binary {
            let batch = protocol::encode_job_batch(&jobs);
            let back = protocol::decode_jobs(&batch, format).expect("own job batch decodes");
            assert_eq!(back, jobs);
        }
    }
    match protocol::decode_reply(data, format) {
        Ok(reply) => {
            let bytes = protocol::encode_reply(&reply, format);
            let back = protocol::decode_reply(&bytes, format).expect("own reply decodes");
            assert_same_reply(&back, &reply);
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

/// `a == b`, except that a JSON `elapsed_ms` may round by a microsecond.
fn assert_same_result(a: &JobResult, b: &JobResult) {
    let (x, y) = (a.elapsed.as_micros(), b.elapsed.as_micros());
    assert!(
        x.abs_diff(y) <= 1 + (x >> 40),
        "elapsed drifted: {y} -> {x}"
    );
    let a = JobResult {
        elapsed: b.elapsed,
        ..a.clone()
    };
    assert_eq!(&a, b);
}

fn assert_same_results(xs: &[JobResult], ys: &[JobResult]) {
    assert_eq!(xs.len(), ys.len());
    xs.iter()
        .zip(ys)
        .for_each(|(x, y)| assert_same_result(x, y));
}

fn assert_same_reply(a: &WorkerReply, b: &WorkerReply) {
    match (a, b) {
        (WorkerReply::Result(x), WorkerReply::Result(y)) => assert_same_result(x, y),
        (WorkerReply::Results(xs), WorkerReply::Results(ys)) => assert_same_results(xs, ys),
        (WorkerReply::Fenced(i, xs), WorkerReply::Fenced(j, ys)) => {
            assert_eq!(i, j, "the incarnation changed");
            assert_same_results(xs, ys);
        }
        (WorkerReply::Progress(x), WorkerReply::Progress(y)) => assert_eq!(x, y),
        (a, b) => panic!("reply changed shape: {b:?} -> {a:?}"),
    }
}

fn id(s: &str) -> JobId {
    JobId::new(s).expect("valid id")
}

fn sample_jobs() -> Vec<Job> {
    vec![
        Job::new("echo", "hello"),
        Job::new("resize", r#"{"w":64,"h":32}"#)
            .with_id(id("job-42"))
            .with_tag("gpu")
            .with_tag("kind:resize")
            .with_timeout(Duration::from_millis(1500))
            .with_max_attempts(5),
        Job::new("sha256", ""),
    ]
}

fn sample_results() -> Vec<JobResult> {
    vec![
        JobResult::success(id("job-1"), "ok", "node-b", 1, Duration::from_micros(1234)),
        JobResult::failure(
            id("job-2"),
            JobFailure::new(FailureCause::Handler, "boom"),
            "node-c",
            3,
            Duration::from_millis(20),
        ),
        JobResult::failure(
            id("job-3"),
            JobFailure::new(FailureCause::NoEligibleNode, "no node has tag gpu"),
            "",
            0,
            Duration::ZERO,
        ),
    ]
}

fn sample_replies() -> Vec<WorkerReply> {
    let results = sample_results();
    vec![
        WorkerReply::Result(results[0].clone()),
        WorkerReply::Fenced(7, results[1..].to_vec()),
        WorkerReply::Results(results),
        WorkerReply::Progress(ProgressUpdate {
            job_id: id("job-42"),
            attempt: 2,
            fraction: 0.25,
            note: "resized 1 of 4".into(),
        }),
    ]
}

/// Seeds for [`job_wire`]: sample jobs and results in both forms, a
/// minimal JSON job, job batches, worker replies in both formats and bare
/// batch sequences.
pub fn job_wire_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for job in sample_jobs() {
        out.push(job.to_json().into_bytes());
        out.push(job.to_bincode());
    }
    for res in sample_results() {
        out.push(res.to_json().into_bytes());
        out.push(res.to_bincode());
    }
    out.push(br#"{"kind":"echo","data":{"x":[1,2,3]}}"#.to_vec());
    out.push(protocol::encode_job_batch(&sample_jobs()).to_vec());
    for reply in sample_replies() {
        for format in FORMATS {
            out.push(protocol::encode_reply(&reply, format).to_vec());
        }
    }
    let mut seq = Vec::new();
    encode_job_seq(&sample_jobs()[..2], &mut seq);
    out.push(seq);
    let mut seq = Vec::new();
    encode_result_seq(&sample_results(), &mut seq);
    out.push(seq);
    out.extend(
        crate::limits::sample_messages()
            .iter()
            .map(|m| m.encode().to_vec()),
    );
    out
}

/// A frame's payload from an external client to `coordinator@<node>`
/// (`service::command::parse`, which tells commands from plain jobs and
/// reads `submit_batch` with its own one-pass visitor), checked against a
/// plain reading of the same JSON's top-level fields:
/// - not a command (`None`) exactly when the payload is not a JSON object
///   with one `cmd` field;
/// - a batch is accepted exactly when its object has one `cmd` (the string
///   `submit_batch`), one `jobs` (an array of at most
///   [`crate::MAX_BATCH_JOBS`]) and nothing else, and then holds each
///   entry's text as it is in the payload; a longer array is refused as
///   too many jobs;
/// - any other accepted command has a string `cmd` other than
///   `submit_batch`;
/// - a refusal's message is non-empty and at most
///   [`MAX_ERROR_TEXT`](cluster_router::MAX_ERROR_TEXT)
///   bytes (errors go back to the client: they must not echo its input
///   at length).
pub fn client_command(data: &[u8]) {
    use crate::service::command::{parse, Command};
    let parsed = parse(data);
    let fields = serde_json::from_slice::<Fields<'_>>(data).ok().map(|f| f.0);
    let named = |name: &str| -> Vec<&serde_json::value::RawValue> {
        fields
            .iter()
            .flatten()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| *value)
            .collect()
    };
    let cmds = named("cmd");
    let cmd: Option<String> = match cmds[..] {
        [one] => serde_json::from_str(one.get()).ok(),
        _ => None,
    };
    let jobs = named("jobs");
    let batch_array: Option<Vec<&serde_json::value::RawValue>> = match jobs[..] {
        [one] => serde_json::from_str(one.get()).ok(),
        _ => None,
    };
    let well_formed_batch = cmd.as_deref() == Some("submit_batch")
        && fields.as_ref().is_some_and(|f| f.len() == 2)
        && batch_array.is_some();
    match &parsed {
        None => assert!(
            fields.is_none() || cmds.len() != 1,
            "an object with one `cmd` field was taken for a job"
        ),
        Some(Ok(Command::SubmitBatch { jobs: kept })) => {
            assert!(well_formed_batch, "a malformed batch was accepted");
            let entries = batch_array.expect("checked");
            assert!(entries.len() <= crate::MAX_BATCH_JOBS);
            assert_eq!(kept.len(), entries.len());
            for (kept, entry) in kept.iter().zip(&entries) {
                assert_eq!(kept.get(), entry.get(), "a batch entry changed");
            }
        }
        Some(Ok(_)) => {
            assert_eq!(cmds.len(), 1, "a command without exactly one `cmd`");
            assert!(
                cmd.as_deref().is_some_and(|c| c != "submit_batch"),
                "a command whose `cmd` is not a string other than submit_batch"
            );
        }
        Some(Err(message)) => {
            assert!(!message.is_empty());
            assert_bounded(message);
            if well_formed_batch {
                let count = batch_array.as_ref().map_or(0, Vec::len);
                assert!(
                    count > crate::MAX_BATCH_JOBS && message.contains("too many jobs"),
                    "a well-formed batch of {count} jobs refused: {message}"
                );
            }
        }
    }
}

/// A JSON object's top-level fields in order, duplicates kept, values
/// as their text.
struct Fields<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Fields<'de>, M::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Seeds for [`client_command`]: every command the client edge takes
/// (`docs/wire.md`), a batch, malformed commands and a plain job.
pub fn client_command_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        r#"{"cmd":"stats"}"#,
        r#"{"cmd":"dead_letters"}"#,
        r#"{"cmd":"resubmit","id":"job-1"}"#,
        r#"{"cmd":"submit","job":{"kind":"echo","data":"x"},"progress":true}"#,
        r#"{"cmd":"submit","job":{"id":"a-1","kind":"echo"},"rerun":true}"#,
        r#"{"cmd":"get","ids":["a-1","a-2"],"local":true}"#,
        r#"{"cmd":"cancel","ids":["a-1"]}"#,
        r#"{"cmd":"attach","ids":["a-1","b-2"]}"#,
        r#"{"cmd":"discard","id":"a-1"}"#,
        r#"{"cmd":"recurring_add","recurring":{"name":"n","cron":"* * * * *","job":{"kind":"echo"}}}"#,
        r#"{"cmd":"recurring_remove","name":"n"}"#,
        r#"{"cmd":"recurring_list"}"#,
        r#"{"cmd":"submit_batch","jobs":[{"kind":"echo","data":"a"},{"id":"b-1","kind":"sleep","data":1}]}"#,
        r#"{"jobs":[{"kind":"echo"}],"cmd":"submit_batch"}"#,
        r#"{"cmd":"submit_batch","jobs":{"kind":"echo"}}"#,
        r#"{"cmd":"submit_batch","jobs":[],"extra":1}"#,
        r#"{"cmd":"submit_batch","jobs":[1],"jobs":[2]}"#,
        r#"{"c\u006dd":"stats"}"#,
        r#"{"cmd":"reboot"}"#,
        // Found by the fuzzer: a `jobs` the one pass cannot read.
        r#"{"cmd":"sub","jobs":1e999}"#,
        r#"{"kind":"echo","data":{"x":[1,2,3]},"tags":["gpu"]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let jobs = vec![r#"{"kind":"echo"}"#; crate::MAX_BATCH_JOBS + 1].join(",");
    out.push(format!(r#"{{"cmd":"submit_batch","jobs":[{jobs}]}}"#).into_bytes());
    out
}

#[cfg(test)]
mod client_command_tests {
    use super::*;

    #[test]
    fn the_seeds_hold_the_invariants() {
        for seed in client_command_seeds() {
            client_command(&seed);
        }
    }

    #[test]
    fn a_long_unknown_command_is_refused_briefly() {
        let name = "x".repeat(100_000);
        client_command(format!(r#"{{"cmd":"{name}"}}"#).as_bytes());
        job_wire(format!(r#"{{"kind":"echo","{name}":1}}"#).as_bytes());
        client_command(format!(r#"{{"cmd":"stats","{name}":1}}"#).as_bytes());
        client_command(format!(r#"{{"cmd":"resubmit","id":{{"{name}":1}}}}"#).as_bytes());
    }
}
