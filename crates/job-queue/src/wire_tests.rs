//! Unit and property tests of the wire forms (inline module, kept in its own file).

use super::*;
use crate::failure::FailureCause;
use proptest::prelude::*;

fn arb_strategy() -> impl Strategy<Value = Option<StrategyKind>> {
    prop::option::of(prop::sample::select(StrategyKind::ALL.to_vec()))
}

fn arb_job() -> impl Strategy<Value = Job> {
    (
        prop::option::of("[a-z0-9-]{1,40}"),
        "[a-z][a-z0-9-]{0,20}",
        ".{0,200}",
        prop::collection::vec("[a-z:]{1,10}", 0..4),
        1u64..10_000_000,
        1u32..10,
        1u32..10,
        arb_strategy(),
        (any::<i32>(), prop::option::of(any::<u64>()), any::<bool>()),
    )
        .prop_map(
            |(
                id,
                kind,
                data,
                tags,
                ms,
                max,
                attempt,
                strategy,
                (priority, not_before, speculative),
            )| Job {
                id: id.map(|s| JobId::new(&s).unwrap()).unwrap_or_default(),
                kind,
                data,
                tags,
                timeout: Duration::from_millis(ms),
                max_attempts: max,
                attempt,
                strategy,
                priority,
                not_before,
                speculative,
            },
        )
}

fn arb_result() -> impl Strategy<Value = JobResult> {
    let failure = (
        prop::sample::select(FailureCause::ALL.to_vec()),
        ".{0,50}",
        any::<bool>(),
    )
        .prop_map(|(cause, message, retryable)| JobFailure {
            cause,
            message,
            retryable,
        });
    (
        "[a-z0-9-]{1,40}",
        prop::result::maybe_ok(".{0,100}", failure),
        "[a-z0-9-]{0,20}",
        0u32..10,
        0u64..10_000_000_000,
    )
        .prop_map(|(id, outcome, node, attempt, us)| {
            let id = JobId::new(&id).unwrap();
            let elapsed = Duration::from_micros(us);
            match outcome {
                Ok(out) => JobResult::success(id, out, node, attempt, elapsed),
                Err(f) => JobResult::failure(id, f, node, attempt, elapsed),
            }
        })
}

proptest! {
    #[test]
    fn job_json_round_trip(job in arb_job()) {
        prop_assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
    }

    #[test]
    fn job_bincode_round_trip(job in arb_job()) {
        prop_assert_eq!(Job::from_bincode(&job.to_bincode()).unwrap(), job);
    }

    #[test]
    fn result_json_round_trip(result in arb_result()) {
        prop_assert_eq!(JobResult::from_json(&result.to_json()).unwrap(), result);
    }

    #[test]
    fn result_bincode_round_trip(result in arb_result()) {
        prop_assert_eq!(JobResult::from_bincode(&result.to_bincode()).unwrap(), result);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Job::from_bincode(&bytes);
        let _ = JobResult::from_bincode(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Job::from_json(&text);
        let _ = JobResult::from_json(&text);
    }
}

/// The bincode form of arbitrary field values (valid or not).
fn arb_job_bincode() -> impl Strategy<Value = Vec<u8>> {
    (
        "[ -~]{0,12}",
        ".{0,12}",
        ".{0,24}",
        prop::collection::vec(".{0,6}", 0..3),
        any::<u64>(),
        any::<u32>(),
        prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
        arb_strategy(),
    )
        .prop_map(
            |(id, kind, data, tags, timeout_ms, max_attempts, attempt, strategy)| {
                let out = JobBinOut {
                    version: JOB_WIRE_VERSION,
                    id: &id,
                    kind: &kind,
                    data: &data,
                    tags: &tags,
                    timeout_ms,
                    max_attempts,
                    attempt,
                    strategy,
                    priority: 0,
                    not_before_ms: None,
                    speculative: false,
                };
                bincode_opts(u64::MAX).serialize(&out).unwrap()
            },
        )
}

/// The JSON form of arbitrary field values (valid or not).
fn arb_job_json() -> impl Strategy<Value = String> {
    (
        "[ -~]{0,12}",
        ".{0,12}",
        ".{0,24}",
        any::<u64>(),
        any::<u32>(),
        prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
    )
        .prop_map(|(id, kind, data, timeout_ms, max_attempts, attempt)| {
            serde_json::json!({
                "id": id, "kind": kind, "data": data, "timeout_ms": timeout_ms,
                "max_attempts": max_attempts, "attempt": attempt,
            })
            .to_string()
        })
}

fn arb_outcome() -> impl Strategy<Value = (Option<String>, Option<JobFailure>)> {
    let failure = (
        prop::sample::select(FailureCause::ALL.to_vec()),
        ".{0,12}",
        any::<bool>(),
    )
        .prop_map(|(cause, message, retryable)| JobFailure {
            cause,
            message,
            retryable,
        });
    (prop::option::of(".{0,12}"), prop::option::of(failure))
}

fn arb_elapsed_us() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..=MAX_ELAPSED_US,
        Just(MAX_ELAPSED_US),
        Just(MAX_ELAPSED_US + 1),
        Just(u64::MAX),
    ]
}

