//! Per-node statistics kept by a coordinator, and their serializable
//! snapshot for the HTTP layer.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;

/// Processing-time figures, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingSnapshot {
    /// Samples (results that reported a processing time).
    pub samples: u64,
    /// Mean processing time.
    pub avg_ms: f64,
    /// Median processing time (within 6.25 %).
    pub p50_ms: f64,
    /// 99th percentile processing time (within 6.25 %).
    pub p99_ms: f64,
    /// Largest processing time.
    pub max_ms: f64,
}

/// Figures for one job kind on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindStatsSnapshot {
    /// The job kind.
    pub kind: String,
    /// Attempts that succeeded.
    pub completed: u64,
    /// Attempts that failed (any cause).
    pub failed: u64,
    /// Processing times.
    pub timing: TimingSnapshot,
}

/// Figures for one worker node, as seen by one coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatsSnapshot {
    /// The node's name.
    pub node: String,
    /// Attempts that succeeded.
    pub completed: u64,
    /// Attempts that failed (any cause).
    pub failed: u64,
    /// Attempts dispatched and not yet finished.
    pub in_flight: u64,
    /// EWMA of measured round trips, in milliseconds (0 until measured).
    pub latency_ms: f64,
    /// Processing times over all kinds.
    pub timing: TimingSnapshot,
    /// Per job kind, sorted by kind.
    pub kinds: Vec<KindStatsSnapshot>,
}

/// A coordinator's statistics at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Jobs accepted.
    pub submitted: u64,
    /// Jobs that finished successfully.
    pub succeeded: u64,
    /// Jobs that finished with an error (dead-lettered, not retryable, or
    /// cancelled).
    pub failed: u64,
    /// Of `failed`, the jobs cancelled by a caller.
    #[serde(default)]
    pub cancelled: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Jobs in progress.
    pub in_progress: u64,
    /// Jobs currently in the dead-letter list.
    pub dead_letters: u64,
    /// Late or duplicate results dropped.
    pub late_results: u64,
    /// Jobs waiting in the ready queue for a node's dispatch window.
    #[serde(default)]
    pub queued: u64,
    /// Dispatches refused by full worker pools (placed again, not counted
    /// as attempts).
    #[serde(default)]
    pub refusals: u64,
    /// Jobs waiting for a cluster-wide limit of their kind (a running
    /// slot or a start token), not counted in `queued`.
    #[serde(default)]
    pub waiting_for_limit: u64,
    /// The cluster-wide limits, by kind, as this coordinator sees them.
    #[serde(default)]
    pub limits: Vec<crate::limits::LimitSnapshot>,
    /// Speculative backups started (straggling attempts run again on
    /// another node).
    #[serde(default)]
    pub speculative_started: u64,
    /// Jobs whose speculative backup finished first.
    #[serde(default)]
    pub speculative_won: u64,
    /// Per node, sorted by node name.
    pub nodes: Vec<NodeStatsSnapshot>,
}

#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    failed: u64,
    timing: Histogram,
}

impl Tally {
    fn record(&mut self, success: bool, elapsed: Option<Duration>) {
        if success {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        if let Some(elapsed) = elapsed {
            self.timing.record(elapsed);
        }
    }
}

/// Milliseconds with microsecond precision: whole microseconds divided
/// once, so JSON shows `0.042`, never `0.041999999999999996`.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

fn timing_snapshot(h: &Histogram) -> TimingSnapshot {
    TimingSnapshot {
        samples: h.count(),
        avg_ms: ms(h.mean()),
        p50_ms: ms(h.quantile(0.5)),
        p99_ms: ms(h.quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

/// Finished-attempt statistics of one node.
#[derive(Debug, Default)]
pub(crate) struct NodeStats {
    all: Tally,
    kinds: FxHashMap<Arc<str>, Tally>,
}

impl NodeStats {
    /// Records one finished attempt of `kind`; `elapsed` is the worker's
    /// processing time when the worker reported one.
    pub(crate) fn record(&mut self, kind: &str, success: bool, elapsed: Option<Duration>) {
        self.all.record(success, elapsed);
        match self.kinds.get_mut(kind) {
            Some(tally) => tally.record(success, elapsed),
            None => {
                let mut tally = Tally::default();
                tally.record(success, elapsed);
                self.kinds.insert(Arc::from(kind), tally);
            }
        }
    }

    /// The mean processing time of `kind` here, if any attempt of it
    /// reported one.
    pub(crate) fn mean_of(&self, kind: &str) -> Option<Duration> {
        let tally = self.kinds.get(kind)?;
        (tally.timing.count() > 0).then(|| tally.timing.mean())
    }

    /// The `q` quantile of `kind`'s processing time here, once at least
    /// `min_samples` attempts of it reported one.
    pub(crate) fn quantile_of(&self, kind: &str, q: f64, min_samples: u64) -> Option<Duration> {
        let tally = self.kinds.get(kind)?;
        let count = tally.timing.count();
        (count > 0 && count >= min_samples).then(|| tally.timing.quantile(q))
    }

    /// The snapshot of this node.
    pub(crate) fn snapshot(
        &self,
        node: &str,
        in_flight: u64,
        latency: Option<Duration>,
    ) -> NodeStatsSnapshot {
        let mut kinds: Vec<KindStatsSnapshot> = self
            .kinds
            .iter()
            .map(|(kind, t)| KindStatsSnapshot {
                kind: kind.to_string(),
                completed: t.completed,
                failed: t.failed,
                timing: timing_snapshot(&t.timing),
            })
            .collect();
        kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
        NodeStatsSnapshot {
            node: node.to_owned(),
            completed: self.all.completed,
            failed: self.all.failed,
            in_flight,
            latency_ms: latency.map_or(0.0, ms),
            timing: timing_snapshot(&self.all.timing),
            kinds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_kind_figures() {
        let mut stats = NodeStats::default();
        for ms in 1..=100 {
            stats.record("resize", true, Some(Duration::from_millis(ms)));
        }
        stats.record("resize", false, None);
        stats.record("echo", false, Some(Duration::from_millis(3)));
        let snap = stats.snapshot("node-a", 2, Some(Duration::from_millis(4)));
        assert_eq!((snap.completed, snap.failed, snap.in_flight), (100, 2, 2));
        assert_eq!(snap.latency_ms, 4.0);
        assert_eq!(snap.kinds.len(), 2);
        assert_eq!(snap.kinds[0].kind, "echo");
        let resize = &snap.kinds[1];
        assert_eq!((resize.completed, resize.failed), (100, 1));
        assert!((resize.timing.avg_ms - 50.5).abs() < 0.01);
        assert!((resize.timing.p50_ms - 50.0).abs() < 3.5);
        assert!((resize.timing.p99_ms - 99.0).abs() < 6.5);
        let json = serde_json::to_string(&snap).unwrap();
        let back: NodeStatsSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!((back.node.as_str(), back.kinds.len()), ("node-a", 2));
        assert!((back.timing.avg_ms - snap.timing.avg_ms).abs() < 1e-9);
    }
}
