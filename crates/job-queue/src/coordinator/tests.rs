//! Unit tests of the sans-IO coordinator: deterministic, the clock is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn core(strategy: StrategyKind) -> CoordinatorCore {
    CoordinatorCore::new(CoordinatorConfig {
        node: "coord".to_owned(),
        strategy,
        seed: Some(42),
        ..CoordinatorConfig::default()
    })
}

fn with_nodes(strategy: StrategyKind, nodes: &[(&str, &[&str])], t0: Instant) -> CoordinatorCore {
    let mut core = core(strategy);
    for (name, tags) in nodes {
        core.update_node(NodeInfo::up(*name, tags.iter().copied()), t0);
    }
    core
}

fn echo_nodes(names: &[&'static str]) -> Vec<(&'static str, &'static [&'static str])> {
    names.iter().map(|n| (*n, &["kind:echo"][..])).collect()
}

fn actions(core: &mut CoordinatorCore) -> Vec<Action> {
    core.drain_actions().collect()
}

/// Drains actions, which must all be dispatches; returns (job, node).
fn dispatches(core: &mut CoordinatorCore) -> Vec<(Job, String)> {
    actions(core)
        .into_iter()
        .map(|a| match a {
            Action::Dispatch { job, node } => (job, node),
            other => panic!("expected a dispatch, got {other:?}"),
        })
        .collect()
}

fn one_dispatch(core: &mut CoordinatorCore) -> (Job, String) {
    let mut d = dispatches(core);
    assert_eq!(d.len(), 1, "expected one dispatch: {d:?}");
    d.remove(0)
}

/// A success of `job` on `node` that took `ms` there.
fn success_in(job: &Job, node: &str, ms: u64) -> JobResult {
    JobResult::success(
        job.id.clone(),
        "ok",
        node,
        job.attempt,
        Duration::from_millis(ms),
    )
}

/// A success that took 1 ms on `node`.
fn quick(job: &Job, node: &str) -> JobResult {
    success_in(job, node, 1)
}

fn ok(job: &Job, node: &str) -> JobResult {
    success_in(job, node, 5)
}

fn failed(job: &Job, node: &str, failure: JobFailure) -> JobResult {
    JobResult::failure(
        job.id.clone(),
        failure,
        node,
        job.attempt,
        Duration::from_millis(5),
    )
}

fn retryable() -> JobFailure {
    JobFailure::new(FailureCause::Handler, "transient")
}

/// Ticks at the next wake-up until a dispatch appears; returns it.
fn tick_until_dispatch(core: &mut CoordinatorCore) -> (Job, String) {
    let at = core.next_wakeup().expect("a retry is scheduled");
    core.tick(at);
    one_dispatch(core)
}

#[test]
fn round_robin_spreads_exactly_evenly() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b", "c"]), t0);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        core.submit(Job::new("echo", ""), t0).unwrap();
        let (job, node) = one_dispatch(&mut core);
        assert_eq!(job.attempt, 1);
        core.result_received(ok(&job, &node), &node, t0);
        assert!(matches!(
            actions(&mut core).as_slice(),
            [Action::Complete(_)]
        ));
        *counts.entry(node).or_default() += 1;
    }
    assert_eq!(
        counts,
        HashMap::from([("a".into(), 100), ("b".into(), 100), ("c".into(), 100)])
    );
}

#[test]
fn least_in_flight_avoids_the_busy_node() {
    let t0 = Instant::now();
    let mut core = with_nodes(
        StrategyKind::LeastInFlight,
        &echo_nodes(&["a", "b", "c"]),
        t0,
    );
    let mut running = Vec::new();
    for _ in 0..3 {
        core.submit(Job::new("echo", ""), t0).unwrap();
        running.push(one_dispatch(&mut core));
    }
    let nodes: Vec<&str> = running.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(nodes, ["a", "b", "c"]);
    // b finishes: it is now the least busy.
    let (job_b, _) = &running[1];
    core.result_received(ok(job_b, "b"), "b", t0);
    core.drain_actions().for_each(drop);
    core.submit(Job::new("echo", ""), t0).unwrap();
    assert_eq!(one_dispatch(&mut core).1, "b");
    // Gossip says c is swamped by other coordinators; a finishes its job.
    let mut c = NodeInfo::up("c", ["kind:echo"]);
    c.load.in_flight = 50;
    core.update_node(c, t0);
    core.result_received(ok(&running[0].0, "a"), "a", t0);
    core.drain_actions().for_each(drop);
    core.submit(Job::new("echo", ""), t0).unwrap();
    assert_eq!(one_dispatch(&mut core).1, "a");
}

