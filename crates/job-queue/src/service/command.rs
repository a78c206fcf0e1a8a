//! JSON commands external clients may send to `coordinator@<node>`.

use serde::{Deserialize, Serialize};

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

/// `None` if the payload is not a command (no `cmd` field): it is then a
/// job. `Some(Err)` for a malformed command.
pub(super) fn parse(payload: &[u8]) -> Option<Result<Command, String>> {
    /// Only whether there is a `cmd` field: every job goes through this
    /// check, so it skips the rest without building anything.
    #[derive(Deserialize)]
    struct Probe {
        cmd: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(payload).ok()?.cmd?;
    Some(serde_json::from_slice(payload).map_err(|e| format!("bad command: {e}")))
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
        assert!(parse(b"not json").is_none());
    }
}
