//! JSON commands external clients may send to `coordinator@<node>`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::coordinator::{AttemptFailure, DeadLetter};

/// `{"cmd":"stats"}`, `{"cmd":"dead_letters"}`, `{"cmd":"resubmit","id":"..."}`,
/// `{"cmd":"submit","job":{...},"progress":true}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Command<'a> {
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
    /// refused on its own; kept as JSON text, borrowed from the frame, until
    /// each is decoded. Parsed on its own (serde cannot keep raw text inside
    /// a tagged enum), in the same pass that finds the `cmd`.
    #[serde(skip)]
    SubmitBatch {
        jobs: Vec<&'a RawValue>,
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
///
/// One pass reads the top-level fields: `cmd` and `jobs` as raw text, the
/// rest skipped. A `submit_batch` is complete after it (its jobs borrowed
/// from `payload`); any other command is rare and parsed again in full.
pub(crate) fn parse(payload: &[u8]) -> Option<Result<Command<'_>, String>> {
    let head = match serde_json::from_slice::<Head<'_>>(payload) {
        Ok(head) => head,
        // The one pass reads `jobs` as a value: a number out of range
        // there fails it. A command nonetheless (one `cmd` field) gets the
        // full parser's answer.
        Err(_) => {
            return (cmd_fields(payload) == Some(1)).then(|| {
                serde_json::from_slice::<Command<'_>>(payload)
                    .map_err(|e| bounded(&format!("bad command: {e}")))
            })
        }
    };
    let cmd = head.cmd?;
    if cmd.get() == r#""submit_batch""# {
        return Some(head.into_batch());
    }
    Some(serde_json::from_slice(payload).map_err(|e| bounded(&format!("bad command: {e}"))))
}

/// A parser's message cut to [`cluster_router::MAX_ERROR_TEXT`] bytes.
fn bounded(message: &str) -> String {
    cluster_router::bound_text(message).into_owned()
}

/// How many top-level `cmd` fields `payload` has, if it is a JSON object
/// (values skipped unread).
fn cmd_fields(payload: &[u8]) -> Option<usize> {
    struct CmdCount(usize);
    impl<'de> Deserialize<'de> for CmdCount {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct CountVisitor;
            impl<'de> serde::de::Visitor<'de> for CountVisitor {
                type Value = CmdCount;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<M: serde::de::MapAccess<'de>>(
                    self,
                    mut map: M,
                ) -> Result<CmdCount, M::Error> {
                    let mut count = 0;
                    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                        count += usize::from(key == "cmd");
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                    Ok(CmdCount(count))
                }
            }
            deserializer.deserialize_map(CountVisitor)
        }
    }
    serde_json::from_slice::<CmdCount>(payload)
        .ok()
        .map(|c| c.0)
}

/// The top-level fields of a payload that matter before its kind is known.
#[derive(Default)]
struct Head<'a> {
    cmd: Option<&'a RawValue>,
    jobs: Option<Jobs<'a>>,
    /// `jobs` appeared more than once.
    duplicate_jobs: bool,
    /// The first field other than `cmd` and `jobs`, if any (borrowed
    /// from the frame unless escaped: a plain job has such fields, and
    /// only a batch's error reads it).
    other_field: Option<std::borrow::Cow<'a, str>>,
}

/// A `jobs` field: the first [`MAX_BATCH_JOBS`] entries as raw text and
/// the number of all of them (entries past the bound are only counted), or
/// not an array.
enum Jobs<'a> {
    List {
        kept: Vec<&'a RawValue>,
        count: usize,
    },
    NotArray,
}

impl<'a> Head<'a> {
    /// `{"cmd":"submit_batch","jobs":[..]}`: the checks the derived parser
    /// would make (no other field, `jobs` once and an array), then the bound.
    fn into_batch(self) -> Result<Command<'a>, String> {
        if let Some(field) = self.other_field {
            // Bounded: echoed back in an error.
            let field: String = field.chars().take(64).collect();
            return Err(format!(
                "bad command: unknown field `{field}`, expected `cmd` or `jobs`"
            ));
        }
        if self.duplicate_jobs {
            return Err("bad command: duplicate field `jobs`".to_owned());
        }
        match self.jobs {
            None => Err("bad command: missing field `jobs`".to_owned()),
            Some(Jobs::NotArray) => Err("bad command: `jobs` must be an array of jobs".to_owned()),
            Some(Jobs::List { count, .. }) if count > MAX_BATCH_JOBS => Err(format!(
                "too many jobs: {count} in one submit_batch, at most {MAX_BATCH_JOBS}"
            )),
            Some(Jobs::List { kept, .. }) => Ok(Command::SubmitBatch { jobs: kept }),
        }
    }
}

