//! Load-balancing strategies: one [`Strategy`] trait, one file and one struct
//! per strategy.
//!
//! Eligibility is settled *before* a strategy runs: the coordinator hands it
//! only candidates that are Up, carry every required tag and serve the job's
//! kind, sorted by node name. A strategy only picks among them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::Job;

mod earliest_finish;
mod least_cpu;
mod least_in_flight;
mod lowest_latency;
mod random;
mod round_robin;

pub use earliest_finish::EarliestFinish;
pub use least_cpu::LeastCpu;
pub use least_in_flight::LeastInFlight;
pub use lowest_latency::LowestLatency;
pub use random::Random;
pub use round_robin::RoundRobin;

/// What a strategy knows about one eligible node.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate<'a> {
    /// The node's name.
    pub node: &'a str,
    /// Attempts this coordinator has dispatched to the node and not yet seen
    /// finish.
    pub outstanding: u32,
    /// In-flight jobs the node last reported through gossip.
    pub reported_in_flight: u32,
    /// Queue depth the node last reported through gossip.
    pub reported_queue_depth: u32,
    /// CPU use in percent (0..=100 per core summed as the node reports it),
    /// from gossip; `None` until reported.
    pub cpu: Option<f32>,
    /// EWMA of measured round trips (dispatch to result); `None` until
    /// measured. Zero for the coordinator's own node: jobs reach its pool
    /// in-process, with no network between them.
    pub latency: Option<Duration>,
    /// The node's concurrency (worker loops) if it advertises it
    /// (`workers:<k>`).
    pub concurrency: Option<u32>,
    /// The mean processing time of the job's kind on this node, as this
    /// coordinator measured it; `None` before the first sample.
    pub service_time: Option<Duration>,
    /// The link's own round trip to the node: the smallest (round trip
    /// minus processing time) of the last 10 to 20 s, without queueing;
    /// `None` until measured.
    pub link_rtt: Option<Duration>,
    /// Whether the node's dispatch window has room for the job now. Only a
    /// strategy that [waits for full nodes](Strategy::waits_for_full_nodes)
    /// is shown nodes without room; picking one makes the job wait in the
    /// coordinator's ready queue for that node.
    pub has_room: bool,
    /// Jobs waiting in the coordinator's ready queue besides this one (the
    /// same for every candidate).
    pub backlog: u32,
}

impl Candidate<'_> {
    /// The best estimate of the node's current load in jobs: the larger of
    /// what this coordinator knows it sent and what the node reported.
    pub fn load_estimate(&self) -> u32 {
        self.outstanding.max(
            self.reported_in_flight
                .saturating_add(self.reported_queue_depth),
        )
    }
}

/// Picks one node among eligible candidates.
pub trait Strategy: Send + fmt::Debug {
    /// The strategy's name (as [`StrategyKind`] prints it for built-ins).
    fn name(&self) -> &'static str;

    /// Returns the index in `candidates` of the chosen node, or `None` if
    /// `candidates` is empty. `candidates` are sorted by node name.
    fn select(&mut self, job: &Job, candidates: &[Candidate<'_>]) -> Option<usize>;

    /// Whether the strategy is shown eligible nodes whose window is full
    /// too ([`Candidate::has_room`] false), so that it can choose to wait
    /// for a better node rather than take a worse one with room (default
    /// false: only nodes with room are candidates).
    fn waits_for_full_nodes(&self) -> bool {
        false
    }
}

/// The built-in strategies, as named on the wire and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StrategyKind {
    /// [`Random`].
    Random,
    /// [`RoundRobin`].
    RoundRobin,
    /// [`LeastInFlight`].
    LeastInFlight,
    /// [`LowestLatency`].
    LowestLatency,
    /// [`LeastCpu`].
    LeastCpu,
    /// [`EarliestFinish`] (the default).
    EarliestFinish,
}

impl StrategyKind {
    /// Every built-in strategy.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Random,
        StrategyKind::RoundRobin,
        StrategyKind::LeastInFlight,
        StrategyKind::LowestLatency,
        StrategyKind::LeastCpu,
        StrategyKind::EarliestFinish,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Random => "random",
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::LeastInFlight => "least-in-flight",
            StrategyKind::LowestLatency => "lowest-latency",
            StrategyKind::LeastCpu => "least-cpu",
            StrategyKind::EarliestFinish => "earliest-finish",
        }
    }

    /// A fresh instance; `seed` feeds the random strategy (for reproducible
    /// tests), `None` seeds it from the OS.
    pub fn build(self, seed: Option<u64>) -> Box<dyn Strategy> {
        match self {
            StrategyKind::Random => Box::new(match seed {
                Some(seed) => Random::with_seed(seed),
                None => Random::new(),
            }),
            StrategyKind::RoundRobin => Box::new(RoundRobin::new()),
            StrategyKind::LeastInFlight => Box::new(LeastInFlight::new()),
            StrategyKind::LowestLatency => Box::new(LowestLatency::new()),
            StrategyKind::LeastCpu => Box::new(LeastCpu::new()),
            StrategyKind::EarliestFinish => Box::new(EarliestFinish::new()),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the built-in strategies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {0:?} (expected random, round-robin, least-in-flight, lowest-latency, least-cpu or earliest-finish)")]
pub struct ParseStrategyError(pub String);

impl FromStr for StrategyKind {
    type Err = ParseStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseStrategyError(s.to_owned()))
    }
}

/// The index of the candidate with the smallest `key`; ties go to the
/// earlier (lower-named) candidate.
pub(crate) fn min_by_key<K: PartialOrd>(
    candidates: &[Candidate<'_>],
    key: impl Fn(&Candidate<'_>) -> K,
) -> Option<usize> {
    let mut best: Option<(usize, K)> = None;
    for (i, c) in candidates.iter().enumerate() {
        let k = key(c);
        if best.as_ref().is_none_or(|(_, b)| k < *b) {
            best = Some((i, k));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Candidate;

    /// Idle candidates named `names`.
    pub(crate) fn idle<'a>(names: &[&'a str]) -> Vec<Candidate<'a>> {
        names
            .iter()
            .map(|n| Candidate {
                node: n,
                outstanding: 0,
                reported_in_flight: 0,
                reported_queue_depth: 0,
                cpu: None,
                latency: None,
                concurrency: None,
                service_time: None,
                has_room: true,
                backlog: 0,
                link_rtt: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.to_string().parse::<StrategyKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(kind.build(Some(1)).name(), kind.as_str());
        }
        assert!("fastest".parse::<StrategyKind>().is_err());
    }

    #[test]
    fn every_strategy_declines_empty_candidates() {
        let job = Job::new("k", "");
        for kind in StrategyKind::ALL {
            assert_eq!(kind.build(Some(1)).select(&job, &[]), None);
        }
    }
}
