//! [`Random`]: a uniformly random eligible node.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Candidate, Strategy};
use crate::job::Job;

/// Picks a uniformly random eligible node.
#[derive(Debug)]
pub struct Random {
    rng: StdRng,
}

impl Random {
    /// Seeded from the operating system.
    pub fn new() -> Self {
        Random {
            rng: StdRng::from_entropy(),
        }
    }

    /// Seeded deterministically (for reproducible tests).
    pub fn with_seed(seed: u64) -> Self {
        Random {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Default for Random {
    fn default() -> Self {
        Random::new()
    }
}

impl Strategy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn select(&mut self, _job: &Job, candidates: &[Candidate<'_>]) -> Option<usize> {
        if candidates.is_empty() {
            None
        } else {
            Some(self.rng.gen_range(0..candidates.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::idle;

    #[test]
    fn reaches_every_node() {
        let nodes = idle(&["a", "b", "c"]);
        let mut strategy = Random::with_seed(7);
        let job = Job::new("k", "");
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[strategy.select(&job, &nodes).unwrap()] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "skewed: {counts:?}");
        }
    }
}
