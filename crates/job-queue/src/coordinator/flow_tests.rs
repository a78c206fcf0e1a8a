//! Unit tests of flow control: windows, the ready queue, refusals,
//! batches and draining. Deterministic: the clock is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::super::*;

fn core_with(nodes: &[(&str, &[&str])], config: CoordinatorConfig, t0: Instant) -> CoordinatorCore {
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "coord".to_owned(),
        seed: Some(7),
        ..config
    });
    for (name, tags) in nodes {
        core.update_node(NodeInfo::up(*name, tags.iter().copied()), t0);
    }
    core
}

fn dispatched(core: &mut CoordinatorCore) -> Vec<(Job, String)> {
    core.drain_actions()
        .filter_map(|a| match a {
            Action::Dispatch { job, node } => Some((job, node)),
            _ => None,
        })
        .collect()
}

fn ok(job: &Job, node: &str) -> JobResult {
    JobResult::success(job.id.clone(), "ok", node, job.attempt, Duration::ZERO)
}

#[test]
fn windows_bound_outstanding_and_the_ready_queue_is_fifo() {
    let t0 = Instant::now();
    let tags: &[&str] = &["kind:echo", "capacity:2"];
    let mut core = core_with(
        &[("a", tags), ("b", tags)],
        CoordinatorConfig::default(),
        t0,
    );
    let ids: Vec<JobId> = (0..10)
        .map(|i| core.submit(Job::new("echo", i.to_string()), t0).unwrap())
        .collect();
    let mut running = dispatched(&mut core);
    assert_eq!(running.len(), 4, "two windows of two");
    assert_eq!(core.queued(), 6);
    assert_eq!(core.stats().queued, 6);
    assert_eq!(core.job_status(&ids[9]).unwrap().node, None);
    let mut order: Vec<JobId> = running.iter().map(|(j, _)| j.id.clone()).collect();
    let mut completed = 0;
    while let Some((job, node)) = running.first().cloned() {
        running.remove(0);
        core.result_received(ok(&job, &node), &node, t0);
        for (next, next_node) in dispatched(&mut core) {
            assert_eq!(next_node, node, "the freed credit is used");
            order.push(next.id.clone());
            running.push((next, next_node));
        }
        completed += 1;
        let stats = core.stats();
        assert!(stats.nodes.iter().all(|n| n.in_flight <= 2), "{stats:?}");
    }
    assert_eq!(completed, 10);
    assert_eq!(order, ids, "dispatched in submission order");
    let stats = core.stats();
    assert_eq!((stats.succeeded, stats.retries, stats.queued), (10, 0, 0));
}

#[test]
fn a_refusal_is_not_an_attempt() {
    let t0 = Instant::now();
    let config = CoordinatorConfig {
        refusal_backoff: Duration::from_millis(20),
        ..CoordinatorConfig::default()
    };
    let mut core = core_with(&[("a", &["kind:echo", "capacity:8"])], config, t0);
    let id = core
        .submit(Job::new("echo", "").with_max_attempts(1), t0)
        .unwrap();
    let (job, node) = dispatched(&mut core).remove(0);
    let refusal = JobResult::failure(
        id.clone(),
        JobFailure::new(FailureCause::Refused, "worker pool on a is full"),
        "a",
        job.attempt,
        Duration::ZERO,
    );
    assert_eq!(
        core.result_received(refusal.clone(), &node, t0),
        ResultDisposition::Accepted
    );
    assert_eq!(
        core.drain_actions().count(),
        0,
        "not failed, not dead-lettered"
    );
    assert_eq!(core.window("a"), Some(4), "the window is halved");
    assert_eq!(core.job_status(&id).unwrap().attempt, 0);
    // A duplicate of the refusal is late.
    assert_eq!(
        core.result_received(refusal, &node, t0),
        ResultDisposition::Dropped
    );
    core.tick(t0 + Duration::from_millis(5));
    assert!(dispatched(&mut core).is_empty(), "waits for the backoff");
    core.tick(t0 + Duration::from_millis(20));
    let (again, node) = dispatched(&mut core).remove(0);
    assert_eq!(again.attempt, 1, "the same attempt number");
    core.result_received(ok(&again, &node), &node, t0);
    assert_eq!(core.window("a"), Some(5), "grows back by one per result");
    let stats = core.stats();
    assert_eq!(
        (
            stats.succeeded,
            stats.retries,
            stats.dead_letters,
            stats.refusals
        ),
        (1, 0, 0, 1)
    );
}

#[test]
fn the_ready_queue_is_bounded_by_max_jobs() {
    let t0 = Instant::now();
    let config = CoordinatorConfig {
        max_jobs: 3,
        ..CoordinatorConfig::default()
    };
    let mut core = core_with(&[("a", &["kind:echo", "capacity:1"])], config, t0);
    for _ in 0..3 {
        core.submit(Job::new("echo", ""), t0).unwrap();
    }
    assert_eq!((dispatched(&mut core).len(), core.queued()), (1, 2));
    let err = core.submit(Job::new("echo", ""), t0).unwrap_err();
    assert_eq!(err, SubmitError::AtCapacity { limit: 3 });
    assert!(err.to_string().contains("at capacity"), "{err}");
}

