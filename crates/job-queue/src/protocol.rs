//! The worker protocol carried in router envelopes.
//!
//! - coordinator -> `worker@<node>`: the [`Job`] (bincode for
//!   [`PayloadFormat::Binary`], JSON for [`PayloadFormat::Json`]).
//! - `worker@<node>` -> requester, as a reply (`correlation_id` = the
//!   dispatch's id), in the request's format: a [`JobResult`] or a progress
//!   report. Binary replies start with a tag byte (`0` result, `1`
//!   progress, `2` a batch of results) followed by the bincode form; JSON
//!   replies are the `JobResult` JSON, or
//!   `{"progress":{"id","attempt","fraction","note"}}`.
//! - Between nodes the coordinator sends many jobs per envelope: a binary
//!   payload starting with [`JOB_BATCH`] followed by the bincode sequence of
//!   jobs; the pool answers with result batches (tag `2`) as results come.

use bincode::Options;
use bytes::Bytes;
use cluster_router::PayloadFormat;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::wire::{
    decode_job_seq, decode_result_seq, encode_job_seq, encode_result_seq, MAX_BINCODE_BYTES,
    WIRE_VERSION,
};

const TAG_RESULT: u8 = 0;
const TAG_PROGRESS: u8 = 1;
const TAG_RESULTS: u8 = 2;
/// A batch of results for one coordinator incarnation: the tag, the
/// incarnation (`u64` LE), then the bincode sequence of results.
const TAG_RESULTS_FENCED: u8 = 3;

/// First byte of a binary batch of jobs (a single job starts with its
/// version byte, never this).
pub(crate) const JOB_BATCH: u8 = 0xB0;

/// First byte of a fenced batch of jobs: the tag, the coordinator's
/// incarnation (`u64` LE), then the bincode sequence of jobs.
pub(crate) const JOB_BATCH_FENCED: u8 = 0xB2;
/// First byte of a cancellation: the tag, the coordinator's incarnation
/// (`u64` LE), then the bincode sequence of `(id, attempt)`.
pub(crate) const JOB_CANCEL: u8 = 0xB1;
/// Most ids in one cancellation message.
pub(crate) const MAX_CANCEL_IDS: usize = 4096;

/// A reply from a worker pool.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WorkerReply {
    Result(JobResult),
    Results(Vec<JobResult>),
    /// Results of jobs dispatched by one incarnation of a coordinator.
    Fenced(u64, Vec<JobResult>),
    Progress(ProgressUpdate),
}

/// What a coordinator sends to `worker@<node>`.
#[derive(Debug)]
pub(crate) enum WorkerRequest {
    /// Jobs to run, with the sender's incarnation if fenced.
    Jobs {
        jobs: Vec<Job>,
        incarnation: Option<u64>,
        batched: bool,
    },
    /// Stop these attempts (queued or running).
    Cancel {
        incarnation: u64,
        attempts: Vec<(JobId, u32)>,
    },
}

/// Encodes a fenced batch of jobs.
pub(crate) fn encode_fenced_batch<'a>(
    incarnation: u64,
    jobs: impl IntoIterator<Item = &'a Job>,
) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.push(JOB_BATCH_FENCED);
    out.extend_from_slice(&incarnation.to_le_bytes());
    encode_job_seq(jobs, &mut out);
    Bytes::from(out)
}