#[test]
fn lowest_latency_prefers_the_low_ewma_node() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::LowestLatency, &echo_nodes(&["a", "b"]), t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (ja, na) = one_dispatch(&mut core);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (jb, nb) = one_dispatch(&mut core);
    assert_eq!(
        (na.as_str(), nb.as_str()),
        ("a", "b"),
        "unmeasured nodes are probed"
    );
    core.result_received(ok(&ja, "a"), "a", t0 + Duration::from_millis(50));
    core.result_received(ok(&jb, "b"), "b", t0 + Duration::from_millis(5));
    core.drain_actions().for_each(drop);
    for _ in 0..5 {
        core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
        assert_eq!(one_dispatch(&mut core).1, "b");
    }
    let stats = core.stats();
    assert_eq!(stats.nodes[0].latency_ms, 50.0);
    assert_eq!(stats.nodes[1].latency_ms, 5.0);
}

#[test]
fn an_idle_cluster_runs_the_job_on_the_coordinators_own_node() {
    // The coordinator runs on node "coord": jobs reach its pool in-process,
    // so its round trip counts as zero, whatever the EWMA of dispatch to
    // result (queueing included) measured.
    let t0 = Instant::now();
    let nodes = echo_nodes(&["a", "coord"]);
    let mut core = with_nodes(StrategyKind::EarliestFinish, &nodes, t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (j1, n1) = one_dispatch(&mut core);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (j2, n2) = one_dispatch(&mut core);
    // Nothing measured: a tie, to the lower name; then the idle one.
    assert_eq!((n1.as_str(), n2.as_str()), ("a", "coord"), "idle first");
    // Both ran the job in 1 ms; a's answer took 5 ms (a 4 ms link), the
    // local one 50 ms (its queue: not a link).
    core.result_received(quick(&j1, "a"), "a", t0 + Duration::from_millis(5));
    core.result_received(quick(&j2, "coord"), "coord", t0 + Duration::from_millis(50));
    core.drain_actions().for_each(drop);
    for _ in 0..5 {
        core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
        let (job, node) = one_dispatch(&mut core);
        assert_eq!(node, "coord", "one in flight: the local node");
        core.result_received(quick(&job, "coord"), "coord", t0 + SEC);
        core.drain_actions().for_each(drop);
    }
    // Busy enough locally, the remote node takes jobs too (its 4 ms link
    // is worth four jobs of 1 ms here; ties go to "a").
    let mut placed = HashMap::<String, u32>::new();
    for _ in 0..40 {
        core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
        *placed.entry(one_dispatch(&mut core).1).or_default() += 1;
    }
    assert!(placed["coord"] >= placed["a"], "{placed:?}");
    assert!(placed["a"] > 0, "{placed:?}");
}

#[test]
fn the_own_nodes_load_as_read_now_beats_its_stale_report() {
    // Right after a burst the own node's last report still shows its
    // queue; read in-process, its pool is idle: single jobs stay local.
    let t0 = Instant::now();
    let mut core = with_nodes(
        StrategyKind::EarliestFinish,
        &echo_nodes(&["a", "coord"]),
        t0,
    );
    let mut busy = NodeInfo::up("coord", ["kind:echo"]);
    busy.load.queue_depth = 330;
    core.update_node(busy, t0);
    // Both measured: 1 ms jobs, a's link 1 ms.
    for _ in ["a", "coord"] {
        let job = Job::new("echo", "").with_strategy(StrategyKind::RoundRobin);
        core.submit(job, t0).unwrap();
        let (job, placed) = one_dispatch(&mut core);
        let at = t0 + Duration::from_millis(if placed == "a" { 2 } else { 1 });
        core.result_received(quick(&job, &placed), &placed, at);
        core.drain_actions().for_each(drop);
    }
    core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
    assert_eq!(
        one_dispatch(&mut core).1,
        "a",
        "the stale report: looks busy"
    );
    core.drain_actions().for_each(drop);
    core.set_local_live_load(Some((0, 0)));
    for _ in 0..5 {
        core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
        let (job, placed) = one_dispatch(&mut core);
        assert_eq!(placed, "coord", "idle now: the own node");
        core.result_received(quick(&job, "coord"), "coord", t0 + SEC);
        core.drain_actions().for_each(drop);
    }
    // Its load as read now counts like a report: busy now, remote again.
    core.set_local_live_load(Some((4, 330)));
    core.submit(Job::new("echo", ""), t0 + SEC).unwrap();
    assert_eq!(one_dispatch(&mut core).1, "a", "busy now");
}

#[test]
fn least_cpu_prefers_the_low_load_node_as_a_per_job_override() {
    let t0 = Instant::now();
    let mut core = core(StrategyKind::RoundRobin);
    for (name, cpu) in [("a", 90.0), ("b", 10.0), ("c", 50.0)] {
        let mut info = NodeInfo::up(name, ["kind:echo"]);
        info.load.cpu = Some(cpu);
        core.update_node(info, t0);
    }
    for _ in 0..3 {
        let job = Job::new("echo", "").with_strategy(StrategyKind::LeastCpu);
        core.submit(job, t0).unwrap();
        assert_eq!(one_dispatch(&mut core).1, "b");
    }
    // Jobs without an override still use the coordinator's round robin.
    let mut seen = Vec::new();
    for _ in 0..3 {
        core.submit(Job::new("echo", ""), t0).unwrap();
        seen.push(one_dispatch(&mut core).1);
    }
    assert_eq!(seen, ["a", "b", "c"]);
}

#[test]
fn gpu_jobs_only_run_on_gpu_nodes() {
    let t0 = Instant::now();
    let nodes: &[(&str, &[&str])] = &[
        ("a", &["kind:render"]),
        ("g1", &["kind:render", "gpu"]),
        ("g2", &["kind:render", "gpu"]),
    ];
    let mut core = with_nodes(StrategyKind::RoundRobin, nodes, t0);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..10 {
        core.submit(Job::new("render", "").with_tag("gpu"), t0)
            .unwrap();
        *counts.entry(one_dispatch(&mut core).1).or_default() += 1;
    }
    assert_eq!(counts, HashMap::from([("g1".into(), 5), ("g2".into(), 5)]));
}

#[test]
fn no_eligible_node_fails_at_once_with_a_clear_error() {
    let t0 = Instant::now();
    let nodes: &[(&str, &[&str])] = &[("a", &["kind:render"]), ("g1", &["kind:render", "gpu"])];
    let mut core = with_nodes(StrategyKind::RoundRobin, nodes, t0);
    core.member_down("g1", t0);
    for job in [
        Job::new("render", "").with_tag("gpu"),
        Job::new("transcode", ""),
    ] {
        let id = core.submit(job, t0).unwrap();
        let acts = actions(&mut core);
        let [Action::Complete(result)] = acts.as_slice() else {
            panic!("expected one Complete, got {acts:?}");
        };
        assert_eq!(result.id, id);
        let failure = result.error.as_ref().unwrap();
        assert_eq!(failure.cause, FailureCause::NoEligibleNode);
        assert!(!failure.retryable);
        assert!(
            failure.message.contains("no Up node"),
            "{}",
            failure.message
        );
        assert_eq!(result.attempt, 0);
    }
    assert_eq!(core.in_progress(), 0);
    assert!(
        core.dead_letters().is_empty(),
        "never attempted: not dead-lettered"
    );
    assert_eq!(core.stats().failed, 2);
}

#[test]
fn timeout_is_retried_on_another_node_and_the_late_result_dropped() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b"]), t0);
    let id = core
        .submit(Job::new("echo", "").with_timeout(SEC), t0)
        .unwrap();
    let (first, node) = one_dispatch(&mut core);
    assert_eq!(node, "a");
    assert_eq!(core.next_wakeup(), Some(t0 + SEC));
    core.tick(t0 + Duration::from_millis(999));
    assert!(actions(&mut core).is_empty());
    core.tick(t0 + SEC);
    assert!(actions(&mut core).is_empty(), "backoff before the retry");
    let retry_at = core.next_wakeup().unwrap();
    let ceiling = CoordinatorConfig::default().backoff.ceiling(0);
    assert!(retry_at >= t0 + SEC + ceiling / 2 && retry_at <= t0 + SEC + ceiling);
    core.tick(retry_at);
    let (second, node) = one_dispatch(&mut core);
    assert_eq!((second.attempt, node.as_str()), (2, "b"));
    let status = core.job_status(&id).unwrap();
    assert_eq!(status.failures[0].failure.cause, FailureCause::Timeout);
    assert_eq!(status.failures[0].node.as_deref(), Some("a"));
    // The first attempt answers late: dropped and counted.
    let late = core.result_received(ok(&first, "a"), "a", retry_at);
    assert_eq!(late, ResultDisposition::Dropped);
    assert_eq!(core.late_results(), 1);
    assert!(actions(&mut core).is_empty());
    let done = core.result_received(ok(&second, "b"), "b", retry_at);
    assert_eq!(done, ResultDisposition::Accepted);
    let acts = actions(&mut core);
    assert!(matches!(acts.as_slice(), [Action::Complete(r)] if r.id == id && r.attempt == 2));
    assert_eq!(core.next_wakeup(), None, "no timer left behind");
}