#[test]
fn a_blocked_head_does_not_hold_back_jobs_for_other_nodes() {
    let t0 = Instant::now();
    let nodes: &[(&str, &[&str])] = &[
        ("a", &["kind:render", "capacity:1"]),
        ("b", &["kind:echo", "capacity:1"]),
    ];
    let mut core = core_with(nodes, CoordinatorConfig::default(), t0);
    let render1 = core.submit(Job::new("render", ""), t0).unwrap();
    let render2 = core.submit(Job::new("render", ""), t0).unwrap();
    let echo1 = core.submit(Job::new("echo", ""), t0).unwrap();
    let echo2 = core.submit(Job::new("echo", ""), t0).unwrap();
    let first = dispatched(&mut core);
    let ids: Vec<&JobId> = first.iter().map(|(j, _)| &j.id).collect();
    assert_eq!(ids, [&render1, &echo1]);
    let (job, node) = &first[1];
    core.result_received(ok(job, node), node, t0);
    let next = dispatched(&mut core);
    assert_eq!(next.len(), 1);
    assert_eq!((&next[0].0.id, next[0].1.as_str()), (&echo2, "b"));
    let (job, node) = &first[0];
    core.result_received(ok(job, node), node, t0);
    assert_eq!(dispatched(&mut core)[0].0.id, render2);
}

#[test]
fn a_queued_job_whose_nodes_left_fails_like_a_retry() {
    let t0 = Instant::now();
    let config = CoordinatorConfig {
        node: "coord".into(),
        ..CoordinatorConfig::default()
    };
    let mut core = core_with(&[("a", &["kind:echo", "capacity:1"])], config, t0);
    core.submit(Job::new("echo", "").with_max_attempts(1), t0)
        .unwrap();
    let queued = core.submit(Job::new("echo", ""), t0).unwrap();
    dispatched(&mut core);
    core.member_down("a", t0);
    let completes: Vec<JobResult> = core
        .drain_actions()
        .filter_map(|a| match a {
            Action::Complete(r) => Some(r),
            _ => None,
        })
        .collect();
    let failed = completes
        .iter()
        .find(|r| r.id == queued)
        .expect("completed");
    assert_eq!(
        failed.error.as_ref().unwrap().cause,
        FailureCause::NoEligibleNode
    );
    assert_eq!(failed.attempt, 0, "it never ran");
    assert_eq!(
        core.stats().dead_letters,
        1,
        "only the running job, out of attempts"
    );
    assert_eq!(core.queued(), 0);
}

#[test]
fn batches_are_all_or_nothing() {
    let t0 = Instant::now();
    let mut core = core_with(&[("a", &["kind:echo"])], CoordinatorConfig::default(), t0);
    let bad = vec![Job::new("echo", ""), Job::new("echo", ""), Job::new("", "")];
    let err = core.submit_batch(bad, t0).unwrap_err();
    assert!(
        matches!(err, SubmitError::InBatch { index: 2, .. }),
        "{err:?}"
    );
    assert_eq!(core.in_progress(), 0, "nothing accepted");
    let x = JobId::new("x").unwrap();
    let dup = vec![
        Job::new("echo", "").with_id(x.clone()),
        Job::new("echo", "").with_id(x),
    ];
    let err = core.submit_batch(dup, t0).unwrap_err();
    assert!(
        matches!(err, SubmitError::InBatch { index: 1, .. }),
        "{err:?}"
    );
    // An explicit id that a generated one would take is skipped over.
    let taken = JobId::new("coord-1").unwrap();
    let jobs = vec![
        Job::new("echo", ""),
        Job::new("echo", "").with_id(taken.clone()),
    ];
    let ids = core.submit_batch(jobs, t0).unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], taken);
    assert_eq!(ids[1], taken);
    assert_eq!(dispatched(&mut core).len(), 2);
    let config = CoordinatorConfig {
        max_jobs: 3,
        ..CoordinatorConfig::default()
    };
    let mut small = core_with(&[("a", &["kind:echo"])], config, t0);
    let four = (0..4).map(|_| Job::new("echo", "")).collect();
    assert_eq!(
        small.submit_batch(four, t0),
        Err(SubmitError::AtCapacity { limit: 3 })
    );
}

