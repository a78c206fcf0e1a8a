//! The failure detector: a sans-IO state machine, the clock is passed in.
//!
//! A member is alive while its heartbeat counter keeps advancing. The
//! detector remembers, per node, the local instant at which progress was
//! last observed (directly or through gossip from a third node) and turns
//! the silence since then into a [`Verdict`].

use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::addr::NodeId;

/// What the detector thinks of a node right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Progress seen less than `suspect_after` ago.
    Alive,
    /// Silent for at least `suspect_after`.
    Suspect,
    /// Silent for at least `down_after`.
    Down,
}

/// Timeout-based failure detector (Up -> Suspect -> Down).
#[derive(Debug)]
pub(crate) struct FailureDetector {
    suspect_after: Duration,
    down_after: Duration,
    last_progress: HashMap<NodeId, Instant>,
}

impl FailureDetector {
    /// A detector with the two thresholds; `down_after` is raised to at
    /// least `suspect_after`.
    pub(crate) fn new(suspect_after: Duration, down_after: Duration) -> Self {
        Self {
            suspect_after,
            down_after: down_after.max(suspect_after),
            last_progress: HashMap::new(),
        }
    }

    /// Records that `node` made progress (its heartbeat or incarnation grew).
    pub(crate) fn progress(&mut self, node: &NodeId, now: Instant) {
        match self.last_progress.get_mut(node) {
            Some(t) => *t = (*t).max(now),
            None => {
                self.last_progress.insert(node.clone(), now);
            }
        }
    }

    /// Forgets `node` (it left, or it is this node).
    pub(crate) fn forget(&mut self, node: &NodeId) {
        self.last_progress.remove(node);
    }

    /// How long `node` has been silent, if it is tracked.
    pub(crate) fn silence(&self, node: &NodeId, now: Instant) -> Option<Duration> {
        self.last_progress
            .get(node)
            .map(|t| now.saturating_duration_since(*t))
    }

    /// The verdict on `node` at `now`; an untracked node is [`Verdict::Alive`]
    /// (it has not been observed yet, so it cannot have gone silent).
    pub(crate) fn verdict(&self, node: &NodeId, now: Instant) -> Verdict {
        match self.silence(node, now) {
            Some(s) if s >= self.down_after => Verdict::Down,
            Some(s) if s >= self.suspect_after => Verdict::Suspect,
            _ => Verdict::Alive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn silence_turns_into_suspect_then_down() {
        let t0 = Instant::now();
        let n = NodeId::new("n").unwrap();
        let mut d = FailureDetector::new(ms(300), ms(600));
        assert_eq!(d.verdict(&n, t0), Verdict::Alive);
        d.progress(&n, t0);
        assert_eq!(d.verdict(&n, t0 + ms(299)), Verdict::Alive);
        assert_eq!(d.verdict(&n, t0 + ms(300)), Verdict::Suspect);
        assert_eq!(d.verdict(&n, t0 + ms(599)), Verdict::Suspect);
        assert_eq!(d.verdict(&n, t0 + ms(600)), Verdict::Down);
        d.progress(&n, t0 + ms(650));
        assert_eq!(d.verdict(&n, t0 + ms(700)), Verdict::Alive);
    }

    #[test]
    fn progress_never_moves_backwards_and_forget_resets() {
        let t0 = Instant::now();
        let n = NodeId::new("n").unwrap();
        let mut d = FailureDetector::new(ms(300), ms(100));
        d.progress(&n, t0 + ms(500));
        d.progress(&n, t0);
        assert_eq!(d.silence(&n, t0 + ms(600)), Some(ms(100)));
        // down_after is raised to suspect_after.
        assert_eq!(d.verdict(&n, t0 + ms(800)), Verdict::Down);
        assert_eq!(d.verdict(&n, t0 + ms(799)), Verdict::Alive);
        d.forget(&n);
        assert_eq!(d.silence(&n, t0), None);
    }
}