#[test]
fn always_failing_job_gets_three_attempts_then_a_dead_letter_with_three_causes() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b", "c"]), t0);
    let id = core
        .submit(Job::new("echo", "").with_timeout(SEC), t0)
        .unwrap();
    let (j1, n1) = one_dispatch(&mut core);
    core.result_received(failed(&j1, &n1, retryable()), &n1, t0);
    let (j2, n2) = tick_until_dispatch(&mut core);
    core.tick(t0 + 10 * SEC); // attempt 2 times out
    let (j3, n3) = tick_until_dispatch(&mut core);
    let panic = JobFailure::new(FailureCause::Panic, "handler panicked: boom");
    core.result_received(failed(&j3, &n3, panic), &n3, t0 + 20 * SEC);
    assert_eq!([j1.attempt, j2.attempt, j3.attempt], [1, 2, 3]);
    let mut nodes = vec![n1, n2, n3];
    nodes.sort();
    assert_eq!(nodes, ["a", "b", "c"], "each attempt on a different node");
    let acts = actions(&mut core);
    let [Action::Complete(result), Action::DeadLettered {
        id: dl,
        attempts: 3,
        cause,
        ..
    }] = acts.as_slice()
    else {
        panic!("expected Complete then DeadLettered, got {acts:?}");
    };
    assert_eq!((dl, *cause), (&id, FailureCause::Panic));
    assert_eq!(result.error.as_ref().unwrap().cause, FailureCause::Panic);
    assert_eq!(result.attempt, 3);
    let letter = core.dead_letter(&id).unwrap();
    let causes: Vec<FailureCause> = letter.failures.iter().map(|f| f.failure.cause).collect();
    assert_eq!(
        causes,
        [
            FailureCause::Handler,
            FailureCause::Timeout,
            FailureCause::Panic
        ]
    );
    let numbers: Vec<u32> = letter.failures.iter().map(|f| f.attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(core.dead_letters().len(), 1);
    assert_eq!(core.in_progress(), 0);
    assert_eq!(core.next_wakeup(), None);
    let stats = core.stats();
    assert_eq!((stats.failed, stats.retries, stats.dead_letters), (1, 2, 1));
}