/// Encodes a cancellation of `attempts` (at most [`MAX_CANCEL_IDS`] are
/// sent; callers split longer lists).
pub(crate) fn encode_cancel(incarnation: u64, attempts: &[(JobId, u32)]) -> Bytes {
    let wire: Vec<(&str, u32)> = attempts
        .iter()
        .take(MAX_CANCEL_IDS)
        .map(|(id, a)| (id.as_str(), *a))
        .collect();
    let mut out = vec![JOB_CANCEL];
    out.extend_from_slice(&incarnation.to_le_bytes());
    let body = bincode::DefaultOptions::new()
        .serialize(&wire)
        .expect("ids serialize");
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// Decodes what a coordinator sent to a worker pool.
pub(crate) fn decode_request(
    payload: &[u8],
    format: PayloadFormat,
) -> Result<WorkerRequest, DecodeError> {
    let fenced = |body: &[u8]| -> Result<(u64, usize), DecodeError> {
        let (inc, _) = body.split_first_chunk::<8>().ok_or(DecodeError::Field {
            field: "incarnation",
            reason: "truncated",
        })?;
        Ok((u64::from_le_bytes(*inc), 8))
    };
    match (format, payload.split_first()) {
        (PayloadFormat::Binary, Some((&JOB_BATCH_FENCED, body))) => {
            let (incarnation, at) = fenced(body)?;
            Ok(WorkerRequest::Jobs {
                jobs: decode_job_seq(&body[at..])?,
                incarnation: Some(incarnation),
                batched: true,
            })
        }
        (PayloadFormat::Binary, Some((&JOB_CANCEL, body))) => {
            let (incarnation, at) = fenced(body)?;
            let wire: Vec<(String, u32)> = bincode::DefaultOptions::new()
                .with_limit(MAX_BINCODE_BYTES)
                .deserialize(&body[at..])?;
            if wire.len() > MAX_CANCEL_IDS {
                return Err(DecodeError::Field {
                    field: "ids",
                    reason: "too many ids in one cancellation",
                });
            }
            let attempts = wire
                .into_iter()
                .map(|(id, a)| Ok((JobId::new(&id)?, a)))
                .collect::<Result<_, DecodeError>>()?;
            Ok(WorkerRequest::Cancel {
                incarnation,
                attempts,
            })
        }
        _ => Ok(WorkerRequest::Jobs {
            jobs: decode_jobs(payload, format)?,
            incarnation: None,
            batched: format == PayloadFormat::Binary && payload.first() == Some(&JOB_BATCH),
        }),
    }
}

#[derive(Serialize, Deserialize)]
struct ProgressWire {
    id: String,
    attempt: u32,
    fraction: f32,
    note: String,
}

#[derive(Serialize, Deserialize)]
struct ProgressJson {
    progress: ProgressWire,
}

#[derive(Serialize, Deserialize)]
struct ProgressBin {
    version: u8,
    progress: ProgressWire,
}

fn progress_wire(update: &ProgressUpdate) -> ProgressWire {
    ProgressWire {
        id: update.job_id.to_string(),
        attempt: update.attempt,
        fraction: update.fraction,
        note: update.note.clone(),
    }
}

fn progress_from_wire(wire: ProgressWire) -> Result<ProgressUpdate, DecodeError> {
    Ok(ProgressUpdate {
        job_id: JobId::new(&wire.id)?,
        attempt: wire.attempt,
        fraction: if wire.fraction.is_finite() {
            wire.fraction.clamp(0.0, 1.0)
        } else {
            0.0
        },
        note: wire.note,
    })
}

/// Encodes a job for `worker@<node>`.
pub(crate) fn encode_job(job: &Job, format: PayloadFormat) -> Bytes {
    match format {
        PayloadFormat::Json => Bytes::from(job.to_json()),
        _ => Bytes::from(job.to_bincode()),
    }
}

/// Decodes a job sent to a worker pool or a coordinator.
pub(crate) fn decode_job(payload: &[u8], format: PayloadFormat) -> Result<Job, DecodeError> {
    match format {
        PayloadFormat::Json => {
            let text = std::str::from_utf8(payload).map_err(|_| DecodeError::Field {
                field: "payload",
                reason: "JSON payload is not UTF-8",
            })?;
            Job::from_json(text)
        }
        _ => Job::from_bincode(payload),
    }
}

/// Encodes an unfenced batch of jobs for `worker@<node>` (binary only; what
/// coordinators before fencing sent, still accepted).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_job_batch<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.push(JOB_BATCH);
    encode_job_seq(jobs, &mut out);
    Bytes::from(out)
}

/// Decodes one job or a batch of jobs sent to a worker pool.
pub(crate) fn decode_jobs(payload: &[u8], format: PayloadFormat) -> Result<Vec<Job>, DecodeError> {
    match (format, payload.split_first()) {
        (PayloadFormat::Binary, Some((&JOB_BATCH, body))) => decode_job_seq(body),
        _ => decode_job(payload, format).map(|job| vec![job]),
    }
}

