//! Wire forms of [`Job`] and [`JobResult`]: JSON for the edges, bincode
//! between nodes. The structs here are private; logic only sees the domain
//! types. The forms are documented in `docs/jobs.md`.

use std::time::Duration;

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::failure::JobFailure;
use crate::job::{Job, JobId, JobResult};
use crate::strategy::StrategyKind;

/// The version byte that starts every bincode form.
pub const WIRE_VERSION: u8 = 1;

/// The default bound on a bincode form's decoded size: 16 MiB.
pub const MAX_BINCODE_BYTES: u64 = 16 * 1024 * 1024;

/// The longest `elapsed` a result may carry on the wire: 10^15 µs (about
/// 31 years). Both forms refuse more, and both encoders clamp to it, so that
/// the fractional milliseconds of the JSON form stay exact to the
/// microsecond and every decodable result re-encodes in both forms.
pub(crate) const MAX_ELAPSED_US: u64 = 1_000_000_000_000_000;

fn bincode_opts(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit)
}

fn default_timeout_ms() -> u64 {
    Job::DEFAULT_TIMEOUT.as_millis() as u64
}

fn default_max_attempts() -> u32 {
    Job::DEFAULT_MAX_ATTEMPTS
}

fn one() -> u32 {
    1
}

// ---------- Job ----------

#[derive(Serialize)]
struct JobJsonOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    kind: &'a str,
    data: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    timeout_ms: u64,
    max_attempts: u32,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    strategy: Option<StrategyKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobJsonIn {
    #[serde(default)]
    id: Option<String>,
    kind: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "one")]
    attempt: u32,
    #[serde(default)]
    strategy: Option<StrategyKind>,
}

/// Bincode form; encoded from borrowed fields, decoded into owned ones.
#[derive(Serialize)]
struct JobBinOut<'a> {
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

#[derive(Deserialize)]
struct JobBinIn {
    version: u8,
    id: String,
    kind: String,
    data: String,
    tags: Vec<String>,
    timeout_ms: u64,
    max_attempts: u32,
    attempt: u32,
    strategy: Option<StrategyKind>,
}

fn timeout_ms(job: &Job) -> u64 {
    u64::try_from(job.timeout.as_millis()).unwrap_or(u64::MAX)
}

fn check_version(found: u8) -> Result<(), DecodeError> {
    if found == WIRE_VERSION {
        Ok(())
    } else {
        Err(DecodeError::Version {
            found,
            expected: WIRE_VERSION,
        })
    }
}

impl Job {
    /// The JSON form (see `docs/jobs.md`).
    pub fn to_json(&self) -> String {
        let out = JobJsonOut {
            id: self.id.as_str(),
            kind: &self.kind,
            data: &self.data,
            tags: &self.tags,
            timeout_ms: timeout_ms(self),
            max_attempts: self.max_attempts,
            attempt: self.attempt,
            strategy: self.strategy,
        };
        serde_json::to_string(&out).expect("a job always serializes to JSON")
    }

    /// Decodes the JSON form. Only `kind` is required; `data` may be a JSON
    /// string (taken as is) or any other JSON value (kept as its JSON text).
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed JSON, unknown fields, a bad id, or an
    /// attempt number of 0.
    pub fn from_json(text: &str) -> Result<Job, DecodeError> {
        let wire: JobJsonIn = serde_json::from_str(text)?;
        let data = match wire.data {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        check_job(wire.attempt)?;
        Ok(Job {
            id: JobId::from_wire(wire.id.as_deref().unwrap_or(""))?,
            kind: wire.kind,
            data,
            tags: wire.tags,
            timeout: Duration::from_millis(wire.timeout_ms),
            max_attempts: wire.max_attempts,
            attempt: wire.attempt,
            strategy: wire.strategy,
        })
    }

    /// The bincode form, for node-to-node traffic.
    pub fn to_bincode(&self) -> Vec<u8> {
        let out = self.bin_out();
        bincode_opts(u64::MAX)
            .serialize(&out)
            .expect("a job always serializes to bincode")
    }

    /// Decodes the bincode form, refusing input that would decode to more
    /// than [`MAX_BINCODE_BYTES`].
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input, a version mismatch or a bad id.
    pub fn from_bincode(bytes: &[u8]) -> Result<Job, DecodeError> {
        let wire: JobBinIn = bincode_opts(MAX_BINCODE_BYTES).deserialize(bytes)?;
        job_from_bin(wire)
    }

    fn bin_out(&self) -> JobBinOut<'_> {
        JobBinOut {
            version: WIRE_VERSION,
            id: self.id.as_str(),
            kind: &self.kind,
            data: &self.data,
            tags: &self.tags,
            timeout_ms: timeout_ms(self),
            max_attempts: self.max_attempts,
            attempt: self.attempt,
            strategy: self.strategy,
        }
    }
}

/// The checks both job decoders apply (beyond the id's own), so that the
/// two forms accept exactly the same jobs.
fn check_job(attempt: u32) -> Result<(), DecodeError> {
    if attempt == 0 {
        return Err(DecodeError::Field {
            field: "attempt",
            reason: "attempts are numbered from 1",
        });
    }
    Ok(())
}