fn arb_result_bincode() -> impl Strategy<Value = Vec<u8>> {
    (
        "[ -~]{0,12}",
        arb_outcome(),
        ".{0,8}",
        any::<u32>(),
        arb_elapsed_us(),
    )
        .prop_map(|(id, (result, error), node, attempt, elapsed_us)| {
            let out = ResultBinOut {
                version: WIRE_VERSION,
                id: &id,
                result: result.as_deref(),
                error: error.as_ref(),
                worker_node: &node,
                attempt,
                elapsed_us,
            };
            bincode_opts(u64::MAX).serialize(&out).unwrap()
        })
}

fn arb_result_json() -> impl Strategy<Value = String> {
    let elapsed_ms = prop_oneof![
        any::<f64>(),
        0.0..2e12f64,
        Just(1e12f64),
        Just(1e12f64 + 1.0),
        arb_elapsed_us().prop_map(|us| us as f64 / 1e3),
    ];
    (
        "[ -~]{0,12}",
        arb_outcome(),
        ".{0,8}",
        any::<u32>(),
        elapsed_ms,
    )
        .prop_map(|(id, (result, error), node, attempt, elapsed_ms)| {
            serde_json::json!({
                "id": id, "result": result, "error": error, "worker_node": node,
                "attempt": attempt, "elapsed_ms": elapsed_ms,
            })
            .to_string()
        })
}

/// Whatever a decoder accepted re-encodes in both forms, and both
/// decode back to the same value.
fn job_reencodes(job: &Job) -> Result<(), TestCaseError> {
    prop_assert_eq!(&Job::from_json(&job.to_json()).unwrap(), job);
    prop_assert_eq!(&Job::from_bincode(&job.to_bincode()).unwrap(), job);
    Ok(())
}

fn result_reencodes(result: &JobResult) -> Result<(), TestCaseError> {
    prop_assert_eq!(&JobResult::from_json(&result.to_json()).unwrap(), result);
    prop_assert_eq!(
        &JobResult::from_bincode(&result.to_bincode()).unwrap(),
        result
    );
    Ok(())
}

proptest! {
    #[test]
    fn accepted_bincode_jobs_reencode_in_both_forms(bytes in arb_job_bincode()) {
        if let Ok(job) = Job::from_bincode(&bytes) {
            job_reencodes(&job)?;
        }
    }

    #[test]
    fn accepted_json_jobs_reencode_in_both_forms(text in arb_job_json()) {
        if let Ok(job) = Job::from_json(&text) {
            job_reencodes(&job)?;
        }
    }

    #[test]
    fn accepted_bincode_results_reencode_in_both_forms(bytes in arb_result_bincode()) {
        if let Ok(result) = JobResult::from_bincode(&bytes) {
            result_reencodes(&result)?;
        }
    }

    #[test]
    fn accepted_json_results_reencode_in_both_forms(text in arb_result_json()) {
        if let Ok(result) = JobResult::from_json(&text) {
            result_reencodes(&result)?;
        }
    }
}

