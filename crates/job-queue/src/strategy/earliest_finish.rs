//! [`EarliestFinish`]: the node where the job is expected to finish first.

use std::time::Duration;

use super::{min_by_key, Candidate, Strategy};
use crate::job::Job;

/// The smallest service time assumed: 1 ms.
const MIN_SERVICE: Duration = Duration::from_millis(1);

/// Picks the node with the earliest expected completion time (the default
/// strategy). For each candidate:
///
/// ```text
/// expected = rtt + (load / concurrency) * service + service
/// ```
///
/// - `service`: the mean processing time of the job's kind on that node
///   ([`Candidate::service_time`], measured by this coordinator); a node
///   with no sample yet is taken at the median of the candidates that have
///   one, and at least 1 ms (so that, before any measurement, an idle
///   node beats a busy one);
/// - `load`: the jobs ahead of it there ([`Candidate::load_estimate`]),
///   each assumed to take `service` too (an approximation when kinds mix);
/// - `concurrency`: the node's worker loops (`workers:<k>`, 1 if unknown);
/// - `rtt`: the link's own round trip ([`Candidate::link_rtt`], 0 until
///   measured). Not the round-trip EWMA ([`Candidate::latency`]): that one
///   includes the time in the node's queue and handler, which the other
///   terms already count, and on a node rarely used it stays stale (one
///   slow job kept such a node out of use).
///
///
/// Ties go to the lower node name. So a node twice as fast gets about
/// twice the work, a node whose queue is long gets less, and a slow or
/// distant node is used only while the others are busier.
///
/// **Waiting for a better node.** The strategy also sees nodes whose
/// dispatch window is full ([`Strategy::waits_for_full_nodes`]): if such a
/// node is expected to finish the job first, the job waits for it in the
/// coordinator's ready queue instead of going to a slower node that has
/// room, unless the jobs waiting behind it (`backlog`) would keep every
/// node busy anyway:
///
/// ```text
/// wait  iff  expected(best full) + backlog / rate < expected(best with room)
/// rate = sum over candidates of concurrency / service
/// ```
///
/// Under a backlog the slow node takes its share; at the end of a batch
/// (or at moderate load) it no longer gets jobs the fast nodes would
/// finish sooner.
#[derive(Debug, Default)]
pub struct EarliestFinish;

impl EarliestFinish {
    /// The strategy (stateless).
    pub fn new() -> Self {
        EarliestFinish
    }

    /// The expected completion time on `c`, given the `fallback` service
    /// time for a node without samples.
    pub fn expected(c: &Candidate<'_>, fallback: Duration) -> Duration {
        // At least `MIN_SERVICE`: with nothing measured yet, the jobs ahead
        // must still count (an idle node beats a busy one).
        let service = c
            .service_time
            .unwrap_or(fallback)
            .max(MIN_SERVICE)
            .as_secs_f64();
        let workers = f64::from(c.concurrency.unwrap_or(1).max(1));
        let queue = f64::from(c.load_estimate()) / workers * service;
        let rtt = c.link_rtt.unwrap_or_default().as_secs_f64();
        Duration::from_secs_f64((rtt + queue + service).min(1e9))
    }
}

