//! The lease protocol between several engines on a simulated clock and
//! network (messages take one step to arrive; a partition drops them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::holder::TOKEN_TTL;
use super::leader::{fair_shares, MAX_HOLDERS};
use super::wire::{Grant, Report};
use super::*;

const KIND: &str = "sleep";
const STEP: Duration = Duration::from_millis(5);

struct Node {
    engine: LimitEngine,
    /// Finish times of the attempts running here.
    running: Vec<Instant>,
    started: Vec<Instant>,
    finished: usize,
}

struct Sim {
    start: Instant,
    now: Instant,
    nodes: BTreeMap<String, Node>,
    cut: BTreeSet<String>,
    in_flight: Vec<(String, String, LimitMsg)>,
    job: Duration,
    max_running: usize,
}

fn limit(spec: &str) -> KindLimit {
    spec.parse().unwrap()
}

impl Sim {
    fn new(names: &[&str], spec: &str, lease: Duration, job: Duration) -> Sim {
        let now = Instant::now();
        let limit = limit(spec);
        let config = LimitsConfig {
            kinds: vec![limit.clone()],
            lease,
        };
        let mut nodes = BTreeMap::new();
        for name in names {
            let mut engine = LimitEngine::new(name.to_string(), config.clone(), now);
            for other in names {
                engine.observe_node(other, true, &[limit.tag()], now);
            }
            let node = Node {
                engine,
                running: Vec::new(),
                started: Vec::new(),
                finished: 0,
            };
            nodes.insert(name.to_string(), node);
        }
        Sim {
            start: now,
            now,
            nodes,
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            job,
            max_running: 0,
        }
    }

    fn submit(&mut self, node: &str, count: usize) {
        let n = self.nodes.get_mut(node).unwrap();
        for i in 0..count {
            let id = JobId::new(&format!("{node}-{i}")).unwrap();
            n.engine.park(KIND, id);
        }
    }

    fn running(&self) -> usize {
        self.nodes.values().map(|n| n.running.len()).sum()
    }

    /// One step: deliver what was sent last step, finish due jobs, start
    /// what may start, send what is due.
    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for (from, to, msg) in std::mem::take(&mut self.in_flight) {
            if let Some(node) = self.nodes.get_mut(&to) {
                node.engine.received(&from, msg, now);
            }
        }
        for node in self.nodes.values_mut() {
            let before = node.running.len();
            node.running.retain(|t| *t > now);
            for _ in node.running.len()..before {
                node.engine.finished(KIND);
                node.finished += 1;
            }
            node.engine.run(now);
            while let Some(_id) = node.engine.next_startable(now) {
                node.engine.start(KIND);
                node.running.push(now + self.job);
                node.started.push(now);
            }
            node.engine.run(now);
        }
        for (name, node) in &mut self.nodes {
            for (to, msg) in node.engine.take_outbox() {
                if !self.cut.contains(name) && !self.cut.contains(&to) {
                    self.in_flight.push((name.clone(), to, msg));
                }
            }
        }
        self.max_running = self.max_running.max(self.running());
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) {
        while !done(self) {
            assert!(self.now - self.start < limit, "not done within {limit:?}");
            self.step();
        }
    }

    fn leader(&self, name: &str) -> &leader::KindLeader {
        self.nodes[name]
            .engine
            .leader_of(KIND)
            .expect("leads the kind")
    }
}

#[test]
fn fair_shares_are_max_min_with_turns() {
    assert_eq!(fair_shares(2, &[5, 5, 5], 0), [1, 1, 0]);
    assert_eq!(fair_shares(2, &[5, 5, 5], 1), [0, 1, 1]);
    assert_eq!(fair_shares(2, &[5, 5, 5], 2), [1, 0, 1]);
    assert_eq!(fair_shares(10, &[1, 8, 8], 0), [1, 5, 4]);
    assert_eq!(fair_shares(10, &[0, 2, 0], 0), [0, 2, 0]);
    assert_eq!(fair_shares(3, &[], 7), Vec::<u32>::new());
    assert_eq!(fair_shares(0, &[4], 0), [0]);
}

