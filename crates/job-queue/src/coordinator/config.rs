//! Settings of a coordinator: [`CoordinatorConfig`] and [`Backoff`].

use std::time::Duration;

use rand::Rng;

use crate::strategy::StrategyKind;

/// Exponential backoff with equal jitter between attempts.
///
/// The delay before attempt `n + 1` (after `n` failed attempts) is
/// `d = min(base * factor^(n-1), max)`, then jittered uniformly into
/// `d/2 ..= d` so that retries from many jobs do not synchronise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure, before jitter.
    pub base: Duration,
    /// The growth factor per failed attempt (>= 1.0).
    pub factor: f64,
    /// The ceiling, before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The un-jittered delay after `failures` failed attempts (>= 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(64) as i32;
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let secs = self.base.as_secs_f64() * factor.powi(exp);
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// The jittered delay after `failures` failed attempts.
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.gen_range(0..=spread))
    }
}

/// Settings of a [`CoordinatorCore`](crate::CoordinatorCore).
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// The coordinator's node name; generated ids are `<node>-<counter>`.
    pub node: String,
    /// The strategy used when a job does not name one.
    pub strategy: StrategyKind,
    /// Delays between attempts.
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
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            node: "local".to_owned(),
            strategy: StrategyKind::RoundRobin,
            backoff: Backoff::default(),
            max_jobs: 1_000_000,
            max_dead_letters: 10_000,
            seed: None,
            default_window: 1024,
            refusal_backoff: Duration::from_millis(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(30), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        for failures in 1..10 {
            let d = b.delay(failures, &mut rng);
            let c = b.ceiling(failures);
            assert!(d >= c / 2 && d <= c, "{d:?} outside {c:?}");
        }
    }
}
