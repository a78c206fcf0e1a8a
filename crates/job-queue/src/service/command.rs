//! JSON commands external clients may send to `coordinator@<node>`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::coordinator::{AttemptFailure, DeadLetter};

/// `{"cmd":"stats"}`, `{"cmd":"dead_letters"}`, `{"cmd":"resubmit","id":"..."}`,
/// `{"cmd":"submit","job":{...},"progress":true}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Command {
    Stats,
    DeadLetters,
    Resubmit {
        id: String,
    },
    /// A job submission that also asks for progress replies, or re-runs a
    /// finished job under its id.
    Submit {
        job: serde_json::Value,
        #[serde(default)]
        progress: bool,
        #[serde(default)]
        rerun: bool,
    },
    /// Many jobs in one frame (at most [`MAX_BATCH_JOBS`]), each taken or
    /// refused on its own; kept as JSON text until each is decoded. Parsed
    /// on its own (serde cannot keep raw text inside a tagged enum).
    #[serde(skip)]
    SubmitBatch {
        jobs: Vec<Box<RawValue>>,
    },
    /// Records of jobs; `local`: only this coordinator's (no fan-out).
    Get {
        ids: Vec<String>,
        #[serde(default)]
        local: bool,
    },
    /// Cancels jobs; `local` as for `get`.
    Cancel {
        ids: Vec<String>,
        #[serde(default)]
        local: bool,
    },
    /// The results of this coordinator's jobs, now or when final.
    Attach {
        ids: Vec<String>,
    },
    /// Removes a dead letter.
    Discard {
        id: String,
    },
    /// Adds or replaces a recurring job (`{"name","cron","job"}`).
    RecurringAdd {
        recurring: serde_json::Value,
    },
    /// Removes a recurring job.
    RecurringRemove {
        name: String,
    },
    /// Lists the recurring jobs.
    RecurringList,
}

/// Most jobs in one `submit_batch` command.
pub const MAX_BATCH_JOBS: usize = 4_096;

/// `None` if the payload is not a command (no `cmd` field): it is then a
/// job. `Some(Err)` for a malformed command.
pub(super) fn parse(payload: &[u8]) -> Option<Result<Command, String>> {
    /// Only the `cmd` field: every job goes through this check, so it
    /// skips the rest without building anything.
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        cmd: Option<&'a RawValue>,
    }
    let cmd = serde_json::from_slice::<Probe<'_>>(payload).ok()?.cmd?;
    if cmd.get() == r#""submit_batch""# {
        return Some(parse_batch(payload));
    }
    Some(serde_json::from_slice(payload).map_err(|e| format!("bad command: {e}")))
}

/// `{"cmd":"submit_batch","jobs":[..]}`: the jobs stay JSON text; more than
/// [`MAX_BATCH_JOBS`] is refused as a whole.
fn parse_batch(payload: &[u8]) -> Result<Command, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        #[allow(dead_code)]
        cmd: serde::de::IgnoredAny,
        jobs: Vec<Box<RawValue>>,
    }
    let batch: Batch = serde_json::from_slice(payload).map_err(|e| format!("bad command: {e}"))?;
    if batch.jobs.len() > MAX_BATCH_JOBS {
        return Err(format!(
            "too many jobs: {} in one submit_batch, at most {MAX_BATCH_JOBS}",
            batch.jobs.len()
        ));
    }
    Ok(Command::SubmitBatch { jobs: batch.jobs })
}

#[derive(Serialize)]
struct DeadLetterJson<'a> {
    job: serde_json::Value,
    failures: &'a [AttemptFailure],
}

/// The JSON answer to `dead_letters`: `[{"job": {...}, "failures": [...]}]`.
pub(super) fn dead_letters_json(letters: &[&DeadLetter]) -> Vec<u8> {
    let list: Vec<DeadLetterJson<'_>> = letters
        .iter()
        .map(|l| DeadLetterJson {
            job: serde_json::from_str(&l.job.to_json()).unwrap_or(serde_json::Value::Null),
            failures: &l.failures,
        })
        .collect();
    serde_json::to_vec(&list).expect("dead letters serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_jobs_are_told_apart() {
        assert!(matches!(
            parse(br#"{"cmd":"stats"}"#),
            Some(Ok(Command::Stats))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"resubmit","id":"x-1"}"#),
            Some(Ok(Command::Resubmit { id })) if id == "x-1"
        ));
        assert!(matches!(parse(br#"{"cmd":"reboot"}"#), Some(Err(_))));
        assert!(matches!(
            parse(br#"{"cmd":"submit","job":{"kind":"echo"},"progress":true}"#),
            Some(Ok(Command::Submit {
                progress: true,
                rerun: false,
                ..
            }))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"get","ids":["a","b"]}"#),
            Some(Ok(Command::Get { ids, local: false })) if ids.len() == 2
        ));
        assert!(matches!(
            parse(br#"{"cmd":"cancel","ids":["a"],"local":true}"#),
            Some(Ok(Command::Cancel { local: true, .. }))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"attach","ids":[]}"#),
            Some(Ok(Command::Attach { .. }))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"discard","id":"x"}"#),
            Some(Ok(Command::Discard { .. }))
        ));
        assert!(matches!(parse(br#"{"cmd":"get","ids":"a"}"#), Some(Err(_))));
        assert!(parse(br#"{"kind":"echo"}"#).is_none());
        assert!(matches!(parse(br#"{"cmd":5}"#), Some(Err(_))));
        assert!(parse(b"not json").is_none());
    }

    #[test]
    fn a_batch_keeps_its_jobs_as_text_and_is_bounded() {
        let Some(Ok(Command::SubmitBatch { jobs })) =
            parse(br#"{"cmd":"submit_batch","jobs":[{"kind":"echo","data":"x"}, 5]}"#)
        else {
            panic!("a batch");
        };
        let texts: Vec<&str> = jobs.iter().map(|j| j.get()).collect();
        assert_eq!(texts, [r#"{"kind":"echo","data":"x"}"#, "5"]);
        let many = format!(
            r#"{{"cmd":"submit_batch","jobs":[{}]}}"#,
            vec!["{}"; MAX_BATCH_JOBS + 1].join(",")
        );
        let Some(Err(reason)) = parse(many.as_bytes()) else {
            panic!("refused");
        };
        assert_eq!(
            reason,
            "too many jobs: 4097 in one submit_batch, at most 4096"
        );
        let exact = format!(
            r#"{{"cmd":"submit_batch","jobs":[{}]}}"#,
            vec!["{}"; MAX_BATCH_JOBS].join(",")
        );
        assert!(matches!(
            parse(exact.as_bytes()),
            Some(Ok(Command::SubmitBatch { .. }))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"submit_batch","jobs":[],"extra":1}"#),
            Some(Err(_))
        ));
        assert!(matches!(parse(br#"{"cmd":"submit_batch"}"#), Some(Err(_))));
    }
}