#[test]
fn a_limit_of_two_holds_across_three_coordinators_and_every_job_runs() {
    let lease = Duration::from_secs(1);
    let mut sim = Sim::new(
        &["a", "b", "c"],
        "kind=sleep,running=2",
        lease,
        Duration::from_millis(40),
    );
    for name in ["a", "b", "c"] {
        sim.submit(name, 30);
    }
    let mut first_done: Option<BTreeMap<String, usize>> = None;
    sim.run_until(Duration::from_secs(60), |sim| {
        assert!(sim.running() <= 2, "{} running", sim.running());
        assert!(sim.leader("a").booked() <= 2);
        if first_done.is_none() && sim.nodes.values().any(|n| n.finished == 30) {
            first_done = Some(
                sim.nodes
                    .iter()
                    .map(|(k, n)| (k.clone(), n.started.len()))
                    .collect(),
            );
        }
        sim.nodes.values().all(|n| n.finished == 30)
    });
    assert_eq!(sim.max_running, 2, "the limit is used");
    // Turns: every coordinator had started some of its jobs before the
    // first one was through all of its own.
    let first_done = first_done.unwrap();
    assert!(first_done.values().all(|&n| n > 0), "{first_done:?}");
    // A new leader grants nothing for one lease.
    let first = sim
        .nodes
        .values()
        .filter_map(|n| n.started.first())
        .min()
        .unwrap();
    assert!(
        *first >= sim.start + lease,
        "started {:?} after the start",
        *first - sim.start
    );
}

#[test]
fn a_partitioned_holder_stops_at_its_lease_and_its_share_comes_back() {
    let lease = Duration::from_millis(600);
    let mut sim = Sim::new(
        &["a", "b", "c"],
        "kind=sleep,running=2",
        lease,
        Duration::from_millis(30),
    );
    sim.submit("c", 1000);
    sim.submit("b", 1000);
    // Until c holds a share and runs.
    sim.run_until(Duration::from_secs(10), |sim| {
        !sim.nodes["c"].running.is_empty()
    });
    let cut_at = sim.now;
    sim.cut.insert("c".into());
    let stop_by = cut_at + lease;
    sim.run_until(Duration::from_secs(20), |sim| sim.now > cut_at + lease * 3);
    let late: Vec<_> = sim.nodes["c"]
        .started
        .iter()
        .filter(|t| **t >= stop_by)
        .collect();
    assert!(
        late.is_empty(),
        "c started {} jobs after its lease ran out",
        late.len()
    );
    // The leader forgot c; b runs with the whole limit.
    assert_eq!(sim.leader("a").holders(), 1);
    assert_eq!(sim.nodes["b"].running.len(), 2);
    assert!(sim.running() <= 2);
}

#[test]
fn a_new_leader_waits_a_lease_and_the_limit_holds_through_the_change() {
    let lease = Duration::from_millis(500);
    let mut sim = Sim::new(
        &["a", "b", "c"],
        "kind=sleep,running=2",
        lease,
        Duration::from_millis(20),
    );
    for name in ["a", "b", "c"] {
        sim.submit(name, 200);
    }
    sim.run_until(Duration::from_secs(10), |sim| sim.nodes["b"].finished >= 5);
    // a crashes: its attempts end with it; the others see it Down.
    sim.nodes.remove("a");
    let crashed = sim.now;
    for node in sim.nodes.values_mut() {
        node.engine.observe_node("a", false, &[], crashed);
    }
    assert!(
        sim.nodes["b"].engine.leader_of(KIND).is_some(),
        "b leads now"
    );
    sim.run_until(Duration::from_secs(60), |sim| {
        assert!(sim.running() <= 2, "{} running", sim.running());
        sim.nodes.values().all(|n| n.finished == 200)
    });
    // Nothing started from b's grants in its first lease: starts in that
    // window used what a had granted (expiring) and nothing more.
    let early = sim
        .nodes
        .values()
        .flat_map(|n| &n.started)
        .filter(|t| **t > crashed + Duration::from_millis(50) && **t < crashed + lease)
        .count();
    assert_eq!(
        early, 0,
        "starts while the new leader waited out the old leases"
    );
}

#[test]
fn a_rate_limit_spreads_starts_over_the_bucket() {
    let lease = Duration::from_millis(400);
    let mut sim = Sim::new(
        &["a", "b"],
        "kind=sleep,rate=20",
        lease,
        Duration::from_millis(1),
    );
    sim.submit("a", 50);
    sim.submit("b", 50);
    sim.run_until(Duration::from_secs(30), |sim| {
        sim.nodes.values().all(|n| n.finished == 50)
    });
    let mut starts: Vec<Instant> = sim.nodes.values().flat_map(|n| n.started.clone()).collect();
    starts.sort();
    let bucket = limit("kind=sleep,rate=20").bucket() as f64;
    assert_eq!(bucket, 2.0);
    let span = (*starts.last().unwrap() - starts[0]).as_secs_f64();
    let bound = (100.0 - bucket) / 20.0 - TOKEN_TTL.as_secs_f64();
    assert!(
        span >= bound,
        "100 starts in {span:.2} s, the bucket allows no less than {bound:.2}"
    );
    // No second holds more than its tokens (plus the bucket).
    for (i, t) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(
            within as f64 <= bucket + 20.0 * 1.25,
            "{within} starts within a second"
        );
    }
    // Both coordinators got turns.
    assert!(sim.nodes.values().all(|n| n.started.len() == 50));
}

