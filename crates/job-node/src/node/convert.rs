//! Conversions between the job queue's and router's types and the JSON
//! views of the HTTP API.

use std::time::Duration;

use cluster_router::{Member, MemberStatus};
use job_queue::{DeadLetter, Job, JobFailure, JobId, JobRecord, JobResult};

use crate::http::{ApiError, FailureView, JobState, JobSubmission, JobView, LoadView, MemberView};

/// The longest `delay_ms` accepted: one year (as the coordinator's JSON form).
const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

/// Builds the queue's [`Job`] from a submission.
///
/// # Errors
///
/// [`ApiError::InvalidJob`] for a malformed id or an invalid job (empty
/// kind, zero timeout, bad tag).
pub(crate) fn job_from_submission(sub: JobSubmission) -> Result<Job, ApiError> {
    let invalid = |e: &dyn std::fmt::Display| ApiError::InvalidJob(e.to_string().into());
    // Submissions come from clients (HTTP, the CLI): the map-reduce
    // engine's task kinds are its drivers' alone.
    if job_queue::mapreduce::is_engine_kind(&sub.kind) {
        return Err(ApiError::InvalidJob(
            job_queue::mapreduce::engine_kind_refusal(&sub.kind).into(),
        ));
    }
    let mut job = Job::new(sub.kind, sub.data);
    if let Some(id) = sub.id.as_deref().filter(|id| !id.is_empty()) {
        job = job.with_id(JobId::new(id).map_err(|e| invalid(&e))?);
    }
    job.tags = sub.tags;
    if let Some(ms) = sub.timeout_ms {
        job = job.with_timeout(Duration::from_millis(ms));
    }
    if let Some(attempts) = sub.max_attempts {
        job = job.with_max_attempts(attempts);
    }
    job.priority = sub.priority.unwrap_or(0);
    job.speculative = sub.speculative;
    match (sub.not_before_ms, sub.delay_ms) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidJob(
                "give delay_ms or not_before_ms, not both".into(),
            ))
        }
        (Some(at), None) => job = job.with_not_before(at),
        (None, Some(ms)) if ms > MAX_DELAY_MS => {
            return Err(ApiError::InvalidJob(
                "delay_ms: at most one year (31622400000 ms)".into(),
            ))
        }
        (None, Some(ms)) => job = job.with_delay(Duration::from_millis(ms)),
        (None, None) => {}
    }
    job.validate().map_err(|e| invalid(&e))?;
    Ok(job)
}

/// The view of a failure.
pub(crate) fn failure_view(failure: &JobFailure) -> FailureView {
    FailureView {
        cause: failure.cause.as_str().to_owned(),
        message: failure.message.clone(),
        retryable: failure.retryable,
    }
}

/// The view of a finished job.
///
/// A failure with no attempt made (no eligible node at submission) is
/// `failed`; any other failure went to the dead-letter list (out of
/// attempts, or a permanent error), so it is `dead`.
pub(crate) fn final_view(kind: &str, result: &JobResult) -> JobView {
    let state = JobState::of_result(result);
    JobView {
        id: result.id.to_string(),
        state,
        kind: Some(kind.to_owned()).filter(|k| !k.is_empty()),
        attempt: result.attempt,
        result: result.result.clone(),
        error: result.error.as_ref().map(failure_view),
        worker_node: Some(result.worker_node.clone()).filter(|n| !n.is_empty()),
        // Whole microseconds divided once: `4001.894`, not `4001.8940000000002`.
        elapsed_ms: Some(result.elapsed.as_micros() as f64 / 1e3),
    }
}

/// The view of a job's record.
pub(crate) fn record_view(record: &JobRecord) -> JobView {
    if let Some(result) = &record.result {
        return final_view(&record.kind, result);
    }
    JobView {
        id: record.id.to_string(),
        state: record.state,
        kind: Some(record.kind.clone()),
        attempt: record.attempt,
        result: None,
        error: None,
        worker_node: record.attempts.last().map(|a| a.node.clone()),
        elapsed_ms: None,
    }
}

/// The view of a job accepted and not finished yet.
pub(crate) fn pending_view(id: &str, kind: &str) -> JobView {
    JobView {
        id: id.to_owned(),
        state: JobState::Queued,
        kind: Some(kind.to_owned()).filter(|k| !k.is_empty()),
        attempt: 0,
        result: None,
        error: None,
        worker_node: None,
        elapsed_ms: None,
    }
}