fn job_from_bin(wire: JobBinIn) -> Result<Job, DecodeError> {
    check_version(wire.version)?;
    check_job(wire.attempt)?;
    Ok(Job {
        id: JobId::from_wire(&wire.id)?,
        kind: wire.kind,
        data: wire.data,
        tags: wire.tags,
        timeout: Duration::from_millis(wire.timeout_ms),
        max_attempts: wire.max_attempts,
        attempt: wire.attempt,
        strategy: wire.strategy,
    })
}

// ---------- JobResult ----------

#[derive(Serialize)]
struct ResultJsonOut<'a> {
    id: &'a str,
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a JobFailure>,
    worker_node: &'a str,
    attempt: u32,
    elapsed_ms: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultJsonIn {
    id: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    error: Option<JobFailure>,
    #[serde(default)]
    worker_node: String,
    #[serde(default = "one")]
    attempt: u32,
    #[serde(default)]
    elapsed_ms: f64,
}

#[derive(Serialize)]
struct ResultBinOut<'a> {
    version: u8,
    id: &'a str,
    result: Option<&'a str>,
    error: Option<&'a JobFailure>,
    worker_node: &'a str,
    attempt: u32,
    elapsed_us: u64,
}

#[derive(Deserialize)]
struct ResultBinIn {
    version: u8,
    id: String,
    result: Option<String>,
    error: Option<JobFailure>,
    worker_node: String,
    attempt: u32,
    elapsed_us: u64,
}

/// The checks both result decoders apply (beyond the id's own), so that
/// the two forms accept exactly the same results.
fn check_result(
    result: &Option<String>,
    error: &Option<JobFailure>,
    elapsed_us: u64,
) -> Result<(), DecodeError> {
    if elapsed_us > MAX_ELAPSED_US {
        return Err(DecodeError::Field {
            field: "elapsed",
            reason: "must be at most 10^15 microseconds",
        });
    }
    if result.is_some() && error.is_some() {
        return Err(DecodeError::Field {
            field: "error",
            reason: "a result cannot carry both `result` and `error`",
        });
    }
    if result.is_none() && error.is_none() {
        return Err(DecodeError::Field {
            field: "result",
            reason: "a result needs `result` or `error`",
        });
    }
    Ok(())
}

fn result_id(id: &str) -> Result<JobId, DecodeError> {
    Ok(JobId::new(id)?)
}

impl JobResult {
    /// The JSON form (see `docs/jobs.md`). `result` is always present (null
    /// on failure); `error` only on failure; `elapsed_ms` is fractional.
    pub fn to_json(&self) -> String {
        let out = ResultJsonOut {
            id: self.id.as_str(),
            result: self.result.as_deref(),
            error: self.error.as_ref(),
            worker_node: &self.worker_node,
            attempt: self.attempt,
            elapsed_ms: elapsed_us(self) as f64 / 1e3,
        };
        serde_json::to_string(&out).expect("a result always serializes to JSON")
    }

    /// Decodes the JSON form.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed JSON, a bad id, a negative or non-finite
    /// `elapsed_ms`, or not exactly one of `result` / `error`.
    pub fn from_json(text: &str) -> Result<JobResult, DecodeError> {
        let wire: ResultJsonIn = serde_json::from_str(text)?;
        if !wire.elapsed_ms.is_finite() || wire.elapsed_ms < 0.0 {
            return Err(DecodeError::Field {
                field: "elapsed_ms",
                reason: "must be a non-negative number of milliseconds",
            });
        }
        // Saturates for huge values, which `check_result` then refuses.
        let micros = (wire.elapsed_ms * 1e3).round() as u64;
        check_result(&wire.result, &wire.error, micros)?;
        Ok(JobResult {
            id: result_id(&wire.id)?,
            result: wire.result,
            error: wire.error,
            worker_node: wire.worker_node,
            attempt: wire.attempt,
            elapsed: Duration::from_micros(micros),
        })
    }

    /// The bincode form, for node-to-node traffic (elapsed in microseconds).
    pub fn to_bincode(&self) -> Vec<u8> {
        let out = self.bin_out();
        bincode_opts(u64::MAX)
            .serialize(&out)
            .expect("a result always serializes to bincode")
    }

    /// Decodes the bincode form, bounded by [`MAX_BINCODE_BYTES`].
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input, a version mismatch, a bad id, or
    /// not exactly one of `result` / `error`.
    pub fn from_bincode(bytes: &[u8]) -> Result<JobResult, DecodeError> {
        let wire: ResultBinIn = bincode_opts(MAX_BINCODE_BYTES).deserialize(bytes)?;
        result_from_bin(wire)
    }

    fn bin_out(&self) -> ResultBinOut<'_> {
        ResultBinOut {
            version: WIRE_VERSION,
            id: self.id.as_str(),
            result: self.result.as_deref(),
            error: self.error.as_ref(),
            worker_node: &self.worker_node,
            attempt: self.attempt,
            elapsed_us: elapsed_us(self),
        }
    }
}

