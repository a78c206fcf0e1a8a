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
/// - `rtt`: the round-trip EWMA ([`Candidate::latency`], 0 until measured).
///
/// Ties go to the lower node name. So a node twice as fast gets about
/// twice the work, a node whose queue is long gets less, and a slow or
/// distant node is used only while the others are busier.
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
        let rtt = c.latency.unwrap_or_default().as_secs_f64();
        Duration::from_secs_f64((rtt + queue + service).min(1e9))
    }
}

/// The median of the known service times.
fn median_service(candidates: &[Candidate<'_>]) -> Duration {
    let mut known: Vec<Duration> = candidates.iter().filter_map(|c| c.service_time).collect();
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
        min_by_key(candidates, |c| Self::expected(c, fallback))
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
        // A long round trip counts too.
        nodes[1].latency = Some(100 * MS);
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
}
