//! [`LeastCpu`]: the node with the lowest gossiped CPU use.

use super::{min_by_key, Candidate, Strategy};
use crate::job::Job;

/// Picks the node with the lowest CPU use from gossip. Nodes that have not
/// reported a CPU figure rank after all that have; ties go to the less loaded,
/// then lower-named node.
#[derive(Debug, Default)]
pub struct LeastCpu;

impl LeastCpu {
    /// The strategy (stateless; load comes from gossip).
    pub fn new() -> Self {
        LeastCpu
    }
}

impl Strategy for LeastCpu {
    fn name(&self) -> &'static str {
        "least-cpu"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        min_by_key(candidates, |c| {
            let cpu = c.cpu.filter(|v| v.is_finite()).unwrap_or(f32::INFINITY);
            (cpu, c.load_estimate())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    #[test]
    fn prefers_the_low_load_node() {
        let mut nodes = idle(&["a", "b", "c"]);
        nodes[0].cpu = Some(80.0);
        nodes[1].cpu = Some(15.5);
        nodes[2].cpu = None;
        let job = Job::new("k", "");
        assert_eq!(LeastCpu::new().select(&job, &nodes), Some(1));
        nodes[1].cpu = Some(f32::NAN);
        assert_eq!(LeastCpu::new().select(&job, &nodes), Some(0));
    }
}
