//! Wire forms of [`Job`] and [`JobResult`]: JSON for the edges, bincode
//! between nodes. The structs here are private; logic only sees the domain
//! types. The forms are documented in `docs/jobs.md`.

use std::time::Duration;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::failure::JobFailure;
use crate::job::{Job, JobId, JobResult};
use crate::strategy::StrategyKind;

/// The version byte that starts every bincode form of a result (and of
/// progress reports). Version 2 added a job's `priority` and `not_before`
/// (results are unchanged since).
pub(crate) const WIRE_VERSION: u8 = 2;

/// The version byte of a job's bincode form: 3 added `speculative`. A
/// single job of version 1 or 2 (e.g. in an older journal) still decodes.
pub(crate) const JOB_WIRE_VERSION: u8 = 3;

/// The job form before priorities and delays.
const JOB_V1: u8 = 1;

/// The job form before `speculative`.
const JOB_V2: u8 = 2;

/// The longest delay a JSON submission may ask for (`delay_ms`): one year.
pub(crate) const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

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

/// Appends `form`'s bincode encoding to `out`. The wire forms always
/// serialize; `expect` is the panic message were one not to.
fn encode_bin_into<T: Serialize + ?Sized>(form: &T, out: &mut Vec<u8>, expect: &str) {
    bincode_opts(u64::MAX)
        .serialize_into(out, form)
        .unwrap_or_else(|e| panic!("{expect}: {e:?}"));
}

/// Decodes a bincode form, refusing input that would decode to more than
/// [`MAX_BINCODE_BYTES`].
fn decode_bin<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    Ok(bincode_opts(MAX_BINCODE_BYTES).deserialize(bytes)?)
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
    #[serde(skip_serializing_if = "is_zero")]
    priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before_ms: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    speculative: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobJsonIn<'a> {
    /// Borrowed from the text unless it holds escapes: the id is copied
    /// once, into the [`JobId`].
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
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
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    not_before_ms: Option<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    speculative: bool,
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
    priority: i32,
    not_before_ms: Option<u64>,
    speculative: bool,
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
    priority: i32,
    not_before_ms: Option<u64>,
    speculative: bool,
}

/// A single job of version 1 (before priorities and delays).
#[derive(Deserialize)]
struct JobBinInV1 {
    _version: u8,
    id: String,
    kind: String,
    data: String,
    tags: Vec<String>,
    timeout_ms: u64,
    max_attempts: u32,
    attempt: u32,
    strategy: Option<StrategyKind>,
}

/// A single job of version 2 (before `speculative`): version 1's fields,
/// then `priority` and `not_before_ms` (bincode lays a tuple out as the
/// struct with the same fields in order).
type JobBinInV2 = (JobBinInV1, i32, Option<u64>);

impl JobBinInV1 {
    /// The current form of an older job: its fields, those it lacks at
    /// their defaults.
    fn upgrade(self, priority: i32, not_before_ms: Option<u64>) -> JobBinIn {
        JobBinIn {
            version: JOB_WIRE_VERSION,
            id: self.id,
            kind: self.kind,
            data: self.data,
            tags: self.tags,
            timeout_ms: self.timeout_ms,
            max_attempts: self.max_attempts,
            attempt: self.attempt,
            strategy: self.strategy,
            priority,
            not_before_ms,
            speculative: false,
        }
    }
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
            priority: self.priority,
            not_before_ms: self.not_before,
            speculative: self.speculative,
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
        let wire: JobJsonIn<'_> = serde_json::from_str(text)?;
        let data = match wire.data {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        check_job(wire.attempt)?;
        let not_before = match (wire.not_before_ms, wire.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(DecodeError::Field {
                    field: "delay_ms",
                    reason: "give delay_ms or not_before_ms, not both",
                })
            }
            (Some(at), None) => Some(at),
            (None, Some(delay)) if delay > MAX_DELAY_MS => {
                return Err(DecodeError::Field {
                    field: "delay_ms",
                    reason: "at most one year (31622400000 ms)",
                })
            }
            (None, Some(delay)) => Some(crate::job::unix_ms_now().saturating_add(delay)),
            (None, None) => None,
        };
        Ok(Job {
            id: JobId::from_wire(wire.id.as_deref().unwrap_or(""))?,
            kind: wire.kind,
            data,
            tags: wire.tags,
            timeout: Duration::from_millis(wire.timeout_ms),
            max_attempts: wire.max_attempts,
            attempt: wire.attempt,
            strategy: wire.strategy,
            priority: wire.priority,
            not_before,
            speculative: wire.speculative,
        })
    }

    /// The bincode form, for node-to-node traffic.
    pub fn to_bincode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bin_into(
            &self.bin_out(),
            &mut out,
            "a job always serializes to bincode",
        );
        out
    }

    /// Appends the bincode form, numbered `attempt`, to `out` (the
    /// journal writes a job that has made no attempt yet as attempt 1,
    /// without a copy of the job or a buffer of its own).
    pub(crate) fn append_bincode_as(&self, attempt: u32, out: &mut Vec<u8>) {
        let mut form = self.bin_out();
        form.attempt = attempt;
        encode_bin_into(&form, out, "a job always serializes to bincode");
    }

    /// Decodes the bincode form, refusing input that would decode to more
    /// than [`MAX_BINCODE_BYTES`].
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input, a version mismatch or a bad id.
    pub fn from_bincode(bytes: &[u8]) -> Result<Job, DecodeError> {
        match bytes.first() {
            Some(&JOB_V1) => job_from_bin(decode_bin::<JobBinInV1>(bytes)?.upgrade(0, None)),
            Some(&JOB_V2) => {
                let (v1, priority, not_before_ms): JobBinInV2 = decode_bin(bytes)?;
                job_from_bin(v1.upgrade(priority, not_before_ms))
            }
            _ => job_from_bin(decode_bin(bytes)?),
        }
    }

    fn bin_out(&self) -> JobBinOut<'_> {
        JobBinOut {
            version: JOB_WIRE_VERSION,
            id: self.id.as_str(),
            kind: &self.kind,
            data: &self.data,
            tags: &self.tags,
            timeout_ms: timeout_ms(self),
            max_attempts: self.max_attempts,
            attempt: self.attempt,
            strategy: self.strategy,
            priority: self.priority,
            not_before_ms: self.not_before,
            speculative: self.speculative,
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
    if wire.version != JOB_WIRE_VERSION {
        return Err(DecodeError::Version {
            found: wire.version,
            expected: JOB_WIRE_VERSION,
        });
    }
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
        priority: wire.priority,
        not_before: wire.not_before_ms,
        speculative: wire.speculative,
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

/// The JSON form of [`JobResult::to_json`], for types that embed a result
/// (the job record).
impl Serialize for JobResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ResultJsonOut {
            id: self.id.as_str(),
            result: self.result.as_deref(),
            error: self.error.as_ref(),
            worker_node: &self.worker_node,
            attempt: self.attempt,
            elapsed_ms: elapsed_us(self) as f64 / 1e3,
        }
        .serialize(serializer)
    }
}