#[test]
fn permanent_error_gets_one_attempt() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b"]), t0);
    let id = core
        .submit(Job::new("echo", "").with_max_attempts(5), t0)
        .unwrap();
    let (job, node) = one_dispatch(&mut core);
    let permanent = JobFailure::from_handler_error(&crate::HandlerError::permanent("bad input"));
    core.result_received(failed(&job, &node, permanent), &node, t0);
    let acts = actions(&mut core);
    assert!(
        matches!(&acts[0], Action::Complete(r) if r.attempt == 1 && !r.error.as_ref().unwrap().retryable)
    );
    assert!(matches!(&acts[1], Action::DeadLettered { attempts: 1, .. }));
    assert_eq!(acts.len(), 2);
    assert_eq!(core.dead_letter(&id).unwrap().failures.len(), 1);
    core.tick(t0 + 3600 * SEC);
    assert!(actions(&mut core).is_empty(), "never retried");
}

#[test]
fn duplicate_results_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a"]), t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (job, node) = one_dispatch(&mut core);
    assert_eq!(
        core.result_received(ok(&job, &node), &node, t0),
        ResultDisposition::Accepted
    );
    assert_eq!(
        core.result_received(ok(&job, &node), &node, t0),
        ResultDisposition::Dropped
    );
    assert!(
        matches!(actions(&mut core).as_slice(), [Action::Complete(_)]),
        "exactly one"
    );
    // A result claiming the current attempt from another node is dropped too.
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (job2, _) = one_dispatch(&mut core);
    assert_eq!(
        core.result_received(ok(&job2, "zz"), "zz", t0),
        ResultDisposition::Dropped
    );
    assert!(actions(&mut core).is_empty());
    assert_eq!(core.stats().late_results, 2);
}

