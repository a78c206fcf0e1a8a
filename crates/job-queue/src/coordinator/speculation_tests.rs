//! Unit tests of speculative backups. Deterministic: the clock is passed in.

use std::time::{Duration, Instant};

use super::super::*;

const MS: Duration = Duration::from_millis(1);

fn core_with(nodes: &[&str], spec: SpeculationConfig, t0: Instant) -> CoordinatorCore {
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "coord".to_owned(),
        strategy: StrategyKind::RoundRobin,
        seed: Some(3),
        speculation: spec,
        ..CoordinatorConfig::default()
    })
    .with_attempt_events();
    for name in nodes {
        core.update_node(NodeInfo::up(*name, ["kind:echo", "kind:other"]), t0);
    }
    core
}

/// Runs `n` plain jobs of `kind` per node, each taking `took`, so that
/// every node has a p95 for the kind.
fn warm(core: &mut CoordinatorCore, kind: &str, nodes: usize, took: Duration, t0: Instant) {
    for _ in 0..5 * nodes {
        core.submit(Job::new(kind, ""), t0).unwrap();
        let (job, node) = dispatch_of(core);
        let result = JobResult::success(job.id.clone(), "", &node, job.attempt, took);
        core.result_received(result, &node, t0);
        core.drain_actions().for_each(drop);
    }
}

fn dispatch_of(core: &mut CoordinatorCore) -> (Job, String) {
    let actions: Vec<Action> = core.drain_actions().collect();
    let mut found = actions.into_iter().filter_map(|a| match a {
        Action::Dispatch { job, node } => Some((job, node)),
        _ => None,
    });
    let first = found.next().expect("a dispatch");
    assert!(found.next().is_none(), "one dispatch");
    first
}

fn ok(job: &Job, node: &str) -> JobResult {
    JobResult::success(job.id.clone(), "done", node, job.attempt, 10 * MS)
}

/// A speculative job on one node, its timer fired: (original, backup).
fn straggling(core: &mut CoordinatorCore, t0: Instant) -> ((Job, String), (Job, String)) {
    core.submit(Job::new("echo", "").with_speculative(true), t0)
        .unwrap();
    let first = dispatch_of(core);
    // p95 of 100 ms (within 6.25 %) x 3, plus the 50 ms queue target.
    core.tick(t0 + 300 * MS);
    assert_eq!(core.drain_actions().count(), 0, "not yet a straggler");
    core.tick(t0 + 400 * MS);
    let backup = dispatch_of(core);
    (first, backup)
}

#[test]
fn a_straggler_gets_one_backup_on_another_node_and_the_backup_wins() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    let ((first, on), (backup, backup_on)) = straggling(&mut core, t0);
    assert_ne!(on, backup_on, "the backup goes to the other node");
    assert_eq!((first.attempt, backup.attempt), (1, 2));
    assert_eq!(core.stats().speculative_started, 1);
    let status = core.job_status(&first.id).unwrap();
    assert_eq!(status.node.as_deref(), Some(backup_on.as_str()));
    // At most one backup per job.
    core.tick(t0 + 10_000 * MS);
    assert_eq!(core.drain_actions().count(), 0);
    let t1 = t0 + 10_001 * MS;
    let r = ok(&backup, &backup_on);
    assert_eq!(
        core.result_received(r.clone(), &backup_on, t1),
        ResultDisposition::Accepted
    );
    let actions: Vec<Action> = core.drain_actions().collect();
    assert!(actions.contains(&Action::Complete(r)), "{actions:?}");
    let cancel = Action::CancelAttempt {
        id: first.id.clone(),
        attempt: 1,
        node: Arc::from(on.as_str()),
    };
    assert!(actions.contains(&cancel), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::AttemptFailed {
            attempt: 1,
            cause: FailureCause::Cancelled,
            ..
        }
    )));
    // The loser's result is late: one result, never two.
    let late = core.result_received(ok(&first, &on), &on, t1);
    assert_eq!(late, ResultDisposition::Dropped);
    assert_eq!(core.drain_actions().count(), 0);
    let stats = core.stats();
    assert_eq!((stats.speculative_started, stats.speculative_won), (1, 1));
    assert_eq!(stats.succeeded, 11);
    assert!(
        stats.nodes.iter().all(|n| n.in_flight == 0),
        "slots released"
    );
}