/// Encodes a batch of results (binary only).
pub(crate) fn encode_result_batch(results: &[JobResult]) -> Bytes {
    let mut out = Vec::with_capacity(16 + 48 * results.len());
    out.push(TAG_RESULTS);
    encode_result_seq(results, &mut out);
    Bytes::from(out)
}

/// Encodes a worker reply in `format`.
pub(crate) fn encode_reply(reply: &WorkerReply, format: PayloadFormat) -> Bytes {
    match (reply, format) {
        (WorkerReply::Result(result), PayloadFormat::Json) => Bytes::from(result.to_json()),
        (WorkerReply::Progress(update), PayloadFormat::Json) => {
            let json = ProgressJson {
                progress: progress_wire(update),
            };
            Bytes::from(serde_json::to_vec(&json).expect("progress serializes"))
        }
        (WorkerReply::Results(results), PayloadFormat::Json) => {
            let list: Vec<serde_json::Value> = results
                .iter()
                .map(|r| serde_json::from_str(&r.to_json()).unwrap_or(serde_json::Value::Null))
                .collect();
            Bytes::from(serde_json::to_vec(&list).expect("results serialize"))
        }
        (WorkerReply::Results(results), _) => encode_result_batch(results),
        (WorkerReply::Fenced(_, results), PayloadFormat::Json) => {
            encode_reply(&WorkerReply::Results(results.clone()), PayloadFormat::Json)
        }
        (WorkerReply::Fenced(incarnation, results), _) => {
            let mut out = Vec::with_capacity(16 + 48 * results.len());
            out.push(TAG_RESULTS_FENCED);
            out.extend_from_slice(&incarnation.to_le_bytes());
            encode_result_seq(results, &mut out);
            Bytes::from(out)
        }
        (WorkerReply::Result(result), _) => {
            let mut out = vec![TAG_RESULT];
            out.extend_from_slice(&result.to_bincode());
            Bytes::from(out)
        }
        (WorkerReply::Progress(update), _) => {
            let bin = ProgressBin {
                version: WIRE_VERSION,
                progress: progress_wire(update),
            };
            let mut out = vec![TAG_PROGRESS];
            let body = bincode::DefaultOptions::new()
                .serialize(&bin)
                .expect("progress serializes");
            out.extend_from_slice(&body);
            Bytes::from(out)
        }
    }
}