#[test]
fn both_forms_refuse_the_same_edge_values() {
    let mut job = Job::new("k", "d");
    job.attempt = 0;
    assert!(Job::from_bincode(&job.to_bincode()).is_err());
    assert!(Job::from_json(&job.to_json()).is_err());
    let id = JobId::new("r-1").unwrap();
    let out = ResultBinOut {
        version: WIRE_VERSION,
        id: id.as_str(),
        result: Some("x"),
        error: None,
        worker_node: "n",
        attempt: 1,
        elapsed_us: u64::MAX,
    };
    let bytes = bincode_opts(u64::MAX).serialize(&out).unwrap();
    assert!(JobResult::from_bincode(&bytes).is_err());
    let json = r#"{"id":"r-1","result":"x","worker_node":"n","attempt":1,"elapsed_ms":1.8446744073709552e16}"#;
    assert!(JobResult::from_json(json).is_err());
    // A local result beyond the wire's limit is clamped by both encoders.
    let huge = JobResult::success(id, "x", "n", 1, Duration::MAX);
    let from_json = JobResult::from_json(&huge.to_json()).unwrap();
    let from_bin = JobResult::from_bincode(&huge.to_bincode()).unwrap();
    assert_eq!(from_json, from_bin);
    assert_eq!(from_json.elapsed, Duration::from_micros(MAX_ELAPSED_US));
}