#[test]
fn the_straggler_may_still_win_and_its_backup_is_cancelled() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    let ((first, on), (backup, backup_on)) = straggling(&mut core, t0);
    let r = ok(&first, &on);
    core.result_received(r.clone(), &on, t0 + SEC);
    let actions: Vec<Action> = core.drain_actions().collect();
    assert!(actions.contains(&Action::Complete(r)));
    let cancel = Action::CancelAttempt {
        id: first.id.clone(),
        attempt: 2,
        node: Arc::from(backup_on.as_str()),
    };
    assert!(actions.contains(&cancel), "{actions:?}");
    let late = core.result_received(ok(&backup, &backup_on), &backup_on, t0 + SEC);
    assert_eq!(late, ResultDisposition::Dropped);
    let stats = core.stats();
    assert_eq!((stats.speculative_started, stats.speculative_won), (1, 0));
    assert!(stats.nodes.iter().all(|n| n.in_flight == 0));
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn only_speculative_jobs_and_idempotent_kinds_get_backups() {
    let t0 = Instant::now();
    let spec = SpeculationConfig {
        idempotent_kinds: vec!["other".to_owned()],
        ..SpeculationConfig::default()
    };
    let mut core = core_with(&["a", "b"], spec, t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    warm(&mut core, "other", 2, 100 * MS, t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let plain = dispatch_of(&mut core);
    core.tick(t0 + 20 * SEC);
    assert_eq!(
        core.drain_actions().count(),
        0,
        "a plain job is never backed up"
    );
    core.submit(Job::new("other", ""), t0).unwrap();
    dispatch_of(&mut core);
    core.tick(t0 + 20 * SEC);
    let (backup, _) = dispatch_of(&mut core);
    assert_eq!(backup.attempt, 2, "an idempotent kind is");
    assert!(core.is_running(&plain.0.id, 1));
    assert_eq!(core.stats().speculative_started, 1);
}

#[test]
fn no_reference_time_or_no_other_node_means_no_backup() {
    let t0 = Instant::now();
    // Nothing measured yet: no p95, no timer.
    let mut core = core_with(&["a", "b"], SpeculationConfig::default(), t0);
    core.submit(Job::new("echo", "").with_speculative(true), t0)
        .unwrap();
    dispatch_of(&mut core);
    assert_eq!(core.next_wakeup(), Some(t0 + Job::DEFAULT_TIMEOUT));
    // A single node: the timer fires and gives up.
    let mut single = core_with(&["a"], SpeculationConfig::default(), t0);
    warm(&mut single, "echo", 1, 100 * MS, t0);
    single
        .submit(Job::new("echo", "").with_speculative(true), t0)
        .unwrap();
    dispatch_of(&mut single);
    single.tick(t0 + 5 * SEC);
    assert_eq!(single.drain_actions().count(), 0);
    assert_eq!(single.next_wakeup(), Some(t0 + Job::DEFAULT_TIMEOUT));
}

#[test]
fn a_node_without_samples_is_judged_by_the_others() {
    let t0 = Instant::now();
    let mut core = core_with(&["a"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 1, 100 * MS, t0);
    // A new node, never measured, gets the next job (round-robin).
    core.update_node(NodeInfo::up("b", ["kind:echo"]), t0);
    core.submit(Job::new("echo", "").with_speculative(true), t0)
        .unwrap();
    let (_, on) = dispatch_of(&mut core);
    assert_eq!(on, "b");
    core.tick(t0 + 400 * MS);
    let (backup, backup_on) = dispatch_of(&mut core);
    assert_eq!((backup.attempt, backup_on.as_str()), (2, "a"));
}

#[test]
fn a_failed_backup_is_retried_while_the_straggler_runs() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b", "c"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 3, 100 * MS, t0);
    let ((first, on), (backup, backup_on)) = straggling(&mut core, t0);
    let failure = JobFailure {
        cause: FailureCause::Handler,
        message: "flaky".into(),
        retryable: true,
    };
    let failed = JobResult::failure(first.id.clone(), failure, &backup_on, 2, 5 * MS);
    core.result_received(failed, &backup_on, t0 + SEC);
    core.drain_actions().for_each(drop);
    // The retry (attempt 3) after its backoff, on the third node.
    core.tick(t0 + 2 * SEC);
    let (retry, retry_on) = dispatch_of(&mut core);
    assert_eq!(retry.attempt, 3);
    assert!(retry_on != on && retry_on != backup_on, "{retry_on}");
    // The straggler finishes first after all.
    let r = ok(&first, &on);
    core.result_received(r.clone(), &on, t0 + 3 * SEC);
    let actions: Vec<Action> = core.drain_actions().collect();
    assert!(actions.contains(&Action::Complete(r)));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::CancelAttempt { attempt: 3, .. })));
    drop(backup);
    assert!(core.stats().nodes.iter().all(|n| n.in_flight == 0));
}