impl<'de> Deserialize<'de> for Head<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeadVisitor)
    }
}

struct HeadVisitor;

impl<'de> serde::de::Visitor<'de> for HeadVisitor {
    type Value = Head<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Head<'de>, M::Error> {
        let mut head = Head::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "cmd" if head.cmd.is_some() => {
                    return Err(serde::de::Error::duplicate_field("cmd"))
                }
                "cmd" => head.cmd = Some(map.next_value()?),
                "jobs" => {
                    let jobs = map.next_value::<Jobs<'de>>()?;
                    head.duplicate_jobs |= head.jobs.is_some();
                    head.jobs = Some(jobs);
                }
                _ => {
                    if head.other_field.is_none() {
                        head.other_field = Some(key);
                    }
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// A field name, borrowed from the frame unless it holds escapes (serde's
/// own `Cow<str>` always copies).
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Jobs<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JobsVisitor)
    }
}

struct JobsVisitor;

impl JobsVisitor {
    fn not_array<E>(self) -> Result<Jobs<'static>, E> {
        Ok(Jobs::NotArray)
    }
}

impl<'de> serde::de::Visitor<'de> for JobsVisitor {
    type Value = Jobs<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of jobs")
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Jobs<'de>, S::Error> {
        let mut kept: Vec<&'de RawValue> =
            Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH_JOBS));
        let mut count = 0usize;
        while count < MAX_BATCH_JOBS {
            match seq.next_element::<&'de RawValue>()? {
                Some(job) => kept.push(job),
                None => return Ok(Jobs::List { kept, count }),
            }
            count += 1;
        }
        // Past the bound: counted for the error, not kept.
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(Jobs::List { kept, count })
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Jobs<'de>, M::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        self.not_array()
    }

    fn visit_bool<E>(self, _: bool) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
    fn visit_i64<E>(self, _: i64) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
    fn visit_u64<E>(self, _: u64) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
    fn visit_f64<E>(self, _: f64) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
    fn visit_str<E>(self, _: &str) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
    fn visit_unit<E>(self) -> Result<Jobs<'de>, E> {
        self.not_array()
    }
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
    fn a_command_the_one_pass_cannot_read_is_still_a_command() {
        // `jobs` is read as a value; 1e999 is out of range for one.
        let refused = parse(br#"{"cmd":"sub","jobs":1e999}"#);
        assert!(
            matches!(&refused, Some(Err(e)) if e.contains("unknown variant `sub`")),
            "{refused:?}"
        );
        let refused = parse(br#"{"cmd":"submit_batch","jobs":1e999}"#);
        assert!(
            matches!(&refused, Some(Err(e)) if e.starts_with("bad command: ")),
            "{refused:?}"
        );
        // Two `cmd` fields, or none: not a command (the job parse answers).
        assert!(parse(br#"{"cmd":"stats","cmd":"stats","jobs":1e999}"#).is_none());
        assert!(parse(br#"{"kind":"echo","jobs":1e999}"#).is_none());
    }

    #[test]
    fn long_errors_keep_their_start_and_end() {
        let name = "é".repeat(50_000);
        let Some(Err(message)) = parse(format!(r#"{{"cmd":"{name}"}}"#).as_bytes()) else {
            panic!("an unknown command is refused");
        };
        assert!(
            message.len() <= cluster_router::MAX_ERROR_TEXT,
            "{} bytes",
            message.len()
        );
        assert!(
            message.starts_with("bad command: unknown variant `éé"),
            "{message}"
        );
        assert!(message.contains(" … "), "{message}");
        assert!(
            message.ends_with(&format!("column {}", name.len() + 9)),
            "{message}"
        );
        // Short ones are left alone.
        let short = parse(br#"{"cmd":"reboot"}"#).unwrap().unwrap_err();
        assert!(
            short.starts_with("bad command: unknown variant `reboot`"),
            "{short}"
        );
        assert!(!short.contains('…'), "{short}");
    }

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

    fn reason(payload: &str) -> String {
        match parse(payload.as_bytes()) {
            Some(Err(reason)) => reason,
            _ => panic!("refused: {payload}"),
        }
    }

    #[test]
    fn a_batch_is_read_in_one_pass_in_any_field_order() {
        // `jobs` before `cmd`, whitespace, escapes in a job: the texts are
        // slices of the frame itself.
        let frame = r#" { "jobs" : [ {"kind":"echo","data":"a\"b"} ,{"id":"x-2","kind":"echo"} ], "cmd" : "submit_batch" } "#;
        let Some(Ok(Command::SubmitBatch { jobs })) = parse(frame.as_bytes()) else {
            panic!("a batch");
        };
        let texts: Vec<&str> = jobs.iter().map(|j| j.get()).collect();
        assert_eq!(
            texts,
            [
                r#"{"kind":"echo","data":"a\"b"}"#,
                r#"{"id":"x-2","kind":"echo"}"#
            ]
        );
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(jobs
            .iter()
            .all(|j| range.contains(&(j.get().as_ptr() as usize))));
    }

    #[test]
    fn a_malformed_batch_is_refused_with_a_clear_reason() {
        assert_eq!(
            reason(r#"{"cmd":"submit_batch","jobs":[],"extra":1}"#),
            "bad command: unknown field `extra`, expected `cmd` or `jobs`"
        );
        assert_eq!(
            reason(r#"{"cmd":"submit_batch"}"#),
            "bad command: missing field `jobs`"
        );
        assert_eq!(
            reason(r#"{"cmd":"submit_batch","jobs":{"kind":"echo"}}"#),
            "bad command: `jobs` must be an array of jobs"
        );
        assert_eq!(
            reason(r#"{"cmd":"submit_batch","jobs":"x"}"#),
            "bad command: `jobs` must be an array of jobs"
        );
        assert_eq!(
            reason(r#"{"cmd":"submit_batch","jobs":[],"jobs":[]}"#),
            "bad command: duplicate field `jobs`"
        );
        // A `jobs` field on another command is still that command's error.
        assert!(reason(r#"{"cmd":"get","ids":[],"jobs":5}"#)
            .starts_with("bad command: unknown field `jobs`"));
        // Not JSON, or a truncated batch: not a command (decoded as a job,
        // which fails with its own error), as before.
        assert!(parse(br#"{"cmd":"submit_batch","jobs":[{"kind":"echo"}"#).is_none());
        assert!(parse(br#"{"cmd":"submit_batch","cmd":"stats","jobs":[]}"#).is_none());
    }

    #[test]
    fn a_full_batch_of_real_jobs_and_one_past_the_bound() {
        let job = |n: usize| format!(r#"{{"id":"bulk-{n}","kind":"echo","data":"payload {n}"}}"#);
        let frame = |count: usize| {
            let jobs: Vec<String> = (0..count).map(job).collect();
            format!(r#"{{"cmd":"submit_batch","jobs":[{}]}}"#, jobs.join(","))
        };
        let full = frame(MAX_BATCH_JOBS);
        let Some(Ok(Command::SubmitBatch { jobs })) = parse(full.as_bytes()) else {
            panic!("a full batch");
        };
        assert_eq!(jobs.len(), MAX_BATCH_JOBS);
        for (n, raw) in jobs.iter().enumerate() {
            assert_eq!(raw.get(), job(n));
        }
        // Far past the bound: counted, refused as a whole.
        let over = frame(30_000);
        assert_eq!(
            reason(&over),
            "too many jobs: 30000 in one submit_batch, at most 4096"
        );
    }

    #[test]
    fn an_unknown_field_is_named_escaped_or_not_and_cut_at_64_characters() {
        let escaped = r#"{"cmd":"submit_batch","jobs":[],"\u0078tra":1}"#;
        assert_eq!(
            reason(escaped),
            "bad command: unknown field `xtra`, expected `cmd` or `jobs`"
        );
        let long = format!(
            r#"{{"cmd":"submit_batch","jobs":[],"{}":1}}"#,
            "k".repeat(500)
        );
        assert_eq!(
            reason(&long),
            format!(
                "bad command: unknown field `{}`, expected `cmd` or `jobs`",
                "k".repeat(64)
            )
        );
        // A plain job (no `cmd`) is not a command, whatever its fields.
        assert!(parse(br#"{"kind":"echo","\u0064ata":"x"}"#).is_none());
    }
}