#[test]
fn member_down_retries_its_jobs_at_once() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b"]), t0);
    let mut on_a = Vec::new();
    for _ in 0..4 {
        core.submit(Job::new("echo", ""), t0).unwrap();
        let (job, node) = one_dispatch(&mut core);
        if node == "a" {
            on_a.push(job);
        }
    }
    assert_eq!(on_a.len(), 2);
    core.member_down("a", t0 + SEC);
    let retried = dispatches(&mut core);
    assert_eq!(retried.len(), 2, "no backoff, no tick needed");
    for (job, node) in &retried {
        assert_eq!((job.attempt, node.as_str()), (2, "b"));
        let status = core.job_status(&job.id).unwrap();
        assert_eq!(status.failures[0].failure.cause, FailureCause::NodeDown);
    }
    // The old attempts' results are late now.
    for job in &on_a {
        assert_eq!(
            core.result_received(ok(job, "a"), "a", t0 + SEC),
            ResultDisposition::Dropped
        );
    }
    assert_eq!(core.stats().nodes[0].in_flight, 0);
    assert_eq!(core.stats().nodes[1].in_flight, 4);
}

#[test]
fn node_down_through_update_node_and_set_nodes() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b", "c"]), t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    assert_eq!(one_dispatch(&mut core).1, "a");
    let mut down = NodeInfo::up("a", ["kind:echo"]);
    down.status = NodeStatus::Down;
    core.update_node(down, t0);
    let (job, node) = one_dispatch(&mut core);
    assert_eq!((job.attempt, node.as_str()), (2, "b"));
    // The membership table no longer lists b: it counts as Down.
    core.set_nodes(vec![NodeInfo::up("c", ["kind:echo"])], t0);
    let (job, node) = one_dispatch(&mut core);
    assert_eq!((job.attempt, node.as_str()), (3, "c"));
}

#[test]
fn suspect_nodes_get_no_new_work_but_keep_running_jobs() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b"]), t0);
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (job, _) = one_dispatch(&mut core);
    let mut suspect = NodeInfo::up("a", ["kind:echo"]);
    suspect.status = NodeStatus::Suspect;
    core.update_node(suspect, t0);
    for _ in 0..3 {
        core.submit(Job::new("echo", ""), t0).unwrap();
        assert_eq!(one_dispatch(&mut core).1, "b");
    }
    assert_eq!(
        core.result_received(ok(&job, "a"), "a", t0),
        ResultDisposition::Accepted
    );
}

#[test]
fn retry_waits_for_an_eligible_node_to_come_back() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a"]), t0);
    let id = core.submit(Job::new("echo", ""), t0).unwrap();
    one_dispatch(&mut core);
    core.member_down("a", t0);
    assert!(actions(&mut core).is_empty(), "nowhere to go: backoff");
    core.update_node(NodeInfo::up("a", ["kind:echo"]), t0);
    let (job, node) = tick_until_dispatch(&mut core);
    assert_eq!((job.attempt, node.as_str()), (3, "a"));
    let causes: Vec<FailureCause> = core
        .job_status(&id)
        .unwrap()
        .failures
        .iter()
        .map(|f| f.failure.cause)
        .collect();
    assert_eq!(
        causes,
        [FailureCause::NodeDown, FailureCause::NoEligibleNode]
    );
}

#[test]
fn undeliverable_dispatch_is_retried_elsewhere() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a", "b"]), t0);
    let id = core.submit(Job::new("echo", ""), t0).unwrap();
    let (job, _) = one_dispatch(&mut core);
    let failure = JobFailure::new(FailureCause::Undeliverable, "no route to worker@a");
    assert_eq!(
        core.attempt_failed(&id, job.attempt, failure.clone(), t0),
        ResultDisposition::Accepted
    );
    assert_eq!(
        core.attempt_failed(&id, job.attempt, failure, t0),
        ResultDisposition::Dropped
    );
    let (job, node) = tick_until_dispatch(&mut core);
    assert_eq!((job.attempt, node.as_str()), (2, "b"));
    let status = core.job_status(&id).unwrap();
    assert_eq!(
        status.failures[0].failure.cause,
        FailureCause::Undeliverable
    );
}