#[test]
fn the_straggler_node_going_down_leaves_the_backup_running() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    let ((first, on), (backup, backup_on)) = straggling(&mut core, t0);
    core.member_down(&on, t0 + SEC);
    let actions: Vec<Action> = core.drain_actions().collect();
    assert!(actions
        .iter()
        .all(|a| !matches!(a, Action::Dispatch { .. })));
    assert!(core.is_running(&first.id, 2));
    let r = ok(&backup, &backup_on);
    core.result_received(r.clone(), &backup_on, t0 + SEC);
    assert!(core
        .drain_actions()
        .any(|a| a == Action::Complete(r.clone())));
    // The backup won, but there was no straggler left to beat.
    assert_eq!(core.stats().speculative_won, 0);
}

#[test]
fn cancelling_a_speculated_job_stops_both_attempts() {
    let t0 = Instant::now();
    let mut core = core_with(&["a", "b"], SpeculationConfig::default(), t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    let ((first, on), (_, backup_on)) = straggling(&mut core, t0);
    let outcome = core.cancel(&first.id, t0 + SEC);
    let running_on = Some((Arc::from(backup_on.as_str()), 2));
    assert_eq!(outcome, Cancelled::Cancelled { running_on });
    let actions: Vec<Action> = core.drain_actions().collect();
    let cancel = Action::CancelAttempt {
        id: first.id.clone(),
        attempt: 1,
        node: Arc::from(on.as_str()),
    };
    assert!(actions.contains(&cancel), "{actions:?}");
    let completes = actions
        .iter()
        .filter(|a| matches!(a, Action::Complete(_)))
        .count();
    assert_eq!(completes, 1);
    assert!(core.stats().nodes.iter().all(|n| n.in_flight == 0));
}

#[test]
fn backups_in_flight_are_capped() {
    let t0 = Instant::now();
    let spec = SpeculationConfig {
        max_share: 0.0,
        ..SpeculationConfig::default()
    };
    let mut core = core_with(&["a", "b"], spec, t0);
    warm(&mut core, "echo", 2, 100 * MS, t0);
    let mut firsts = Vec::new();
    for _ in 0..2 {
        core.submit(Job::new("echo", "").with_speculative(true), t0)
            .unwrap();
        firsts.push(dispatch_of(&mut core));
    }
    core.tick(t0 + 400 * MS);
    let (backup, backup_on) = dispatch_of(&mut core);
    assert_eq!(core.stats().speculative_started, 1, "a cap of one");
    core.tick(t0 + 450 * MS);
    assert_eq!(core.drain_actions().count(), 0);
    // The first backup finishes: the second job's timer, armed again one
    // floor later, now starts its backup.
    core.result_received(ok(&backup, &backup_on), &backup_on, t0 + 450 * MS);
    core.drain_actions().for_each(drop);
    core.tick(t0 + 600 * MS);
    let (second, _) = dispatch_of(&mut core);
    assert_eq!(second.attempt, 2);
    assert_eq!(core.stats().speculative_started, 2);
}
