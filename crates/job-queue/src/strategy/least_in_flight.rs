//! [`LeastInFlight`]: the node with the fewest jobs in progress.

use super::{min_by_key, Candidate, Strategy};
use crate::job::Job;

/// Picks the node with the smallest [`Candidate::load_estimate`]; ties go to
/// the lower node name.
#[derive(Debug, Default)]
pub struct LeastInFlight;

impl LeastInFlight {
    /// The strategy (stateless).
    pub fn new() -> Self {
        LeastInFlight
    }
}

impl Strategy for LeastInFlight {
    fn name(&self) -> &'static str {
        "least-in-flight"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        min_by_key(candidates, |c| c.load_estimate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    #[test]
    fn avoids_the_busy_node() {
        let mut nodes = idle(&["a", "b", "c"]);
        nodes[0].outstanding = 5;
        nodes[1].reported_in_flight = 2;
        nodes[1].reported_queue_depth = 2;
        nodes[2].outstanding = 3;
        let job = Job::new("k", "");
        assert_eq!(LeastInFlight::new().select(&job, &nodes), Some(2));
        nodes[2].reported_in_flight = 9;
        assert_eq!(LeastInFlight::new().select(&job, &nodes), Some(1));
    }
}