#[test]
fn dead_letters_can_be_resubmitted_with_fresh_attempts() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a"]), t0);
    let id = core
        .submit(Job::new("echo", "x").with_max_attempts(1), t0)
        .unwrap();
    let (job, node) = one_dispatch(&mut core);
    core.result_received(failed(&job, &node, retryable()), &node, t0);
    actions(&mut core);
    assert_eq!(core.dead_letters().len(), 1);
    assert_eq!(core.resubmit_dead_letter(&id, t0), Ok(id.clone()));
    assert!(core.dead_letters().is_empty());
    let (job, node) = one_dispatch(&mut core);
    assert_eq!(
        (job.id.clone(), job.attempt, job.data.as_str()),
        (id.clone(), 1, "x")
    );
    core.result_received(ok(&job, &node), &node, t0);
    assert!(matches!(actions(&mut core).as_slice(), [Action::Complete(r)] if r.is_success()));
    assert_eq!(
        core.resubmit_dead_letter(&id, t0),
        Err(SubmitError::NotDeadLettered(id))
    );
}

#[test]
fn submit_validation_duplicates_capacity_and_generated_ids() {
    let t0 = Instant::now();
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "coord".into(),
        max_jobs: 2,
        seed: Some(1),
        ..CoordinatorConfig::default()
    });
    core.update_node(NodeInfo::up("a", ["kind:echo"]), t0);
    let given = JobId::new("mine").unwrap();
    core.submit(Job::new("echo", "").with_id(given.clone()), t0)
        .unwrap();
    assert_eq!(
        core.submit(Job::new("echo", "").with_id(given.clone()), t0),
        Err(SubmitError::Duplicate(given))
    );
    let generated = core.submit(Job::new("echo", ""), t0).unwrap();
    assert_eq!(generated.as_str(), "coord-1");
    assert_eq!(
        core.submit(Job::new("echo", ""), t0),
        Err(SubmitError::AtCapacity { limit: 2 })
    );
    assert!(matches!(
        core.submit(Job::new("", ""), t0),
        Err(SubmitError::Invalid(_))
    ));
}

#[test]
fn per_node_statistics() {
    let t0 = Instant::now();
    let nodes: &[(&str, &[&str])] = &[("a", &["kind:echo", "kind:resize"]), ("b", &["kind:echo"])];
    let mut core = with_nodes(StrategyKind::RoundRobin, nodes, t0);
    for i in 0..10u64 {
        core.submit(Job::new("resize", "").with_tag("kind:resize"), t0)
            .unwrap();
        let (job, node) = one_dispatch(&mut core);
        let elapsed = Duration::from_millis(10 * (i + 1));
        let result = JobResult::success(job.id.clone(), "ok", &node, 1, elapsed);
        core.result_received(result, &node, t0);
        actions(&mut core);
    }
    core.submit(Job::new("echo", ""), t0).unwrap();
    let (job, node) = one_dispatch(&mut core);
    core.result_received(
        failed(&job, &node, JobFailure::new(FailureCause::BadData, "x")),
        &node,
        t0,
    );
    actions(&mut core);
    core.submit(Job::new("echo", ""), t0).unwrap();
    one_dispatch(&mut core);
    let stats = core.stats();
    let a = &stats.nodes[0];
    // Round robin continues after "a": the failing echo lands on b, the next on a.
    assert_eq!(
        (a.node.as_str(), a.completed, a.failed, a.in_flight),
        ("a", 10, 0, 1)
    );
    let b = &stats.nodes[1];
    assert_eq!((b.completed, b.failed, b.in_flight), (0, 1, 0));
    assert_eq!(b.kinds[0].kind, "echo");
    let resize = a.kinds.iter().find(|k| k.kind == "resize").unwrap();
    assert_eq!(resize.completed, 10);
    assert!((resize.timing.avg_ms - 55.0).abs() < 0.01);
    assert!((resize.timing.p50_ms - 50.0).abs() <= 50.0 * 0.0625);
    assert!((resize.timing.p99_ms - 100.0).abs() <= 100.0 * 0.0625);
    assert_eq!(
        (
            stats.submitted,
            stats.succeeded,
            stats.failed,
            stats.in_progress
        ),
        (12, 10, 1, 1)
    );
    let json = serde_json::to_string(&stats).unwrap();
    let back: StatsSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.nodes[0].kinds.len(), 1);
    assert!((back.nodes[0].timing.avg_ms - a.timing.avg_ms).abs() < 1e-9);
}