#[test]
fn nodes_that_disagree_get_the_stricter_limit() {
    let now = Instant::now();
    let loose = limit("kind=sleep,running=4,rate=10");
    let strict = limit("kind=sleep,running=2");
    let config = LimitsConfig {
        kinds: vec![loose.clone()],
        lease: Duration::from_secs(1),
    };
    let mut a = LimitEngine::new("a".into(), config, now);
    a.observe_node("b", true, &[strict.tag()], now);
    // A node with no limits configured follows the others'.
    let mut c = LimitEngine::new("c".into(), LimitsConfig::default(), now);
    assert!(c.may_start(KIND, now));
    c.observe_node("a", true, &[loose.tag()], now);
    c.observe_node("b", true, &[strict.tag()], now);
    for engine in [&a, &c] {
        let snap = engine.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!((snap[0].running, snap[0].rate), (Some(2), Some(10.0)));
        assert_eq!(snap[0].leader.as_deref(), Some("a"));
    }
    assert!(!c.may_start(KIND, now), "no share yet");
    // The limit is lifted (b and a gone): parked jobs are freed.
    let id = JobId::new("j").unwrap();
    c.park(KIND, id.clone());
    c.observe_node("a", false, &[], now);
    c.observe_node("b", false, &[], now);
    assert_eq!(c.next_startable(now), Some(id));
    assert!(c.may_start(KIND, now));
}

#[test]
fn what_the_network_feeds_is_checked_and_bounded() {
    let now = Instant::now();
    let spec = limit("kind=sleep,running=2");
    let config = LimitsConfig {
        kinds: vec![spec.clone()],
        lease: Duration::from_secs(1),
    };
    let mut a = LimitEngine::new("a".into(), config, now);
    let report = |used| {
        LimitMsg::Report(Report {
            kind: KIND.into(),
            report_seq: 1,
            acked: 0,
            used,
            want: u32::MAX,
            want_tokens: u32::MAX,
        })
    };
    // A report from a node that is not a live member is ignored.
    a.run(now);
    let own = a.leader_of(KIND).unwrap().holders();
    a.received("mallory", report(1), now);
    assert_eq!(a.leader_of(KIND).unwrap().holders(), own);
    // Members are bounded by the membership; the leader's map by a cap too.
    for i in 0..MAX_HOLDERS + 10 {
        let name = format!("n{i}");
        a.observe_node(&name, true, &[], now);
        a.received(&name, report(0), now);
    }
    assert_eq!(a.leader_of(KIND).unwrap().holders(), MAX_HOLDERS);
    // A huge `used` is capped, and counts (nothing else is granted).
    let later = now + Duration::from_secs(2);
    a.received("n1", report(u32::MAX), later);
    a.run(later);
    assert!(a.leader_of(KIND).unwrap().booked() >= 1_000_000);
    // A grant from a node that does not lead the kind is ignored.
    let mut b = LimitEngine::new("b".into(), LimitsConfig::default(), now);
    b.observe_node("a", true, &[spec.tag()], now);
    b.observe_node("b", true, &[], now);
    let grant = LimitMsg::Grant(Grant {
        kind: KIND.into(),
        report_seq: 0,
        seq: 1,
        allowed: 1_000,
        tokens: 1_000,
        lease_ms: u64::MAX,
    });
    b.received("n7", grant.clone(), now);
    assert_eq!(b.snapshot()[0].allowed_here, 0);
    // Kinds and tags from gossip are bounded.
    let mut c = LimitEngine::new("c".into(), LimitsConfig::default(), now);
    for n in 0..5 {
        let tags: Vec<String> = (0..100)
            .map(|k| limit(&format!("kind=k{n}-{k},running=1")).tag())
            .collect();
        c.observe_node(&format!("m{n}"), true, &tags, now);
    }
    assert_eq!(c.snapshot().len(), MAX_KINDS);
}

