//! Adaptive dispatch windows: how many attempts a coordinator keeps
//! outstanding on a node that advertises its concurrency (`workers:<k>`).
//!
//! The window is a congestion window driven by delay, as in TCP Vegas or
//! LEDBAT: each result tells how long its job waited before it ran (the
//! round trip measured by the coordinator minus the processing time the
//! worker reports: time in the node's queue, on the links and in batches).
//! While that wait stays under the target (`CoordinatorConfig::queue_target`,
//! 50 ms by default) and the window is in use, the window grows by one per
//! result (doubling per round trip, like slow start); when the wait is over
//! the target it shrinks by half a job per result (halving per round trip).
//! It never goes below twice the node's concurrency (every worker busy,
//! one more job ready for each) nor above the node's advertised capacity.
//!
//! So a node holds about `queue_target` worth of unstarted work, however
//! fast its jobs are: thousands of no-op jobs, or a couple of slow ones.
//! Work beyond that waits in the coordinator's ready queue, where a node
//! that joins, or has room, takes it.

use std::time::Duration;

/// The prefix of the tag with which a node advertises its concurrency
/// (worker loops): `workers:<k>`.
pub const CONCURRENCY_TAG_PREFIX: &str = "workers:";

/// The tag advertising `k` concurrent workers (`workers:<k>`).
pub fn concurrency_tag(k: u32) -> String {
    format!("{CONCURRENCY_TAG_PREFIX}{k}")
}

/// The concurrency a node advertises, if any (the first valid
/// `workers:<k>` with `k >= 1`).
pub(crate) fn advertised_concurrency(tags: &[String]) -> Option<u32> {
    tags.iter()
        .filter_map(|t| t.strip_prefix(CONCURRENCY_TAG_PREFIX)?.parse().ok())
        .find(|k| *k >= 1)
}

/// The delay-driven window of one node (see the module guide).
#[derive(Clone, Debug)]
pub(crate) struct AdaptiveWindow {
    concurrency: u32,
    cwnd: f64,
    target: Duration,
}

impl AdaptiveWindow {
    /// A window for a node running `concurrency` jobs at once, starting at
    /// its floor.
    pub(crate) fn new(concurrency: u32, target: Duration) -> Self {
        let mut window = AdaptiveWindow {
            concurrency: concurrency.max(1),
            cwnd: 0.0,
            target,
        };
        window.cwnd = f64::from(window.floor());
        window
    }

    /// The node's concurrency.
    pub(crate) fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Twice the concurrency (at least 2).
    fn floor(&self) -> u32 {
        self.concurrency.saturating_mul(2).max(2)
    }

    /// The window now, at most `ceiling` (the advertised capacity).
    pub(crate) fn size(&self, ceiling: u32) -> u32 {
        (self.cwnd as u32).clamp(1, ceiling.max(1))
    }

    /// A result whose job waited `waited` before it ran, with
    /// `outstanding` attempts on the node (counting this one).
    pub(crate) fn observe(&mut self, waited: Duration, outstanding: u32, ceiling: u32) {
        let floor = f64::from(self.floor().min(ceiling.max(1)));
        let ceiling = f64::from(ceiling.max(1));
        if waited <= self.target {
            // Grow only a window in use: an idle node's window must not
            // swell, or the next burst would strand on it.
            if f64::from(outstanding) + 1.0 >= self.cwnd {
                self.cwnd = (self.cwnd + 1.0).min(ceiling);
            }
        } else {
            self.cwnd = (self.cwnd - 0.5).max(floor);
        }
        self.cwnd = self.cwnd.clamp(floor, ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(50);

    #[test]
    fn grows_while_jobs_start_quickly_and_the_window_is_used() {
        let mut w = AdaptiveWindow::new(2, TARGET);
        assert_eq!(w.size(1024), 4, "starts at twice the concurrency");
        for _ in 0..100 {
            let used = w.size(1024);
            w.observe(Duration::from_millis(1), used, 1024);
        }
        assert_eq!(w.size(1024), 104);
        // An idle node (one job outstanding) does not grow it.
        for _ in 0..100 {
            w.observe(Duration::from_millis(1), 1, 1024);
        }
        assert_eq!(w.size(1024), 104);
        for _ in 0..10_000 {
            w.observe(Duration::ZERO, 2000, 1024);
        }
        assert_eq!(w.size(1024), 1024, "never above the capacity");
    }

    #[test]
    fn shrinks_to_twice_the_concurrency_while_jobs_wait() {
        let mut w = AdaptiveWindow::new(3, TARGET);
        for _ in 0..50 {
            w.observe(Duration::ZERO, 1000, 1024);
        }
        assert_eq!(w.size(1024), 56);
        for _ in 0..20 {
            w.observe(Duration::from_millis(200), 56, 1024);
        }
        assert_eq!(w.size(1024), 46);
        for _ in 0..1000 {
            w.observe(Duration::from_secs(1), 56, 1024);
        }
        assert_eq!(w.size(1024), 6);
        assert_eq!(w.size(4), 4, "a small capacity caps even the floor");
    }

    #[test]
    fn concurrency_tags() {
        let tags = vec!["workers:zero".to_owned(), concurrency_tag(8)];
        assert_eq!(advertised_concurrency(&tags), Some(8));
        assert_eq!(advertised_concurrency(&["workers:0".to_owned()]), None);
    }
}
