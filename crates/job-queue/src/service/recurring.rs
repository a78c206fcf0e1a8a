//! Recurring jobs: a named cron expression (seconds resolution) and a job
//! template; each time the expression fires, the coordinator submits a job
//! built from the template with the id `<name>-<fire time in unix ms>`.
//!
//! The id is a function of the schedule and the fire time, so a fire is
//! run once however often it is submitted: a coordinator restarted from its
//! journal that fires a time again finds the id known (within retention).
//! A coordinator that was down while fire times passed runs only the next
//! one (like Celery beat, no burst of catch-up runs).
//!
//! Expressions are parsed by the `cron` crate: six or seven fields,
//! `sec min hour day-of-month month day-of-week [year]`, in UTC
//! (`*/5 * * * * *`: every 5 seconds; `0 30 9 * * Mon-Fri`: 09:30 on
//! weekdays).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{Job, JobId};

/// The most recurring jobs one coordinator keeps.
pub const MAX_RECURRING: usize = 1024;

/// A recurring job as it is submitted, listed and journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurringJob {
    /// Its name: the rule of a job id, at most 48 bytes (the fired jobs'
    /// ids add `-<unix ms>`).
    pub name: String,
    /// The cron expression, seconds first, UTC.
    pub cron: String,
    /// The template of every fired job (its id is ignored).
    #[serde(with = "job_json")]
    pub job: Job,
}

/// The template travels in the job's own JSON form.
mod job_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::job::Job;

    pub(super) fn serialize<S: Serializer>(job: &Job, s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value =
            serde_json::from_str(&job.to_json()).map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Job, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Job::from_json(&value.to_string()).map_err(serde::de::Error::custom)
    }
}

/// Why a recurring job was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecurringError {
    /// The name breaks the rule.
    #[error("invalid recurring job name {0:?}: use 1 to 48 characters of A-Z a-z 0-9 _ . -")]
    Name(String),
    /// The expression does not parse, or never fires.
    #[error("invalid cron expression {expr:?}: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The template is not a valid job.
    #[error("invalid job template: {0}")]
    Job(String),
    /// Too many recurring jobs.
    #[error("at most {MAX_RECURRING} recurring jobs per coordinator")]
    TooMany,
    /// The change was made but could not be journaled: it is lost at the
    /// next restart.
    #[error(
        "the change could not be written to the journal ({kind}); it will not survive a restart"
    )]
    Journal {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
    },
}

#[derive(Debug)]
struct Entry {
    spec: RecurringJob,
    schedule: cron::Schedule,
    /// The next fire time, unix ms.
    next_ms: u64,
}

/// The recurring jobs of one coordinator, by name.
#[derive(Debug, Default)]
pub(crate) struct Recurring {
    by_name: BTreeMap<String, Entry>,
}

fn to_utc(unix_ms: u64) -> DateTime<Utc> {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first fire time strictly after `after_ms`, if any.
fn next_after(schedule: &cron::Schedule, after_ms: u64) -> Option<u64> {
    let next = schedule.after(&to_utc(after_ms)).next()?;
    u64::try_from(next.timestamp_millis()).ok()
}

fn valid_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Recurring {
    /// Adds (or replaces) a recurring job; returns its first fire time
    /// (unix ms) after `now_ms`.
    ///
    /// # Errors
    ///
    /// [`RecurringError`]: a bad name, expression or template, or too many.
    pub(crate) fn insert(
        &mut self,
        spec: RecurringJob,
        now_ms: u64,
    ) -> Result<u64, RecurringError> {
        if !valid_name(&spec.name) {
            return Err(RecurringError::Name(spec.name));
        }
        let cron_error = |reason: String| RecurringError::Cron {
            expr: spec.cron.clone(),
            reason,
        };
        let schedule =
            cron::Schedule::from_str(&spec.cron).map_err(|e| cron_error(e.to_string()))?;
        let next_ms =
            next_after(&schedule, now_ms).ok_or_else(|| cron_error("it never fires".into()))?;
        spec.job
            .validate()
            .map_err(|e| RecurringError::Job(e.to_string()))?;
        if self.by_name.len() >= MAX_RECURRING && !self.by_name.contains_key(&spec.name) {
            return Err(RecurringError::TooMany);
        }
        let entry = Entry {
            spec,
            schedule,
            next_ms,
        };
        self.by_name.insert(entry.spec.name.clone(), entry);
        Ok(next_ms)
    }

    /// Removes a recurring job; whether it existed.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// Every recurring job with its next fire time (unix ms), by name.
    pub(crate) fn list(&self) -> Vec<(RecurringJob, u64)> {
        self.by_name
            .values()
            .map(|e| (e.spec.clone(), e.next_ms))
            .collect()
    }

    /// The jobs whose fire time has come by `now_ms`, one per recurring job
    /// (missed earlier fires are skipped), each due again at its next time.
    pub(crate) fn due(&mut self, now_ms: u64) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut ended = Vec::new();
        for (name, entry) in &mut self.by_name {
            if entry.next_ms > now_ms {
                continue;
            }
            let fire = entry.next_ms;
            let mut job = entry.spec.job.clone();
            match JobId::new(&format!("{name}-{fire}")) {
                Ok(id) => job.id = id,
                Err(_) => continue, // cannot happen: the name was checked
            }
            job.attempt = 1;
            jobs.push(job);
            match next_after(&entry.schedule, now_ms.max(fire)) {
                Some(next) => entry.next_ms = next,
                None => ended.push(name.clone()),
            }
        }
        for name in ended {
            self.by_name.remove(&name);
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_765_000_000_000; // a whole second

    fn every(secs: u32) -> RecurringJob {
        RecurringJob {
            name: "tick".into(),
            cron: format!("*/{secs} * * * * *"),
            job: Job::new("echo", "beat"),
        }
    }

    #[test]
    fn fires_on_schedule_with_ids_from_the_fire_time() {
        let mut r = Recurring::default();
        let first = r.insert(every(2), T0).unwrap();
        assert_eq!(first, T0 + 2_000);
        assert!(r.due(T0 + 1_999).is_empty());
        let fired = r.due(T0 + 2_010);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].id.as_str(), format!("tick-{}", T0 + 2_000));
        assert_eq!(fired[0].kind, "echo");
        assert!(r.due(T0 + 3_000).is_empty());
        // Down for 10 s: one run, then on schedule again.
        assert_eq!(r.due(T0 + 14_500).len(), 1);
        assert_eq!(r.list()[0].1, T0 + 16_000);
    }

    #[test]
    fn bad_names_expressions_and_templates_are_refused() {
        let mut r = Recurring::default();
        let mut bad = every(1);
        bad.name = "a b".into();
        assert!(matches!(r.insert(bad, T0), Err(RecurringError::Name(_))));
        let mut bad = every(1);
        bad.cron = "every second".into();
        assert!(matches!(
            r.insert(bad, T0),
            Err(RecurringError::Cron { .. })
        ));
        let mut bad = every(1);
        bad.job.max_attempts = 0;
        assert!(matches!(r.insert(bad, T0), Err(RecurringError::Job(_))));
        r.insert(every(1), T0).unwrap();
        assert!(r.remove("tick"));
        assert!(!r.remove("tick"));
    }

    #[test]
    fn the_json_form_round_trips() {
        let spec = every(5);
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            text,
            r#"{"name":"tick","cron":"*/5 * * * * *","job":{"attempt":1,"data":"beat","kind":"echo","max_attempts":3,"timeout_ms":30000}}"#
        );
        assert_eq!(serde_json::from_str::<RecurringJob>(&text).unwrap(), spec);
    }
}