/// The result's elapsed time in whole microseconds, clamped to
/// [`MAX_ELAPSED_US`].
fn elapsed_us(result: &JobResult) -> u64 {
    u64::try_from(result.elapsed.as_micros()).map_or(MAX_ELAPSED_US, |us| us.min(MAX_ELAPSED_US))
}

fn result_from_bin(wire: ResultBinIn) -> Result<JobResult, DecodeError> {
    check_version(wire.version)?;
    check_result(&wire.result, &wire.error, wire.elapsed_us)?;
    Ok(JobResult {
        id: result_id(&wire.id)?,
        result: wire.result,
        error: wire.error,
        worker_node: wire.worker_node,
        attempt: wire.attempt,
        elapsed: Duration::from_micros(wire.elapsed_us),
    })
}

// ---------- batches (node to node) ----------

/// Appends the bincode form of a sequence of jobs (length, then each job's
/// form) to `out`.
pub(crate) fn encode_job_seq<'a>(jobs: impl IntoIterator<Item = &'a Job>, out: &mut Vec<u8>) {
    let forms: Vec<JobBinOut<'a>> = jobs.into_iter().map(Job::bin_out).collect();
    bincode_opts(u64::MAX)
        .serialize_into(out, &forms)
        .expect("jobs always serialize to bincode");
}

/// Decodes [`encode_job_seq`]'s form, bounded by [`MAX_BINCODE_BYTES`].
pub(crate) fn decode_job_seq(bytes: &[u8]) -> Result<Vec<Job>, DecodeError> {
    let forms: Vec<JobBinIn> = bincode_opts(MAX_BINCODE_BYTES).deserialize(bytes)?;
    forms.into_iter().map(job_from_bin).collect()
}

/// Appends the bincode form of a sequence of results to `out`.
pub(crate) fn encode_result_seq<'a>(
    results: impl IntoIterator<Item = &'a JobResult>,
    out: &mut Vec<u8>,
) {
    let forms: Vec<ResultBinOut<'a>> = results.into_iter().map(JobResult::bin_out).collect();
    bincode_opts(u64::MAX)
        .serialize_into(out, &forms)
        .expect("results always serialize to bincode");
}

/// Decodes [`encode_result_seq`]'s form, bounded by [`MAX_BINCODE_BYTES`].
pub(crate) fn decode_result_seq(bytes: &[u8]) -> Result<Vec<JobResult>, DecodeError> {
    let forms: Vec<ResultBinIn> = bincode_opts(MAX_BINCODE_BYTES).deserialize(bytes)?;
    forms.into_iter().map(result_from_bin).collect()
}

#[cfg(test)]
mod tests {
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
        )
            .prop_map(|(id, kind, data, tags, ms, max, attempt, strategy)| Job {
                id: id.map(|s| JobId::new(&s).unwrap()).unwrap_or_default(),
                kind,
                data,
                tags,
                timeout: Duration::from_millis(ms),
                max_attempts: max,
                attempt,
                strategy,
            })
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
            .prop_map(|(id, kind, data, tags, timeout_ms, max_attempts, attempt, strategy)| {
                let out = JobBinOut {
                    version: WIRE_VERSION,
                    id: &id,
                    kind: &kind,
                    data: &data,
                    tags: &tags,
                    timeout_ms,
                    max_attempts,
                    attempt,
                    strategy,
                };
                bincode_opts(u64::MAX).serialize(&out).unwrap()
            })
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
        let failure = (prop::sample::select(FailureCause::ALL.to_vec()), ".{0,12}", any::<bool>())
            .prop_map(|(cause, message, retryable)| JobFailure { cause, message, retryable });
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
        ("[ -~]{0,12}", arb_outcome(), ".{0,8}", any::<u32>(), arb_elapsed_us()).prop_map(
            |(id, (result, error), node, attempt, elapsed_us)| {
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
            },
        )
    }

    fn arb_result_json() -> impl Strategy<Value = String> {
        let elapsed_ms = prop_oneof![
            any::<f64>(),
            0.0..2e12f64,
            Just(1e12f64),
            Just(1e12f64 + 1.0),
            arb_elapsed_us().prop_map(|us| us as f64 / 1e3),
        ];
        ("[ -~]{0,12}", arb_outcome(), ".{0,8}", any::<u32>(), elapsed_ms).prop_map(
            |(id, (result, error), node, attempt, elapsed_ms)| {
                serde_json::json!({
                    "id": id, "result": result, "error": error, "worker_node": node,
                    "attempt": attempt, "elapsed_ms": elapsed_ms,
                })
                .to_string()
            },
        )
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
        prop_assert_eq!(&JobResult::from_bincode(&result.to_bincode()).unwrap(), result);
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
        let job =
            Job::from_json(r#"{"kind":"echo","data":"plain","strategy":"least-cpu"}"#).unwrap();
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
                expected: 1
            })
        ));
    }

    #[test]
    fn bincode_length_is_bounded() {
        // A length prefix claiming 1 TiB of data must fail fast, not allocate.
        let mut bytes = vec![WIRE_VERSION, 0];
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
}