#[test]
fn huge_token_grants_add_up_without_overflow() {
    // Found by the `job_queue_wire` fuzzer: a follower that got two grants
    // of `u32::MAX` start tokens from its leader summed them and panicked
    // (overflow; a release build wrapped to fewer tokens).
    let now = Instant::now();
    let spec = limit("kind=sleep,rate=5");
    let config = LimitsConfig {
        kinds: vec![spec.clone()],
        lease: Duration::from_secs(1),
    };
    // "c" follows "b", the lowest name with the limit.
    let mut c = LimitEngine::new("c".into(), config, now);
    c.observe_node("b", true, &[spec.tag()], now);
    let grant = LimitMsg::Grant(Grant {
        kind: KIND.into(),
        report_seq: 0,
        seq: 1,
        allowed: 0,
        tokens: u32::MAX,
        lease_ms: 1_000,
    });
    c.received("b", grant.clone(), now);
    c.received("b", grant, now);
    c.run(now);
    assert!(c.may_start(KIND, now), "the tokens are there");
    assert!(!c.may_start(KIND, now + TOKEN_TTL), "and expire");
}

#[test]
fn a_coordinator_core_keeps_limited_jobs_queued_until_it_has_a_share() {
    use crate::{Action, CoordinatorConfig, CoordinatorCore, Job, JobResult, NodeInfo};
    let lease = Duration::from_millis(100);
    let config = CoordinatorConfig {
        node: "node-a".into(),
        limits: LimitsConfig {
            kinds: vec![limit("kind=echo,running=1")],
            lease,
        },
        ..CoordinatorConfig::default()
    };
    let mut core = CoordinatorCore::new(config);
    let t0 = Instant::now();
    core.update_node(NodeInfo::up("node-b", ["kind:echo"]), t0);
    let ids: Vec<_> = (0..3)
        .map(|i| core.submit(Job::new("echo", i.to_string()), t0).unwrap())
        .collect();
    let other = core.submit(Job::new("other", ""), t0);
    assert!(other.is_ok());
    assert_eq!(core.stats().waiting_for_limit, 3);
    // Not before the leader (this node) has waited a lease.
    assert!(core
        .drain_actions()
        .all(|a| !matches!(a, Action::Dispatch { .. })));
    let mut now = t0;
    let mut order = Vec::new();
    while order.len() < 3 {
        now += Duration::from_millis(20);
        assert!(
            now < t0 + Duration::from_secs(5),
            "stuck: {:?}",
            core.stats()
        );
        core.tick(now);
        let dispatched: Vec<Job> = core
            .drain_actions()
            .filter_map(|a| match a {
                Action::Dispatch { job, .. } => Some(job),
                _ => None,
            })
            .collect();
        assert!(dispatched.len() <= 1, "one at a time: {dispatched:?}");
        assert!(now >= t0 + lease || dispatched.is_empty());
        for job in dispatched {
            let result =
                JobResult::success(job.id.clone(), "", "node-b", job.attempt, Duration::ZERO);
            order.push(job.id);
            core.result_received(result, "node-b", now);
        }
    }
    assert_eq!(order, ids);
    assert_eq!(core.stats().waiting_for_limit, 0);
    assert_eq!(core.stats().limits[0].running_here, 0);
}

#[test]
fn a_leader_that_sees_a_node_newly_live_grants_nothing_more_for_a_lease() {
    let lease = Duration::from_millis(500);
    let mut sim = Sim::new(
        &["a", "b", "c"],
        "kind=sleep,running=2",
        lease,
        Duration::from_millis(20),
    );
    sim.submit("b", 400);
    sim.run_until(Duration::from_secs(10), |sim| sim.nodes["b"].finished >= 20);
    // A node the leader did not know (a joiner, a healed partition) may
    // still use another leader's grants.
    let seen = sim.now;
    let tag = limit("kind=sleep,running=2").tag();
    sim.nodes
        .get_mut("a")
        .unwrap()
        .engine
        .observe_node("z", true, &[tag], seen);
    sim.submit("c", 50);
    let b_before = sim.nodes["b"].started.len();
    sim.run_until(Duration::from_secs(10), |sim| {
        sim.now >= seen + lease - STEP * 2
    });
    assert!(
        sim.nodes["c"].started.is_empty(),
        "c got a share during the wait"
    );
    assert!(
        sim.nodes["b"].started.len() > b_before,
        "b's share was renewed"
    );
    sim.run_until(Duration::from_secs(20), |sim| sim.nodes["c"].finished == 50);
    assert!(sim.max_running <= 2);
}