#[test]
fn per_job_state_stays_under_one_kib() {
    let t0 = Instant::now();
    let mut core = with_nodes(StrategyKind::RoundRobin, &echo_nodes(&["a"]), t0);
    let job = Job::new("echo", "x".repeat(100)).with_tag("kind:echo");
    core.submit(job, t0).unwrap();
    one_dispatch(&mut core);
    let entry = core.jobs.values().next().unwrap();
    // Map slot (key + value + control byte), the job's heap, one timer entry.
    let map_slot = std::mem::size_of::<(JobId, JobEntry)>() + 1;
    // The live map's buckets are cache misses when results come back: the
    // rarely used parts stay out of them (docs/performance.md, "Fourteenth
    // round"; 344 bytes with them inline).
    assert!(map_slot <= 256, "{map_slot} bytes per bucket");
    let timer = std::mem::size_of::<(TimerKey, JobId, TimerKind)>() + 16;
    let per_job = map_slot + entry.job.heap_bytes() + timer;
    assert!(per_job < 1024, "{per_job} bytes per job");
    assert_eq!(core.timers.len(), 1);
}

/// Random outcomes, duplicates, timeouts and node churn: every job still
/// completes exactly once and nothing is left behind.
#[test]
fn exactly_one_completion_per_job_under_chaos() {
    let t0 = Instant::now();
    let names = ["a", "b", "c", "d"];
    let mut core = with_nodes(StrategyKind::Random, &echo_nodes(&names), t0);
    let mut rng = StdRng::seed_from_u64(9);
    let mut now = t0;
    let mut completed: HashMap<JobId, u32> = HashMap::new();
    let mut running: Vec<(Job, String)> = Vec::new();
    let mut submitted = Vec::new();
    for step in 0..3000u32 {
        now += Duration::from_millis(rng.gen_range(0..400));
        if step < 500 {
            // Half of them speculative: backups race their stragglers.
            let job = Job::new("echo", "")
                .with_timeout(Duration::from_secs(2))
                .with_speculative(step % 2 == 0);
            submitted.push(core.submit(job, now).unwrap());
        }
        if rng.gen_bool(0.02) {
            let node = names[rng.gen_range(0..names.len())];
            if rng.gen_bool(0.5) {
                core.member_down(node, now);
            } else {
                core.update_node(NodeInfo::up(node, ["kind:echo"]), now);
            }
        }
        if !running.is_empty() {
            let i = rng.gen_range(0..running.len());
            let (job, node) = running[i].clone();
            let roll = rng.gen_range(0..10);
            let result = match roll {
                0..=4 => ok(&job, &node),
                5 | 6 => failed(&job, &node, retryable()),
                7 => failed(&job, &node, JobFailure::new(FailureCause::BadData, "x")),
                _ => JobResult::success(job.id.clone(), "", &node, job.attempt, Duration::ZERO),
            };
            if roll != 9 {
                running.swap_remove(i); // roll 9 leaves a duplicate to come
            }
            core.result_received(result, &node, now);
        }
        core.tick(now);
        for action in core.drain_actions() {
            match action {
                Action::Dispatch { job, node } => running.push((job, node)),
                Action::Complete(result) => *completed.entry(result.id).or_default() += 1,
                Action::DeadLettered { .. } => {}
                Action::DispatchId { .. } => unreachable!("not built with_dispatch_by_id"),
                Action::AttemptFailed { .. } => unreachable!("not built with_attempt_events"),
                Action::CancelAttempt { .. } => {}
            }
        }
    }
    // Bring every node back and let the sweep finish the stragglers.
    for node in names {
        core.update_node(NodeInfo::up(node, ["kind:echo"]), now);
    }
    while let Some(at) = core.next_wakeup() {
        core.tick(at);
        for action in core.drain_actions() {
            if let Action::Complete(result) = action {
                *completed.entry(result.id).or_default() += 1;
            }
        }
    }
    assert_eq!(core.in_progress(), 0);
    assert_eq!(completed.len(), submitted.len());
    assert!(completed.values().all(|&n| n == 1), "a job completed twice");
    let stats = core.stats();
    assert!(stats.speculative_started > 0, "no backup ever raced");
    assert!(
        stats.nodes.iter().all(|n| n.in_flight == 0),
        "a slot leaked"
    );
    let stats = core.stats();
    assert_eq!(stats.succeeded + stats.failed, submitted.len() as u64);
    assert!(stats.late_results > 0 && stats.retries > 0);
    assert!(stats.nodes.iter().all(|n| n.in_flight == 0));
}

