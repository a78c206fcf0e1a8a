//! Unit tests of lost links: attempts in flight are placed again at once,
//! without counting (up to a bound), and the first result wins.
//! Deterministic: the clock is passed in.

use std::time::{Duration, Instant};

use super::super::*;

const SEC: Duration = Duration::from_secs(1);

fn core_with(nodes: &[&str], t0: Instant) -> CoordinatorCore {
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "coord".to_owned(),
        strategy: StrategyKind::RoundRobin,
        seed: Some(3),
        ..CoordinatorConfig::default()
    });
    for name in nodes {
        core.update_node(NodeInfo::up(*name, ["kind:echo"]), t0);
    }
    core
}

fn dispatched(core: &mut CoordinatorCore) -> Vec<(Job, String)> {
    core.drain_actions()
        .map(|a| match a {
            Action::Dispatch { job, node } => (job, node),
            other => panic!("expected a dispatch, got {other:?}"),
        })
        .collect()
}

fn completed(core: &mut CoordinatorCore) -> Vec<JobResult> {
    core.drain_actions()
        .filter_map(|a| match a {
            Action::Complete(result) => Some(result),
            _ => None,
        })
        .collect()
}

fn ok(job: &Job, node: &str) -> JobResult {
    JobResult::success(job.id.clone(), node, node, job.attempt, Duration::ZERO)
}

fn suspect(name: &str) -> NodeInfo {
    let mut info = NodeInfo::up(name, ["kind:echo"]);
    info.status = NodeStatus::Suspect;
    info
}

#[test]
fn attempts_on_a_lost_link_go_elsewhere_at_once_without_counting() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], t0);
    let mut on_a = Vec::new();
    for _ in 0..6 {
        // One attempt only: a counted re-placement would dead-letter it.
        let job = Job::new("echo", "").with_max_attempts(1);
        core.submit(job, t0).unwrap();
        let (job, node) = dispatched(&mut core).remove(0);
        if node == "a" {
            on_a.push(job);
        }
    }
    assert_eq!(on_a.len(), 3);
    // As the router reports it: a Suspect (the link dropped), then the loss.
    core.update_node(suspect("a"), t0 + SEC);
    assert!(
        dispatched(&mut core).is_empty(),
        "suspicion alone moves nothing"
    );
    core.link_lost("a", t0 + SEC);
    let again = dispatched(&mut core);
    assert_eq!(again.len(), 3, "no backoff, no tick: {again:?}");
    for (job, node) in &again {
        assert_eq!((job.attempt, node.as_str()), (2, "b"));
        let status = core.job_status(&job.id).unwrap();
        assert_eq!(status.failures.len(), 1);
        assert_eq!(
            status.failures[0].failure.cause,
            FailureCause::Undeliverable
        );
        assert!(status.failures[0].failure.message.contains("link to a"));
    }
    assert_eq!(core.stats().retries, 3);
    // The new attempts complete the jobs; the old ones' failures are late.
    for (job, node) in &again {
        let disposition = core.result_received(ok(job, node), node, t0 + SEC);
        assert_eq!(disposition, ResultDisposition::Accepted);
    }
    assert_eq!(completed(&mut core).len(), 3);
    assert_eq!(core.in_progress(), 3, "the jobs on b from the start");
    // A link lost again to a node with nothing running: nothing happens.
    core.link_lost("a", t0 + SEC);
    core.link_lost("nobody", t0 + SEC);
    assert!(dispatched(&mut core).is_empty());
}

