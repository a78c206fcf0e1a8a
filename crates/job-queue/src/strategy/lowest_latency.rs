//! [`LowestLatency`]: the node with the lowest measured round trip.

use std::time::Duration;

use super::{min_by_key, Candidate, Strategy};
use crate::job::Job;

/// Picks the node with the lowest EWMA round trip, as the coordinator
/// measures it per node. Nodes not yet measured count as zero latency, so
/// each gets probed once; ties go to the less loaded, then lower-named node.
#[derive(Debug, Default)]
pub struct LowestLatency;

impl LowestLatency {
    /// The strategy (stateless; the EWMA lives in the coordinator).
    pub fn new() -> Self {
        LowestLatency
    }
}

impl Strategy for LowestLatency {
    fn name(&self) -> &'static str {
        "lowest-latency"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        min_by_key(candidates, |c| {
            (c.latency.unwrap_or(Duration::ZERO), c.load_estimate())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    #[test]
    fn prefers_the_low_ewma_node() {
        let mut nodes = idle(&["a", "b", "c"]);
        nodes[0].latency = Some(Duration::from_millis(9));
        nodes[1].latency = Some(Duration::from_millis(2));
        nodes[2].latency = Some(Duration::from_millis(4));
        let job = Job::new("k", "");
        assert_eq!(LowestLatency::new().select(&job, &nodes), Some(1));
        nodes[2].latency = None;
        assert_eq!(
            LowestLatency::new().select(&job, &nodes),
            Some(2),
            "unmeasured is probed"
        );
    }
}