/// Decodes a worker reply.
pub(crate) fn decode_reply(
    payload: &[u8],
    format: PayloadFormat,
) -> Result<WorkerReply, DecodeError> {
    if format == PayloadFormat::Json {
        let text = std::str::from_utf8(payload).map_err(|_| DecodeError::Field {
            field: "payload",
            reason: "JSON payload is not UTF-8",
        })?;
        if text.trim_start().starts_with('[') {
            let list: Vec<serde_json::Value> = serde_json::from_str(text)?;
            let results = list
                .iter()
                .map(|v| JobResult::from_json(&v.to_string()))
                .collect::<Result<_, _>>()?;
            return Ok(WorkerReply::Results(results));
        }
        if let Ok(json) = serde_json::from_str::<ProgressJson>(text) {
            return Ok(WorkerReply::Progress(progress_from_wire(json.progress)?));
        }
        return Ok(WorkerReply::Result(JobResult::from_json(text)?));
    }
    match payload.split_first() {
        Some((&TAG_RESULT, body)) => Ok(WorkerReply::Result(JobResult::from_bincode(body)?)),
        Some((&TAG_RESULTS, body)) => Ok(WorkerReply::Results(decode_result_seq(body)?)),
        Some((&TAG_RESULTS_FENCED, body)) => {
            let (inc, rest) = body.split_first_chunk::<8>().ok_or(DecodeError::Field {
                field: "incarnation",
                reason: "truncated",
            })?;
            Ok(WorkerReply::Fenced(
                u64::from_le_bytes(*inc),
                decode_result_seq(rest)?,
            ))
        }
        Some((&TAG_PROGRESS, body)) => {
            let bin: ProgressBin = bincode::DefaultOptions::new()
                .with_limit(MAX_BINCODE_BYTES)
                .deserialize(body)?;
            if bin.version != WIRE_VERSION {
                return Err(DecodeError::Version {
                    found: bin.version,
                    expected: WIRE_VERSION,
                });
            }
            Ok(WorkerReply::Progress(progress_from_wire(bin.progress)?))
        }
        _ => Err(DecodeError::Field {
            field: "payload",
            reason: "unknown worker reply tag",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn replies_round_trip_in_both_formats() {
        let id = JobId::new("n-1").unwrap();
        let replies = [
            WorkerReply::Result(JobResult::success(
                id.clone(),
                "out",
                "b",
                2,
                Duration::from_micros(7),
            )),
            WorkerReply::Progress(ProgressUpdate {
                job_id: id,
                attempt: 2,
                fraction: 0.25,
                note: "a quarter".into(),
            }),
        ];
        for format in [PayloadFormat::Json, PayloadFormat::Binary] {
            for reply in &replies {
                let bytes = encode_reply(reply, format);
                assert_eq!(&decode_reply(&bytes, format).unwrap(), reply);
            }
        }
        let job = Job::new("k", "d").with_id(JobId::new("j").unwrap());
        for format in [PayloadFormat::Json, PayloadFormat::Binary] {
            assert_eq!(decode_job(&encode_job(&job, format), format).unwrap(), job);
            let one = decode_jobs(&encode_job(&job, format), format).unwrap();
            assert_eq!(one, vec![job.clone()]);
        }
    }

    #[test]
    fn batches_round_trip() {
        let jobs: Vec<Job> = (0..5)
            .map(|i| Job::new("k", format!("d{i}")).with_id(JobId::new(&format!("j-{i}")).unwrap()))
            .collect();
        let bytes = encode_job_batch(&jobs);
        assert_eq!(bytes[0], JOB_BATCH);
        assert_eq!(decode_jobs(&bytes, PayloadFormat::Binary).unwrap(), jobs);
        let results: Vec<JobResult> = jobs
            .iter()
            .map(|j| JobResult::success(j.id.clone(), "ok", "b", 1, Duration::from_micros(3)))
            .collect();
        let reply = WorkerReply::Results(results);
        let bytes = encode_reply(&reply, PayloadFormat::Binary);
        assert_eq!(decode_reply(&bytes, PayloadFormat::Binary).unwrap(), reply);
        assert!(decode_jobs(&[JOB_BATCH, 0xff, 0xff], PayloadFormat::Binary).is_err());
        assert!(decode_reply(&[TAG_RESULTS, 0xff], PayloadFormat::Binary).is_err());
    }

    #[test]
    fn fenced_batches_cancels_and_fenced_results_round_trip() {
        let jobs: Vec<Job> = (0..3)
            .map(|i| Job::new("k", "d").with_id(JobId::new(&format!("j-{i}")).unwrap()))
            .collect();
        let bytes = encode_fenced_batch(77, &jobs);
        match decode_request(&bytes, PayloadFormat::Binary).unwrap() {
            WorkerRequest::Jobs {
                jobs: back,
                incarnation,
                batched,
            } => assert_eq!((back, incarnation, batched), (jobs.clone(), Some(77), true)),
            other => panic!("{other:?}"),
        }
        let attempts = vec![(JobId::new("j-1").unwrap(), 2)];
        match decode_request(&encode_cancel(9, &attempts), PayloadFormat::Binary).unwrap() {
            WorkerRequest::Cancel {
                incarnation,
                attempts: back,
            } => assert_eq!((incarnation, back), (9, attempts)),
            other => panic!("{other:?}"),
        }
        let results = vec![JobResult::success(
            JobId::new("j-1").unwrap(),
            "ok",
            "b",
            1,
            Duration::from_micros(3),
        )];
        let reply = WorkerReply::Fenced(5, results);
        let bytes = encode_reply(&reply, PayloadFormat::Binary);
        assert_eq!(decode_reply(&bytes, PayloadFormat::Binary).unwrap(), reply);
        assert!(decode_request(&[JOB_CANCEL, 1, 2], PayloadFormat::Binary).is_err());
        assert!(decode_reply(&[TAG_RESULTS_FENCED, 1], PayloadFormat::Binary).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_reply(&[9, 1, 2], PayloadFormat::Binary).is_err());
        assert!(decode_reply(&[], PayloadFormat::Binary).is_err());
        assert!(decode_reply(&[0xff], PayloadFormat::Json).is_err());
        assert!(decode_job(b"{}", PayloadFormat::Json).is_err());
    }
}