/// The view of a dead letter.
pub(crate) fn dead_letter_view(letter: &DeadLetter) -> JobView {
    let last = letter.failures.last();
    JobView {
        id: letter.job.id.to_string(),
        state: JobState::Dead,
        kind: Some(letter.job.kind.clone()),
        attempt: last.map_or(letter.job.attempt, |f| f.attempt),
        result: None,
        error: last.map(|f| failure_view(&f.failure)),
        worker_node: last.and_then(|f| f.node.clone()),
        elapsed_ms: None,
    }
}

/// The status word of a member (`up`, `suspect`, `down`, `leaving`, `left`).
pub(crate) fn status_word(status: MemberStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}").to_ascii_lowercase())
}

/// The view of a member.
pub(crate) fn member_view(member: &Member) -> MemberView {
    MemberView {
        node: member.node.to_string(),
        url: member.url.clone(),
        status: status_word(member.status),
        tags: member.tags.clone(),
        load: LoadView {
            cpu_percent: member.load.cpu_percent,
            in_flight: member.load.in_flight,
            queue_depth: member.load.queue_depth,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::StatsView;
    use job_queue::{AttemptFailure, FailureCause, StatsSnapshot};

    #[test]
    fn submissions_become_jobs() {
        let mut sub = JobSubmission::new("sleep", "5");
        sub.id = Some("mine-1".into());
        sub.tags = vec!["gpu".into()];
        sub.timeout_ms = Some(1500);
        sub.max_attempts = Some(5);
        let job = job_from_submission(sub).unwrap();
        assert_eq!(job.id.as_str(), "mine-1");
        assert_eq!(job.timeout, Duration::from_millis(1500));
        assert_eq!((job.max_attempts, job.tags.len()), (5, 1));
        let mut bad = JobSubmission::new("echo", "");
        bad.id = Some("has space".into());
        assert!(matches!(
            job_from_submission(bad),
            Err(ApiError::InvalidJob(_))
        ));
        let mut unassigned = JobSubmission::new("echo", "");
        unassigned.id = Some(String::new());
        assert!(job_from_submission(unassigned).unwrap().id.is_unassigned());
        // The map-reduce engine's task kinds are not for clients.
        for kind in [
            job_queue::mapreduce::MAP_KIND,
            job_queue::mapreduce::REDUCE_KIND,
        ] {
            match job_from_submission(JobSubmission::new(kind, "{}")) {
                Err(ApiError::InvalidJob(why)) => {
                    assert!(why.to_string().contains("map-reduce engine"));
                }
                other => panic!("{kind} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn final_states() {
        let id = JobId::new("j-1").unwrap();
        let ok = JobResult::success(id.clone(), "out", "node-b", 1, Duration::from_millis(2));
        let view = final_view("echo", &ok);
        assert_eq!(view.state, JobState::Succeeded);
        assert_eq!(view.elapsed_ms, Some(2.0));
        let failure = JobFailure::new(FailureCause::NoEligibleNode, "nobody");
        let never = JobResult::failure(id.clone(), failure.clone(), "", 0, Duration::ZERO);
        let view = final_view("echo", &never);
        assert_eq!((view.state, view.worker_node), (JobState::Failed, None));
        let dead = JobResult::failure(id, failure, "node-c", 3, Duration::ZERO);
        assert_eq!(final_view("echo", &dead).state, JobState::Dead);
    }

    #[test]
    fn dead_letters_show_the_last_failure() {
        let letter = DeadLetter {
            job: Job::new("exec", "{}").with_id(JobId::new("d-1").unwrap()),
            failures: vec![AttemptFailure {
                attempt: 2,
                node: Some("node-c".into()),
                failure: JobFailure::new(FailureCause::Timeout, "slow"),
            }],
        };
        let view = dead_letter_view(&letter);
        assert_eq!(
            (view.attempt, view.worker_node.as_deref()),
            (2, Some("node-c"))
        );
        assert_eq!(view.error.unwrap().cause, "timeout");
    }

    #[test]
    fn stats_serve_the_snapshot_json() {
        let busy = StatsSnapshot {
            queued: 12,
            refusals: 5,
            ..StatsSnapshot::default()
        };
        let json = serde_json::to_value(&busy).unwrap();
        assert_eq!(
            (json["queued"].as_u64(), json["refusals"].as_u64()),
            (Some(12), Some(5))
        );
        let view: StatsView = serde_json::from_value(json).unwrap();
        assert_eq!((view.queued, view.refusals), (12, 5));
        assert_eq!(status_word(MemberStatus::Leaving), "leaving");
    }
}