/// Decodes the JSON form with the checks of [`JobResult::from_json`].
impl<'de> Deserialize<'de> for JobResult {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ResultJsonIn::deserialize(deserializer)?;
        result_from_json_wire(wire).map_err(serde::de::Error::custom)
    }
}

fn result_from_json_wire(wire: ResultJsonIn) -> Result<JobResult, DecodeError> {
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

    /// Appends [`to_json`](Self::to_json)'s text to `out`, without a
    /// `String` of its own (a batch answer gathers many results).
    pub(crate) fn append_json(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and these fields always serialize.
        let _ = serde_json::to_writer(out, self);
    }

    /// Decodes the JSON form.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed JSON, a bad id, a negative or non-finite
    /// `elapsed_ms`, or not exactly one of `result` / `error`.
    pub fn from_json(text: &str) -> Result<JobResult, DecodeError> {
        let wire: ResultJsonIn = serde_json::from_str(text)?;
        result_from_json_wire(wire)
    }

    /// The bincode form, for node-to-node traffic (elapsed in microseconds).
    pub fn to_bincode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bin_into(
            &self.bin_out(),
            &mut out,
            "a result always serializes to bincode",
        );
        out
    }

    /// Decodes the bincode form, bounded by [`MAX_BINCODE_BYTES`].
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input, a version mismatch, a bad id, or
    /// not exactly one of `result` / `error`.
    pub fn from_bincode(bytes: &[u8]) -> Result<JobResult, DecodeError> {
        result_from_bin(decode_bin(bytes)?)
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
    encode_bin_into(&forms, out, "jobs always serialize to bincode");
}

/// Decodes [`encode_job_seq`]'s form, bounded by [`MAX_BINCODE_BYTES`].
pub(crate) fn decode_job_seq(bytes: &[u8]) -> Result<Vec<Job>, DecodeError> {
    let forms: Vec<JobBinIn> = decode_bin(bytes)?;
    forms.into_iter().map(job_from_bin).collect()
}

/// Appends the bincode form of a sequence of results to `out`.
pub(crate) fn encode_result_seq<'a>(
    results: impl IntoIterator<Item = &'a JobResult>,
    out: &mut Vec<u8>,
) {
    let forms: Vec<ResultBinOut<'a>> = results.into_iter().map(JobResult::bin_out).collect();
    encode_bin_into(&forms, out, "results always serialize to bincode");
}

/// Decodes [`encode_result_seq`]'s form, bounded by [`MAX_BINCODE_BYTES`].
pub(crate) fn decode_result_seq(bytes: &[u8]) -> Result<Vec<JobResult>, DecodeError> {
    let forms: Vec<ResultBinIn> = decode_bin(bytes)?;
    forms.into_iter().map(result_from_bin).collect()
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