#[test]
fn draining_refuses_new_jobs_and_finishes_held_ones() {
    let t0 = Instant::now();
    let mut core = core_with(&[("a", &["kind:echo"])], CoordinatorConfig::default(), t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (job, node) = dispatched(&mut core).remove(0);
    core.set_draining(true);
    let err = core.submit(Job::new("echo", ""), t0).unwrap_err();
    assert_eq!(err.to_string(), "coordinator on node coord is draining");
    assert!(core.submit_batch(vec![Job::new("echo", "")], t0).is_err());
    core.result_received(ok(&job, &node), &node, t0);
    assert_eq!(core.in_progress(), 0);
    assert_eq!(core.stats().succeeded, 1);
}

/// A simulated pool with a queue of 64 and 3 workers under 20,000 jobs:
/// the coordinator never sends more than the window, so nothing is ever
/// refused and every job succeeds on its first attempt.
#[test]
fn no_refusal_under_a_flood() {
    let t0 = Instant::now();
    let tags: &[&str] = &["kind:echo", "capacity:64"];
    let mut core = core_with(
        &[("a", tags), ("b", tags)],
        CoordinatorConfig::default(),
        t0,
    );
    for i in 0..20_000 {
        core.submit(Job::new("echo", i.to_string()), t0).unwrap();
    }
    let mut queues: HashMap<String, Vec<Job>> = HashMap::new();
    let mut succeeded = 0;
    let mut step = 0u64;
    while succeeded < 20_000 {
        for action in core.drain_actions().collect::<Vec<_>>() {
            match action {
                Action::Dispatch { job, node } => {
                    let queue = queues.entry(node).or_default();
                    assert!(queue.len() < 64, "the pool's queue would overflow");
                    assert_eq!(job.attempt, 1);
                    queue.push(job);
                }
                Action::Complete(result) => {
                    assert!(result.is_success() && result.attempt == 1, "{result:?}");
                    succeeded += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Each node's three workers finish the oldest jobs of its queue.
        let now = t0 + Duration::from_micros(step);
        step += 1;
        for (node, queue) in &mut queues {
            let n = queue.len().min(3);
            for job in queue.drain(..n) {
                core.result_received(ok(&job, node), node, now);
            }
        }
    }
    let stats = core.stats();
    assert_eq!(
        (
            stats.retries,
            stats.refusals,
            stats.dead_letters,
            stats.failed
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn waiting_jobs_start_by_priority_and_aging_lifts_old_ones() {
    let t0 = Instant::now();
    let tags: &[&str] = &["kind:echo", "capacity:1"];
    let mut core = core_with(&[("a", tags)], CoordinatorConfig::default(), t0);
    let first = Job::new("echo", "busy").with_id(JobId::new("busy").unwrap());
    core.submit(first, t0).unwrap();
    let mut running = dispatched(&mut core);
    for (name, priority) in [("low", 0), ("high", 9), ("mid", 3), ("high-2", 9)] {
        let job = Job::new("echo", name)
            .with_id(JobId::new(name).unwrap())
            .with_priority(priority);
        core.submit(job, t0).unwrap();
    }
    let mut order = Vec::new();
    while let Some((job, node)) = running.pop() {
        core.result_received(ok(&job, &node), &node, t0);
        running.extend(dispatched(&mut core));
        order.extend(running.iter().map(|(j, _)| j.id.to_string()));
    }
    assert_eq!(order, ["high", "high-2", "mid", "low"]);

    // A job that waited 10 s (10 levels at 1 s each) beats a fresh 9.
    core.submit(Job::new("echo", "").with_id(JobId::new("b2").unwrap()), t0)
        .unwrap();
    let mut running = dispatched(&mut core);
    core.submit(Job::new("echo", "").with_id(JobId::new("old").unwrap()), t0)
        .unwrap();
    let t10 = t0 + Duration::from_millis(10_100);
    let fresh = Job::new("echo", "")
        .with_id(JobId::new("fresh").unwrap())
        .with_priority(9);
    core.submit(fresh, t10).unwrap();
    let (job, node) = running.pop().unwrap();
    core.result_received(ok(&job, &node), &node, t10);
    let next = dispatched(&mut core);
    assert_eq!(next[0].0.id.as_str(), "old");
}

#[test]
fn a_delayed_job_does_not_start_before_its_time() {
    let t0 = Instant::now();
    let mut core = core_with(&[("a", &["kind:echo"])], CoordinatorConfig::default(), t0);
    let id = core
        .submit(Job::new("echo", "").with_delay(Duration::from_secs(60)), t0)
        .unwrap();
    assert!(dispatched(&mut core).is_empty(), "not yet");
    assert_eq!(core.job_status(&id).unwrap().node, None);
    let wake = core.next_wakeup().expect("a timer for its start");
    assert!(wake >= t0 + Duration::from_millis(59_000), "{wake:?}");
    core.tick(t0 + Duration::from_secs(30));
    assert!(dispatched(&mut core).is_empty(), "still not");
    core.tick(wake);
    let started = dispatched(&mut core);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0.attempt, 1, "the wait was no attempt");
    // A not_before in the past starts at once.
    core.submit(Job::new("echo", "").with_not_before(1), t0)
        .unwrap();
    assert_eq!(dispatched(&mut core).len(), 1);
}
