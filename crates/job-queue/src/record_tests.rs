use std::time::Duration;

use super::*;
use crate::failure::JobFailure;

fn id(s: &str) -> JobId {
    JobId::new(s).unwrap()
}

fn job(s: &str) -> Job {
    Job::new("echo", "x").with_id(id(s))
}

fn ok(s: &str, attempt: u32) -> JobResult {
    JobResult::success(id(s), "out", "n2", attempt, Duration::from_millis(1))
}

const WIDE: Retention = Retention {
    age: Duration::from_secs(3600),
    bytes: u64::MAX,
};

#[test]
fn a_record_follows_the_job_through_attempts_to_its_result() {
    let mut records = Records::new("n1".into(), WIDE);
    records.submitted(&job("a"), 1_000);
    let queued = records.view(&id("a"), None, None).unwrap();
    assert_eq!((queued.state, queued.attempt), (JobState::Queued, 0));
    records.attempt_started(&id("a"), 1, &"n2".into(), 1_010);
    records.attempt_failed(&id("a"), 1, Some("n2"), FailureCause::Timeout, 1_020);
    records.attempt_started(&id("a"), 2, &"n3".into(), 1_030);
    let status = LiveStatus {
        attempt: 2,
        running: true,
    };
    let progress = ProgressRecord {
        fraction: 0.5,
        note: "half".into(),
    };
    let running = records
        .view(&id("a"), Some(status), Some(progress.clone()))
        .unwrap();
    assert_eq!((running.state, running.attempt), (JobState::Running, 2));
    assert_eq!(running.progress, Some(progress));
    assert_eq!(running.attempts[0].cause, Some(FailureCause::Timeout));
    assert_eq!(running.attempts[0].ended_ms, Some(1_020));
    assert_eq!(running.started_ms, Some(1_010));
    assert!(records.finish(&ok("a", 2), 1_040).is_some());
    assert!(
        records.finish(&ok("a", 2), 1_041).is_none(),
        "finished once"
    );
    let done = records.view(&id("a"), None, None).unwrap();
    assert_eq!((done.state, done.attempt), (JobState::Succeeded, 2));
    assert_eq!(done.finished_ms, Some(1_040));
    assert_eq!(done.attempts.len(), 2);
    assert_eq!(done.attempts[1].ended_ms, Some(1_040));
    assert_eq!(done.owner, "n1");
    // The JSON form round-trips.
    let json = serde_json::to_string(&done).unwrap();
    assert!(json.contains(r#""state":"succeeded""#), "{json}");
    assert_eq!(serde_json::from_str::<JobRecord>(&json).unwrap(), done);
}

#[test]
fn a_refused_dispatch_replaces_the_attempt_node() {
    let mut records = Records::new("n1".into(), WIDE);
    records.submitted(&job("a"), 0);
    records.attempt_started(&id("a"), 1, &"n2".into(), 1);
    records.attempt_started(&id("a"), 1, &"n3".into(), 2);
    let view = records.view(&id("a"), None, None).unwrap();
    assert_eq!(view.attempts.len(), 1);
    assert_eq!(view.attempts[0].node, "n3");
}

#[test]
fn final_states_follow_the_result() {
    let cancelled = JobResult::failure(
        id("c"),
        JobFailure::new(FailureCause::Cancelled, "cancelled"),
        "",
        1,
        Duration::ZERO,
    );
    assert_eq!(JobState::of_result(&cancelled), JobState::Cancelled);
    let never = JobResult::failure(
        id("f"),
        JobFailure::new(FailureCause::NoEligibleNode, "none"),
        "",
        0,
        Duration::ZERO,
    );
    assert_eq!(JobState::of_result(&never), JobState::Failed);
    let dead = JobResult::failure(
        id("d"),
        JobFailure::new(FailureCause::Timeout, "slow"),
        "n",
        3,
        Duration::ZERO,
    );
    assert_eq!(JobState::of_result(&dead), JobState::Dead);
    assert!(JobState::Cancelled.is_final() && !JobState::Running.is_final());
}

#[test]
fn retention_evicts_the_oldest_finished_by_bytes_and_age_never_the_unfinished() {
    let one = {
        let mut r = Records::new("n1".into(), WIDE);
        r.submitted(&job("j-0"), 0);
        assert!(r.finish(&ok("j-0", 1), 0).is_some());
        r.counts().2
    };
    let retention = Retention {
        age: Duration::from_secs(10),
        bytes: one * 3,
    };
    let mut records = Records::new("n1".into(), retention);
    records.submitted(&job("live"), 0);
    for i in 0..10 {
        let name = format!("j-{i}");
        records.submitted(&job(&name), 1_000 + i);
        records.finish(&ok(&name, 1), 1_000 + i);
    }
    let (live, finished, bytes) = records.counts();
    assert_eq!((live, finished), (1, 3));
    assert!(bytes <= one * 3);
    assert!(records.contains(&id("j-9")) && !records.contains(&id("j-6")));
    assert!(records.is_live(&id("live")));
    // Past the age limit, every finished record goes; the live one stays.
    assert_eq!(records.expire(1_009 + 10_001), 3);
    assert!(records.is_live(&id("live")));
    assert_eq!(records.counts().1, 0);
}

#[test]
fn reinserting_an_id_keeps_one_entry_and_the_right_order() {
    let mut kept: FinishedLog<u32> = FinishedLog::default();
    for round in 0..3 {
        for i in 0..100 {
            kept.insert(id(&format!("k-{i}")), round * 100 + i, 10, i as u32);
        }
    }
    assert_eq!(kept.len(), 100);
    assert_eq!(kept.bytes(), 1000);
    let retention = Retention {
        age: Duration::from_secs(3600),
        bytes: 500,
    };
    assert_eq!(kept.evict(300, retention), 50);
    assert!(kept.get(&id("k-49")).is_none() && kept.get(&id("k-50")).is_some());
    let first: Vec<_> = kept.iter().map(|(_, v)| *v).take(2).collect();
    assert_eq!(first, [50, 51]);
}

#[test]
fn live_records_share_their_kinds_up_to_a_bound() {
    let mut records = Records::new("n1".into(), WIDE);
    let (a, b) = (records.intern("echo"), records.intern("echo"));
    assert!(Arc::ptr_eq(&a, &b));
    // Kinds come from clients: past the bound, each gets its own copy and
    // the table stops growing.
    for n in 0..MAX_INTERNED_KINDS + 10 {
        records.intern(&format!("k{n}"));
    }
    assert_eq!(records.kinds.len(), MAX_INTERNED_KINDS);
    let (x, y) = (records.intern("late-kind"), records.intern("late-kind"));
    assert!(!Arc::ptr_eq(&x, &y) && *x == *y);
    // A record made from a shared kind reads as before.
    records.submitted(&job("a"), 1_000);
    let view = records.view(&id("a"), None, None).unwrap();
    assert_eq!(view.kind, "echo");
}

/// 100,000 jobs, each with its waiter kept in its record: the job's end
/// hands back that waiter and no other; a job without a record keeps none.
#[test]
fn a_hundred_thousand_waiters_come_back_with_their_jobs_end() {
    let mut records: Records<u64> = Records::with_waiters("n1".into(), WIDE);
    for n in 0..100_000u64 {
        let name = format!("w-{n}");
        records.submitted(&job(&name), n);
        assert_eq!(records.set_waiter(&id(&name), n), Ok(()));
        if n >= 5_000 {
            let done = format!("w-{}", n - 5_000);
            assert_eq!(records.waiter(&id(&done)), Some(&(n - 5_000)));
            assert_eq!(records.finish(&ok(&done, 1), n), Some(Some(n - 5_000)));
            // Final: no waiter can be set any more, and none comes back.
            assert_eq!(records.set_waiter(&id(&done), 0), Err(0));
            assert_eq!(records.finish(&ok(&done, 1), n), None);
        }
    }
    assert_eq!(records.counts().0, 5_000);
    assert_eq!(records.set_waiter(&id("never"), 1), Err(1));
    // A restarted coordinator takes the waiters of jobs it lost.
    let lost = records.take_waiters(|id| id.as_str().ends_with('7'));
    assert_eq!(lost.len(), 500);
    assert!(lost.iter().all(|(id, w)| id.as_str() == format!("w-{w}")));
    assert_eq!(records.waiter(&id("w-99997")), None);
    assert_eq!(records.waiter(&id("w-99998")), Some(&99_998));
    // A job without its waiter still finishes.
    assert_eq!(records.finish(&ok("w-99997", 1), 1), Some(None));
}
