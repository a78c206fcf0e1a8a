//! Every job record of a coordinator: a job's live entry is made when it
//! is accepted, becomes a finished one when it ends, and leaves when
//! retention evicts it.
//!
//! Live and finished entries are two maps. The live map holds only the
//! jobs in progress (thousands at most), so its memory stays in cache: a
//! job's events while it runs (its attempts) touch nothing else. The
//! finished map holds every finished record within retention (hundreds of
//! thousands; tens of megabytes of buckets), and a random probe into it is
//! a cache and TLB miss: a job meets it once when it ends (the insert),
//! and once when it is accepted, for a probe of its control bytes only
//! (an explicit re-run replaces its finished entry; for a new id no bucket
//! is read). One map for both made each of a job's events such a probe
//! (docs/performance.md, "Eighth round").

use std::collections::VecDeque;

use super::Retention;
use crate::job::{IdMap, JobId};

/// A finished entry.
#[derive(Debug)]
struct Finished<F> {
    /// Its position in the finished order (stale order entries of a
    /// re-run id do not match).
    seq: u64,
    /// What it counts against the byte budget.
    bytes: u32,
    value: F,
}

/// Live entries (never evicted) and finished ones (oldest first by the
/// order they finished in, bounded by a [`Retention`]); an id is in one
/// of the two at most.
#[derive(Debug)]
pub(crate) struct RecordTable<L, F> {
    live: IdMap<L>,
    finished: IdMap<Finished<F>>,
    /// (seq, id, finished_ms) in finishing order; stale entries (a
    /// finished id removed or made live again) are skipped when met, and
    /// dropped in bulk when they outnumber the finished ones.
    order: VecDeque<(u64, JobId, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl<L, F> Default for RecordTable<L, F> {
    fn default() -> Self {
        RecordTable {
            live: IdMap::default(),
            finished: IdMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
        }
    }
}

impl<L, F> RecordTable<L, F> {
    /// Makes `id` live with `value`, replacing a finished entry of the
    /// same id (an explicit re-run) or a live one (returned).
    pub(crate) fn insert_live(&mut self, id: JobId, value: L) -> Option<L> {
        if let Some(old) = self.finished.remove(&id) {
            self.bytes -= u64::from(old.bytes);
        }
        self.live.insert(id, value)
    }

    pub(crate) fn live(&self, id: &JobId) -> Option<&L> {
        self.live.get(id)
    }

    pub(crate) fn live_mut(&mut self, id: &JobId) -> Option<&mut L> {
        self.live.get_mut(id)
    }

    pub(crate) fn finished(&self, id: &JobId) -> Option<&F> {
        self.finished.get(id).map(|entry| &entry.value)
    }

    pub(crate) fn contains(&self, id: &JobId) -> bool {
        self.live.contains_key(id) || self.finished.contains_key(id)
    }

    /// Removes a live entry.
    pub(crate) fn remove_live(&mut self, id: &JobId) -> Option<L> {
        self.live.remove(id)
    }

    /// Removes a finished entry (its order entry goes stale).
    pub(crate) fn remove_finished(&mut self, id: &JobId) -> Option<F> {
        let entry = self.finished.remove(id)?;
        self.bytes -= u64::from(entry.bytes);
        Some(entry.value)
    }

    /// Turns the live entry of `id` into a finished one with the value
    /// `finish` makes of it (`None`: the entry is dropped); returns what
    /// `finish` gave back, or `None` (and calls nothing) if `id` is not
    /// live.
    pub(crate) fn finish<R>(
        &mut self,
        id: &JobId,
        finished_ms: u64,
        finish: impl FnOnce(L) -> (Option<(F, usize)>, R),
    ) -> Option<R> {
        let (id, live) = self.live.remove_entry(id)?;
        let (kept, out) = finish(live);
        if let Some((value, bytes)) = kept {
            self.push_finished(id, finished_ms, bytes, value);
        }
        Some(out)
    }

    /// Adds (or replaces) a finished entry (e.g. read back from a journal).
    pub(crate) fn insert_finished(&mut self, id: JobId, finished_ms: u64, bytes: usize, value: F) {
        self.live.remove(&id);
        self.push_finished(id, finished_ms, bytes, value);
    }

    fn push_finished(&mut self, id: JobId, finished_ms: u64, bytes: usize, value: F) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.bytes += u64::from(bytes);
        self.order.push_back((seq, id.clone(), finished_ms));
        if let Some(old) = self.finished.insert(id, Finished { seq, bytes, value }) {
            self.bytes -= u64::from(old.bytes);
        }
        self.compact();
    }

    /// Whether `seq` is the current finished entry of `id`.
    fn current(&self, id: &JobId, seq: u64) -> bool {
        self.finished.get(id).is_some_and(|entry| entry.seq == seq)
    }

    /// Drops stale order entries once they outnumber the finished ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.finished.len() + 1024 {
            let finished = &self.finished;
            self.order
                .retain(|(seq, id, _)| finished.get(id).is_some_and(|entry| entry.seq == *seq));
        }
    }

    #[cfg(test)]
    pub(crate) fn live_len(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    pub(crate) fn finished_len(&self) -> usize {
        self.finished.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Drops the oldest finished entries while over the byte budget or
    /// older than the age limit at `now_ms`; returns how many were dropped.
    pub(crate) fn evict(&mut self, now_ms: u64, retention: Retention) -> usize {
        let age_ms = u64::try_from(retention.age.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now_ms.saturating_sub(age_ms);
        let mut dropped = 0;
        while let Some(&(seq, ref id, at)) = self.order.front() {
            // A stale front is left for later: dropping it frees nothing.
            if self.bytes <= retention.bytes && at >= cutoff {
                break;
            }
            let current = self.current(id, seq);
            let (_, id, _) = self.order.pop_front().expect("front exists");
            if current {
                self.remove_finished(&id);
                dropped += 1;
            }
        }
        dropped
    }

    /// The live entries, in no particular order.
    pub(crate) fn iter_live(&self) -> impl Iterator<Item = (&JobId, &L)> {
        self.live.iter()
    }

    /// The live entries, mutably, in no particular order.
    pub(crate) fn iter_live_mut(&mut self) -> impl Iterator<Item = (&JobId, &mut L)> {
        self.live.iter_mut()
    }

    /// The finished entries, in no particular order.
    pub(crate) fn iter_finished(&self) -> impl Iterator<Item = (&JobId, &F)> {
        self.finished.iter().map(|(id, entry)| (id, &entry.value))
    }

    /// The finished entries, mutably, in no particular order.
    pub(crate) fn iter_finished_mut(&mut self) -> impl Iterator<Item = (&JobId, &mut F)> {
        self.finished
            .iter_mut()
            .map(|(id, entry)| (id, &mut entry.value))
    }

    /// The finished entries, oldest first.
    pub(crate) fn oldest_finished(&self) -> impl Iterator<Item = (&JobId, &F)> {
        self.order.iter().filter_map(|(seq, id, _)| {
            let entry = self.finished.get(id)?;
            (entry.seq == *seq).then_some((id, &entry.value))
        })
    }

    /// The finished entries with their finish times, newest first.
    pub(crate) fn newest_finished(&self) -> impl Iterator<Item = (u64, &F)> {
        self.order
            .iter()
            .rev()
            .filter_map(|(seq, id, finished_ms)| {
                let entry = self.finished.get(id)?;
                (entry.seq == *seq).then_some((*finished_ms, &entry.value))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(n: u64) -> JobId {
        JobId::new(&format!("job-{n}")).unwrap()
    }

    const WIDE: Retention = Retention {
        age: Duration::from_secs(3600),
        bytes: u64::MAX,
    };

    /// 100,000 jobs through their life, 5,000 live at a time: each ends
    /// in its own slot, in finishing order, and the budget evicts the
    /// oldest finished, never a live one.
    #[test]
    fn a_hundred_thousand_jobs_live_then_finished_in_one_slot_each() {
        const N: u64 = 100_000;
        const WINDOW: u64 = 5_000;
        let retention = Retention {
            age: Duration::from_secs(3600),
            bytes: 10 * 50_000,
        };
        let mut table: RecordTable<Box<u64>, u64> = RecordTable::default();
        for n in 0..N + WINDOW {
            if n < N {
                table.insert_live(id(n), Box::new(n));
            }
            if n >= WINDOW {
                let done = n - WINDOW;
                // Finished out of submission order within each pair.
                let done = done ^ 1;
                let out = table.finish(&id(done), done, |live| (Some((*live * 2, 10)), *live));
                assert_eq!(out, Some(done));
                table.evict(done, retention);
            }
            assert!(table.live_len() <= WINDOW as usize + 1);
        }
        assert_eq!(table.live_len(), 0);
        assert_eq!(table.finished_len(), 50_000);
        assert_eq!(table.bytes(), 500_000);
        // The newest 50,000 finished are kept, the older evicted.
        assert_eq!(table.finished(&id(N - 1)), Some(&((N - 1) * 2)));
        assert!(table.finished(&id(N - 50_001)).is_none());
        assert!(!table.contains(&id(0)));
        let newest: Vec<u64> = table.newest_finished().map(|(at, _)| at).take(3).collect();
        assert_eq!(newest, [N - 2, N - 1, N - 4]);
        assert_eq!(table.newest_finished().count(), 50_000);
        // A finish of an id that is not live does nothing.
        assert_eq!(table.finish(&id(N - 1), 0, |_| (None, ())), None);
        assert_eq!(table.finish(&id(N + 7), 0, |_| (None, ())), None);
    }

    #[test]
    fn a_rerun_replaces_the_finished_entry_and_its_order_goes_stale() {
        let mut table: RecordTable<u32, u32> = RecordTable::default();
        for round in 0..3u64 {
            for n in 0..100 {
                table.insert_live(id(n), 0);
                table.finish(&id(n), round * 100 + n, |_| (Some((n as u32, 10)), ()));
            }
        }
        assert_eq!((table.live_len(), table.finished_len()), (0, 100));
        assert_eq!(table.bytes(), 1_000);
        assert_eq!(table.newest_finished().count(), 100);
        assert_eq!(table.evict(300, Retention { bytes: 500, ..WIDE }), 50);
        assert!(table.finished(&id(49)).is_none() && table.finished(&id(50)).is_some());
        // Live again (a re-run): not finished, not evictable, bytes freed.
        table.insert_live(id(60), 7);
        assert_eq!((table.live_len(), table.finished_len()), (1, 49));
        assert_eq!(table.bytes(), 490);
        assert_eq!(table.evict(u64::MAX, Retention { bytes: 0, ..WIDE }), 49);
        assert_eq!(table.live(&id(60)), Some(&7));
        assert_eq!(table.remove_live(&id(60)), Some(7));
        assert!(!table.contains(&id(60)));
    }

    #[test]
    fn stale_order_entries_stay_bounded() {
        let mut table: RecordTable<(), ()> = RecordTable::default();
        // One id run again 100,000 times: one entry, and the order queue
        // is compacted instead of holding every run.
        for n in 0..100_000 {
            table.insert_live(id(1), ());
            table.finish(&id(1), n, |()| (Some(((), 1)), ()));
        }
        assert_eq!(table.finished_len(), 1);
        // Compacted past twice the finished entries (one) plus 1,024.
        assert!(table.order.len() <= 2 + 1024 + 1);
        // A finished entry replaced by a journaled one, and removed.
        table.insert_finished(id(2), 5, 3, ());
        table.insert_finished(id(2), 6, 4, ());
        assert_eq!(table.bytes(), 1 + 4);
        assert_eq!(table.remove_finished(&id(2)), Some(()));
        assert_eq!(table.remove_finished(&id(2)), None);
        assert_eq!(table.bytes(), 1);
        // A finish that keeps nothing drops the entry.
        table.insert_live(id(3), ());
        assert_eq!(table.finish(&id(3), 9, |()| (None, 5)), Some(5));
        assert!(!table.contains(&id(3)));
        assert_eq!(table.live_len(), 0);
    }
}
