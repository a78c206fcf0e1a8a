//! The shared deadline sweep: one ordered map of every pending deadline and
//! retry wake-up, instead of a timer per job.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::job::JobId;

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The running attempt's timeout.
    Deadline,
    /// The end of a retry backoff.
    Retry,
    /// The running attempt becomes a straggler: time for a speculative
    /// backup.
    Speculate,
}

/// A timer's key; unique thanks to the sequence number.
pub(crate) type TimerKey = (Instant, u64);

#[derive(Debug, Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, (JobId, TimerKind)>,
    seq: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, at: Instant, id: JobId, kind: TimerKind) -> TimerKey {
        let key = (at, self.seq);
        self.seq += 1;
        self.map.insert(key, (id, kind));
        key
    }

    pub(crate) fn remove(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(JobId, TimerKind)> {
        let entry = self.map.first_entry()?;
        if entry.key().0 <= now {
            Some(entry.remove())
        } else {
            None
        }
    }

    /// When the earliest timer is due.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.map.keys().next().map(|k| k.0)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_order_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let id = |s: &str| JobId::new(s).unwrap();
        timers.insert(t0 + Duration::from_secs(2), id("b"), TimerKind::Retry);
        let a = timers.insert(t0 + Duration::from_secs(1), id("a"), TimerKind::Deadline);
        timers.insert(t0 + Duration::from_secs(1), id("c"), TimerKind::Deadline);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        timers.remove(a);
        assert_eq!(timers.pop_due(t0), None);
        let due = timers.pop_due(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(due, (id("c"), TimerKind::Deadline));
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(5)).unwrap().0,
            id("b")
        );
        assert_eq!(timers.len(), 0);
    }
}
