//! [`RoundRobin`]: eligible nodes in turn, exactly evenly.

use super::{Candidate, Strategy};
use crate::job::Job;

/// Takes eligible nodes in name order, one after the other.
///
/// It remembers the last node chosen, not a counter, so when the candidate
/// set changes (a node joins, a job needs a tag) it continues with the next
/// name after the last one instead of skipping or repeating nodes. Over a
/// fixed candidate set, every node receives exactly the same number of jobs
/// (within one).
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: Option<String>,
}

impl RoundRobin {
    /// A round robin that starts with the first node by name.
    pub fn new() -> Self {
        RoundRobin::default()
    }
}

impl Strategy for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let index = match &self.last {
            Some(last) => candidates
                .iter()
                .position(|c| c.node > last.as_str())
                .unwrap_or(0),
            None => 0,
        };
        let chosen = candidates[index].node;
        match &mut self.last {
            Some(last) => {
                last.clear();
                last.push_str(chosen);
            }
            None => self.last = Some(chosen.to_owned()),
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    #[test]
    fn spreads_exactly_evenly() {
        let nodes = idle(&["a", "b", "c", "d"]);
        let mut strategy = RoundRobin::new();
        let job = Job::new("k", "");
        let mut counts = [0u32; 4];
        for _ in 0..1000 {
            counts[strategy.select(&job, &nodes).unwrap()] += 1;
        }
        assert_eq!(counts, [250; 4]);
    }

    #[test]
    fn continues_after_membership_changes() {
        let mut strategy = RoundRobin::new();
        let job = Job::new("k", "");
        let abc = idle(&["a", "b", "c"]);
        assert_eq!(abc[strategy.select(&job, &abc).unwrap()].node, "a");
        assert_eq!(abc[strategy.select(&job, &abc).unwrap()].node, "b");
        let ac = idle(&["a", "c"]);
        assert_eq!(ac[strategy.select(&job, &ac).unwrap()].node, "c");
        assert_eq!(ac[strategy.select(&job, &ac).unwrap()].node, "a");
        assert_eq!(abc[strategy.select(&job, &abc).unwrap()].node, "b");
    }
}