#[test]
fn the_first_result_wins_the_superseded_attempt_included() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], t0);
    let first = core.submit(Job::new("echo", "1"), t0).unwrap();
    let second = core.submit(Job::new("echo", "2"), t0).unwrap();
    let d = dispatched(&mut core);
    assert_eq!(
        d.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let (old, _) = d[0].clone();
    assert_eq!(old.id, first);
    core.link_lost("a", t0 + SEC);
    let (new, node) = dispatched(&mut core).remove(0);
    assert_eq!((new.attempt, node.as_str()), (2, "b"));
    // The result of the attempt on a arrives first (on the next link).
    assert_eq!(
        core.result_received(ok(&old, "a"), "a", t0 + SEC),
        ResultDisposition::Accepted
    );
    let done = completed(&mut core);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].attempt, done[0].worker_node.as_str()), (1, "a"));
    // The replacement's result is late; b's window got its slot back.
    assert_eq!(
        core.result_received(ok(&new, "b"), "b", t0 + SEC),
        ResultDisposition::Dropped
    );
    assert!(completed(&mut core).is_empty());
    assert_eq!(core.stats().late_results, 1);
    assert_eq!(core.job_status(&second).unwrap().node.as_deref(), Some("b"));
    let b = core
        .stats()
        .nodes
        .into_iter()
        .find(|n| n.node == "b")
        .unwrap();
    assert_eq!(b.in_flight, 1, "only the second job is outstanding on b");
    // A superseded failure never wins: the current attempt goes on.
    let third = core.submit(Job::new("echo", "3"), t0).unwrap();
    let (old, node) = dispatched(&mut core).remove(0);
    core.link_lost(&node, t0 + SEC);
    let (new, other) = dispatched(&mut core).remove(0);
    let failure = JobFailure::new(FailureCause::Handler, "no");
    let late = JobResult::failure(third.clone(), failure, &node, old.attempt, Duration::ZERO);
    assert_eq!(
        core.result_received(late, &node, t0 + SEC),
        ResultDisposition::Dropped
    );
    assert_eq!(
        core.result_received(ok(&new, &other), &other, t0 + SEC),
        ResultDisposition::Accepted
    );
}

#[test]
fn a_job_that_keeps_losing_its_link_counts_after_the_free_replacements() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], t0);
    let id = core
        .submit(Job::new("echo", "").with_max_attempts(2), t0)
        .unwrap();
    let mut now = t0;
    let mut node = dispatched(&mut core).remove(0).1;
    // Three free re-placements, then the two counted attempts.
    for round in 1..=FREE_REPLACEMENTS + 1 {
        now += SEC;
        core.link_lost(&node, now);
        let (job, next) = dispatched(&mut core).remove(0);
        assert_ne!(next, node, "round {round}: the other node");
        assert_eq!(job.attempt, u32::from(round) + 1);
        node = next;
    }
    core.link_lost(&node, now + SEC);
    let done = completed(&mut core);
    assert_eq!(done.len(), 1, "dead-lettered");
    let failure = done[0].error.as_ref().expect("a failure");
    assert_eq!(failure.cause, FailureCause::Undeliverable);
    let letter = core.dead_letter(&id).expect("a dead letter");
    assert_eq!(letter.failures.len(), usize::from(FREE_REPLACEMENTS) + 2);
}

#[test]
fn with_only_a_suspect_node_left_the_job_waits_for_it() {
    let t0 = Instant::now();
    let mut core = core_with(&["a"], t0);
    let id = core
        .submit(Job::new("echo", "").with_max_attempts(1), t0)
        .unwrap();
    dispatched(&mut core);
    core.update_node(suspect("a"), t0 + SEC);
    core.link_lost("a", t0 + SEC);
    assert!(
        core.drain_actions().next().is_none(),
        "neither dispatched nor failed"
    );
    assert_eq!(core.job_status(&id).unwrap().node, None);
    // The next link comes up: a is Up, the job goes to it again.
    core.update_node(NodeInfo::up("a", ["kind:echo"]), t0 + SEC * 2);
    let (job, node) = dispatched(&mut core).remove(0);
    assert_eq!((job.attempt, node.as_str()), (2, "a"));
    core.result_received(ok(&job, "a"), "a", t0 + SEC * 2);
    assert!(completed(&mut core)[0].error.is_none());
}

#[test]
fn a_down_node_is_left_to_member_down() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    assert_eq!(dispatched(&mut core)[0].1, "a");
    core.member_down("a", t0 + SEC);
    let (job, _) = dispatched(&mut core).remove(0);
    core.link_lost("a", t0 + SEC);
    core.link_lost("b", t0 + SEC);
    let (again, node) = dispatched(&mut core).remove(0);
    assert_eq!(job.id, again.id);
    assert_eq!((again.attempt, node.as_str()), (3, "b"), "b's link counts");
}