#[test]
fn seed_style_json_gets_defaults() {
    let job = Job::from_json(r#"{"id":"j1","kind":"echo","data":{"x":[1,2]}}"#).unwrap();
    assert_eq!(job.id.as_str(), "j1");
    assert_eq!(job.data, r#"{"x":[1,2]}"#);
    assert_eq!(job.timeout, Job::DEFAULT_TIMEOUT);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.attempt, 1);
    let job = Job::from_json(r#"{"kind":"echo","data":"plain","strategy":"least-cpu"}"#).unwrap();
    assert!(job.id.is_unassigned());
    assert_eq!(job.data, "plain");
    assert_eq!(job.strategy, Some(StrategyKind::LeastCpu));
}

#[test]
fn malformed_forms_are_refused() {
    assert!(
        Job::from_json(r#"{"data":"x"}"#).is_err(),
        "kind is required"
    );
    assert!(Job::from_json(r#"{"kind":"k","bogus":1}"#).is_err());
    assert!(Job::from_json(r#"{"kind":"k","attempt":0}"#).is_err());
    assert!(Job::from_json(r#"{"kind":"k","id":"a b"}"#).is_err());
    let both = r#"{"id":"j","result":"x","error":{"cause":"panic","message":"m","retryable":true},"worker_node":"n"}"#;
    assert!(JobResult::from_json(both).is_err());
    assert!(JobResult::from_json(r#"{"id":"j","worker_node":"n"}"#).is_err());
    assert!(JobResult::from_json(r#"{"id":"j","result":"x","elapsed_ms":-1}"#).is_err());
    let mut bytes = Job::new("k", "d").to_bincode();
    bytes[0] = 9;
    assert!(matches!(
        Job::from_bincode(&bytes),
        Err(DecodeError::Version {
            found: 9,
            expected: 3
        })
    ));
}

#[test]
fn bincode_length_is_bounded() {
    // A length prefix claiming 1 TiB of data must fail fast, not allocate.
    let mut bytes = vec![JOB_WIRE_VERSION, 0];
    bytes.push(0xFD); // varint marker for a u64 length
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(Job::from_bincode(&bytes).is_err());
}

#[test]
fn documented_result_json() {
    let ok = JobResult::success(
        JobId::new("n-1").unwrap(),
        "done",
        "node-b",
        2,
        Duration::from_micros(1500),
    );
    assert_eq!(
        ok.to_json(),
        r#"{"id":"n-1","result":"done","worker_node":"node-b","attempt":2,"elapsed_ms":1.5}"#
    );
    let failed = JobResult::failure(
        JobId::new("n-2").unwrap(),
        JobFailure::new(FailureCause::Timeout, "no result within 30000 ms"),
        "node-c",
        3,
        Duration::ZERO,
    );
    assert_eq!(
        failed.to_json(),
        r#"{"id":"n-2","result":null,"error":{"cause":"timeout","message":"no result within 30000 ms","retryable":true},"worker_node":"node-c","attempt":3,"elapsed_ms":0.0}"#
    );
}

#[test]
fn a_version_1_job_still_decodes_and_json_takes_priority_and_delays() {
    #[derive(Serialize)]
    struct V1<'a> {
        version: u8,
        id: &'a str,
        kind: &'a str,
        data: &'a str,
        tags: &'a [String],
        timeout_ms: u64,
        max_attempts: u32,
        attempt: u32,
        strategy: Option<StrategyKind>,
    }
    let old = V1 {
        version: 1,
        id: "old-1",
        kind: "echo",
        data: "hi",
        tags: &[],
        timeout_ms: 5000,
        max_attempts: 3,
        attempt: 1,
        strategy: None,
    };
    let bytes = bincode_opts(u64::MAX).serialize(&old).unwrap();
    let job = Job::from_bincode(&bytes).unwrap();
    assert_eq!(
        (job.id.as_str(), job.priority, job.not_before),
        ("old-1", 0, None)
    );
    let job = Job::new("echo", "")
        .with_priority(-4)
        .with_not_before(1_700_000_000_000);
    assert_eq!(Job::from_bincode(&job.to_bincode()).unwrap(), job);
    let json = job.to_json();
    assert!(
        json.contains(r#""priority":-4,"not_before_ms":1700000000000"#),
        "{json}"
    );
    assert_eq!(Job::from_json(&json).unwrap(), job);
    let before = crate::job::unix_ms_now();
    let delayed = Job::from_json(r#"{"kind":"echo","delay_ms":5000}"#).unwrap();
    let at = delayed.not_before.unwrap();
    assert!((before + 5000..=crate::job::unix_ms_now() + 5000).contains(&at));
    assert!(Job::from_json(r#"{"kind":"echo","delay_ms":1,"not_before_ms":2}"#).is_err());
    assert!(Job::from_json(r#"{"kind":"echo","delay_ms":99999999999999}"#).is_err());
}

#[test]
fn a_version_2_job_still_decodes_and_speculative_round_trips() {
    #[derive(Serialize)]
    struct V2<'a> {
        version: u8,
        id: &'a str,
        kind: &'a str,
        data: &'a str,
        tags: &'a [String],
        timeout_ms: u64,
        max_attempts: u32,
        attempt: u32,
        strategy: Option<StrategyKind>,
        priority: i32,
        not_before_ms: Option<u64>,
    }
    let old = V2 {
        version: 2,
        id: "old-2",
        kind: "echo",
        data: "hi",
        tags: &[],
        timeout_ms: 5000,
        max_attempts: 3,
        attempt: 1,
        strategy: None,
        priority: 7,
        not_before_ms: Some(9),
    };
    let bytes = bincode_opts(u64::MAX).serialize(&old).unwrap();
    let job = Job::from_bincode(&bytes).unwrap();
    assert_eq!(
        (
            job.id.as_str(),
            job.priority,
            job.not_before,
            job.speculative
        ),
        ("old-2", 7, Some(9), false)
    );
    let job = Job::new("echo", "").with_speculative(true);
    assert_eq!(Job::from_bincode(&job.to_bincode()).unwrap(), job);
    let json = job.to_json();
    assert!(json.contains(r#""speculative":true"#), "{json}");
    assert_eq!(Job::from_json(&json).unwrap(), job);
    assert!(!Job::new("echo", "").to_json().contains("speculative"));
    // A batch of version-2 jobs (an older node) is refused, naming both.
    let err = decode_job_seq(&bincode_opts(u64::MAX).serialize(&vec![old]).unwrap());
    assert!(err.is_err());
}

#[test]
fn a_job_id_with_escapes_decodes_like_a_plain_one() {
    let plain = Job::from_json(r#"{"id":"a-1","kind":"echo"}"#).expect("plain");
    let escaped = Job::from_json(r#"{"id":"a\u002d1","kind":"echo"}"#).expect("escaped");
    assert_eq!(plain.id, escaped.id);
    assert_eq!(escaped.id.as_str(), "a-1");
    assert!(Job::from_json(r#"{"id":"a\u0020b","kind":"echo"}"#).is_err());
}

#[test]
fn appended_result_json_is_to_json() {
    let ok = JobResult::success(
        JobId::new("r-1").expect("id"),
        "a \"quoted\" line\n",
        "node-a",
        2,
        Duration::from_micros(1_250),
    );
    let mut out = b"[".to_vec();
    ok.append_json(&mut out);
    assert_eq!(&out[1..], ok.to_json().as_bytes());
    assert_eq!(JobResult::from_json(&ok.to_json()).expect("round trip"), ok);
}