/// How long the candidates together take to run the coordinator's backlog.
fn drain_time(candidates: &[Candidate<'_>], fallback: Duration) -> Duration {
    let rate: f64 = candidates
        .iter()
        .map(|c| {
            let service = c.service_time.unwrap_or(fallback).max(MIN_SERVICE);
            f64::from(c.concurrency.unwrap_or(1).max(1)) / service.as_secs_f64()
        })
        .sum();
    let backlog = f64::from(candidates.first().map_or(0, |c| c.backlog));
    Duration::from_secs_f64((backlog / rate.max(1e-9)).min(1e9))
}

/// The median of the known service times (on the stack for up to 8
/// candidates: this runs once per placement).
fn median_service(candidates: &[Candidate<'_>]) -> Duration {
    let mut known: smallvec::SmallVec<[Duration; 8]> =
        candidates.iter().filter_map(|c| c.service_time).collect();
    if known.is_empty() {
        return Duration::ZERO;
    }
    known.sort_unstable();
    known[known.len() / 2]
}

impl Strategy for EarliestFinish {
    fn name(&self) -> &'static str {
        "earliest-finish"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        let fallback = median_service(candidates);
        let expected = |c: &Candidate<'_>| Self::expected(c, fallback);
        let best = min_by_key(candidates, expected)?;
        if candidates[best].has_room {
            return Some(best);
        }
        let mut room: Option<(usize, Duration)> = None;
        for (i, c) in candidates.iter().enumerate().filter(|(_, c)| c.has_room) {
            let e = expected(c);
            if room.is_none_or(|(_, r)| e < r) {
                room = Some((i, e));
            }
        }
        let Some((room, room_expected)) = room else {
            return Some(best);
        };
        let waiting = expected(&candidates[best]) + drain_time(candidates, fallback);
        Some(if room_expected <= waiting { room } else { best })
    }

    fn waits_for_full_nodes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn prefers_the_node_that_finishes_first() {
        let job = Job::new("k", "");
        let mut nodes = idle(&["fast", "slow"]);
        nodes[0].service_time = Some(10 * MS);
        nodes[1].service_time = Some(40 * MS);
        for c in &mut nodes {
            c.concurrency = Some(2);
        }
        let mut s = EarliestFinish::new();
        assert_eq!(s.select(&job, &nodes), Some(0), "both idle: the fast one");
        // fast: 6 ahead on 2 loops -> 30 + 10 = 40 ms; slow: 40 ms. Tie: fast.
        nodes[0].outstanding = 6;
        assert_eq!(s.select(&job, &nodes), Some(0));
        nodes[0].outstanding = 8; // 40 + 10 = 50 ms > 40 ms
        assert_eq!(s.select(&job, &nodes), Some(1));
        // A long round trip counts too (the link's, not the EWMA).
        nodes[0].latency = Some(500 * MS);
        assert_eq!(s.select(&job, &nodes), Some(1));
        nodes[1].link_rtt = Some(100 * MS);
        assert_eq!(s.select(&job, &nodes), Some(0));
    }

    #[test]
    fn an_unmeasured_node_counts_as_the_median() {
        let job = Job::new("k", "");
        let mut nodes = idle(&["a", "b", "new"]);
        nodes[0].service_time = Some(10 * MS);
        nodes[1].service_time = Some(30 * MS);
        nodes[0].outstanding = 3;
        nodes[1].outstanding = 1;
        nodes[2].outstanding = 1;
        // a: 40 ms, b: 60 ms, new: at the median (30 ms) -> 60 ms.
        assert_eq!(EarliestFinish::new().select(&job, &nodes), Some(0));
        assert_eq!(median_service(&idle(&["x"])), Duration::ZERO);
        assert_eq!(
            EarliestFinish::new().select(&job, &idle(&["x", "y"])),
            Some(0)
        );
        // Nothing measured: the idle node, not the one with jobs queued.
        let mut fresh = idle(&["busy", "idle"]);
        fresh[0].outstanding = 3;
        assert_eq!(EarliestFinish::new().select(&job, &fresh), Some(1));
    }

    #[test]
    fn waits_for_a_full_fast_node_unless_a_backlog_keeps_every_node_busy() {
        let job = Job::new("k", "");
        let mut nodes = idle(&["fast", "slow"]);
        nodes[0].service_time = Some(10 * MS);
        nodes[1].service_time = Some(40 * MS);
        for c in &mut nodes {
            c.concurrency = Some(2);
        }
        // fast: full, 6 ahead -> 40 ms; slow: room, 2 ahead -> 80 ms.
        nodes[0].outstanding = 6;
        nodes[0].has_room = false;
        nodes[1].outstanding = 2;
        let mut s = EarliestFinish::new();
        assert!(s.waits_for_full_nodes());
        assert_eq!(s.select(&job, &nodes), Some(0), "wait for the fast node");
        // 20 jobs behind: 20 / (2/10 ms + 2/40 ms) = 80 ms of work for the
        // whole cluster: 40 + 80 > 80, the slow node takes this one now.
        for c in &mut nodes {
            c.backlog = 20;
        }
        assert_eq!(s.select(&job, &nodes), Some(1));
        // No node with room: the best full one (the coordinator waits).
        nodes[1].has_room = false;
        assert_eq!(s.select(&job, &nodes), Some(0));
    }
}
