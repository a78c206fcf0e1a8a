//! Settings of a coordinator: [`CoordinatorConfig`].

use std::time::Duration;

pub use cluster_router::Backoff;

use super::selectors::KindSelectors;
use super::speculation::SpeculationConfig;
use crate::limits::LimitsConfig;
use crate::strategy::StrategyKind;

/// Settings of a [`CoordinatorCore`](crate::CoordinatorCore).
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// The coordinator's node name; generated ids are `<node>-<counter>`.
    pub node: String,
    /// The strategy used when a job does not name one.
    pub strategy: StrategyKind,
    /// Delays between attempts: the retry after `n` failed attempts waits
    /// [`Backoff::delay`] of `n - 1` (default 100 ms doubling up to 10 s,
    /// with equal jitter).
    pub backoff: Backoff,
    /// The most jobs in progress at once; further submissions are refused
    /// with [`SubmitError::AtCapacity`](crate::SubmitError::AtCapacity).
    pub max_jobs: usize,
    /// The most dead letters kept; the oldest is evicted beyond it.
    pub max_dead_letters: usize,
    /// Seed of the jitter and random-strategy generators (`None`: from the
    /// OS). Tests set it for reproducible runs.
    pub seed: Option<u64>,
    /// The dispatch window of a node that does not advertise one with a
    /// `capacity:<n>` tag: the most attempts outstanding on it at once
    /// (at least 1). Jobs beyond every eligible node's window wait in the
    /// coordinator's ready queue.
    pub default_window: u32,
    /// How long a job refused by a full worker pool waits before it is
    /// placed again (the refusal does not count as an attempt).
    pub refusal_backoff: Duration,
    /// Per-kind selectors for exact eligibility: a job of such a kind goes
    /// only to nodes tagged `accept:<kind>:<value>` for its value (a node
    /// running `exec` advertises the programs it allows).
    pub selectors: KindSelectors,
    /// How long a job should wait on a node before it starts: the target
    /// of the adaptive windows of nodes advertising their concurrency
    /// (`workers:<k>`; default 50 ms). A node then holds about this much
    /// unstarted work, at least twice its concurrency in jobs; the rest
    /// waits in the ready queue for whichever node has room first. `None`:
    /// fixed windows (each node's advertised capacity).
    pub queue_target: Option<Duration>,
    /// How long a job waits in the ready queue to gain one priority level
    /// (default 1 s; `Duration::ZERO`: no aging, strict priorities).
    pub priority_aging: Duration,
    /// Cluster-wide limits per kind (running at once, starts per second),
    /// shared with the other coordinators by a lease protocol (see
    /// `docs/jobs.md`, "Cluster-wide limits").
    pub limits: LimitsConfig,
    /// Speculative backups of straggling attempts of idempotent jobs
    /// (`docs/jobs.md`, "Speculative backups").
    pub speculation: SpeculationConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            node: "local".to_owned(),
            strategy: StrategyKind::EarliestFinish,
            backoff: Backoff::default(),
            max_jobs: 1_000_000,
            max_dead_letters: 10_000,
            seed: None,
            default_window: 1024,
            refusal_backoff: Duration::from_millis(20),
            selectors: KindSelectors::default(),
            queue_target: Some(Duration::from_millis(50)),
            priority_aging: Duration::from_secs(1),
            limits: LimitsConfig::default(),
            speculation: SpeculationConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_100_ms_to_10_s() {
        let b = CoordinatorConfig::default().backoff;
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(400));
        assert_eq!(b.ceiling(30), Duration::from_secs(10));
    }
}