#[test]
fn dispatch_by_id_hands_out_the_running_job_without_a_clone() {
    let mut core = CoordinatorCore::new(CoordinatorConfig {
        node: "a".into(),
        seed: Some(3),
        ..CoordinatorConfig::default()
    })
    .with_dispatch_by_id();
    let now = Instant::now();
    core.update_node(NodeInfo::up("b", ["kind:echo"]), now);
    core.skip_generated_ids(41);
    let id = core.submit(Job::new("echo", "x"), now).unwrap();
    assert_eq!(id.as_str(), "a-42");
    let Some(Action::DispatchId {
        id: sent,
        attempt,
        node,
    }) = core.poll_action()
    else {
        panic!("expected DispatchId");
    };
    assert_eq!((sent.as_str(), attempt, &*node), ("a-42", 1, "b"));
    assert_eq!(core.running_job(&id, 1).map(|j| j.data.as_str()), Some("x"));
    assert!(core.running_job(&id, 2).is_none());
    assert!(core.has_eligible_node(&Job::new("echo", "")));
    assert!(!core.has_eligible_node(&Job::new("other", "")));
}

#[test]
fn cancel_ends_a_running_a_queued_and_a_retrying_job_once() {
    use super::Cancelled;
    let now = Instant::now();
    let config = CoordinatorConfig {
        node: "c".into(),
        default_window: 1,
        ..Default::default()
    };
    let mut core = CoordinatorCore::new(config).with_attempt_events();
    core.update_node(NodeInfo::up("n1", ["kind:echo"]), now);
    let running = core.submit(Job::new("echo", "a"), now).unwrap();
    let queued = core.submit(Job::new("echo", "b"), now).unwrap();
    assert!(matches!(core.poll_action(), Some(Action::Dispatch { .. })));
    assert_eq!(core.queued(), 1);
    // The queued job never starts, and leaves the ready queue.
    assert_eq!(
        core.cancel(&queued, now),
        Cancelled::Cancelled { running_on: None }
    );
    assert_eq!(core.queued(), 0);
    let Some(Action::Complete(result)) = core.poll_action() else {
        panic!("cancelled job completes");
    };
    assert_eq!(result.error.unwrap().cause, FailureCause::Cancelled);
    // The running one names its node; its late result is dropped.
    let answer = core.cancel(&running, now);
    assert_eq!(
        answer,
        Cancelled::Cancelled {
            running_on: Some((Arc::from("n1"), 1))
        }
    );
    let Some(Action::Complete(result)) = core.poll_action() else {
        panic!("cancelled job completes");
    };
    assert_eq!((result.attempt, result.worker_node.as_str()), (1, "n1"));
    let late = JobResult::success(running.clone(), "x", "n1", 1, Duration::ZERO);
    assert_eq!(
        core.result_received(late, "n1", now),
        ResultDisposition::Dropped
    );
    assert_eq!(core.cancel(&running, now), Cancelled::NotInProgress);
    assert_eq!(core.in_progress(), 0);
    // A job waiting to retry: its attempt failure was reported first.
    let retrying = core.submit(Job::new("echo", "c"), now).unwrap();
    assert!(matches!(core.poll_action(), Some(Action::Dispatch { .. })));
    let failure = JobFailure::new(FailureCause::Handler, "flaky");
    let failed = JobResult::failure(retrying.clone(), failure, "n1", 1, Duration::ZERO);
    core.result_received(failed, "n1", now);
    assert!(matches!(
        core.poll_action(),
        Some(Action::AttemptFailed {
            attempt: 1,
            cause: FailureCause::Handler,
            ..
        })
    ));
    assert!(core.next_wakeup().is_some());
    assert_eq!(
        core.cancel(&retrying, now),
        Cancelled::Cancelled { running_on: None }
    );
    assert!(matches!(core.poll_action(), Some(Action::Complete(_))));
    assert!(core.next_wakeup().is_none(), "the retry timer is gone");
    assert_eq!(
        core.dead_letters().len(),
        0,
        "cancelled jobs are not dead letters"
    );
    let stats = core.stats();
    assert_eq!((stats.failed, stats.cancelled), (3, 3), "{stats:?}");
}
