//! Every job record of a coordinator: a job's live entry is made when it
//! is accepted, becomes a finished one when it ends, and leaves when
//! retention evicts it.
//!
//! Live and finished entries are kept apart. The live map holds only the
//! jobs in progress (thousands at most), so its memory stays in cache: a
//! job's events while it runs (its attempts) touch nothing else.
//!
//! Finished entries (hundreds of thousands within retention) sit in a
//! ring (in chunks that never move, `record_ring.rs`) in the order they
//! finished, and an index finds them by id: a hash
//! table of 8-byte entries (32 bits of the id's keyed hash and the entry's
//! position in the ring). A job meets it once when it ends (a push at the
//! ring's end and an 8-byte write into the index) and once when it is
//! accepted, for a probe of the index's control bytes only (an explicit
//! re-run replaces its finished entry; for a new id nothing else is read).
//! A map of ids to whole entries (56-byte buckets, and a separate queue
//! for their order) made that write a cache and TLB miss into tens of
//! megabytes, and its growth moved every entry (docs/performance.md,
//! "Ninth round"). Retention evicts from the ring's front; an entry
//! removed before (a re-run, a cancelled record) leaves a hole there,
//! and holes are compacted away once they outnumber the entries.

use hashbrown::HashTable;

use super::ring::ChunkRing;
use super::Retention;
use crate::job::{IdMap, JobId};

/// A finished entry, at its place in the finishing order.
#[derive(Debug)]
struct Slot<F> {
    id: JobId,
    finished_ms: u64,
    /// What it counts against the byte budget.
    bytes: u32,
    /// `None`: removed (a hole).
    value: Option<F>,
}

/// The index's entry for a finished entry: its id's hash (32 bits of it)
/// and its position (ring index + `base`, wrapping; a ring never holds
/// 2^32 entries).
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    hash: u32,
    pos: u32,
}

/// The 32 bits of an id's keyed hash the index keeps.
fn short_hash(id: &JobId) -> u32 {
    // Truncation intended: the low half of a keyed 64-bit hash.
    id.keyed_hash() as u32
}

/// The index's table hash of a short hash: spread over 64 bits so that
/// both the bucket (low bits) and the control byte (top bits) vary.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Indexes the entry at `pos` (its id's short hash `hash`).
fn index_insert(index: &mut HashTable<IndexEntry>, hash: u32, pos: u32) {
    index.insert_unique(spread(hash), IndexEntry { hash, pos }, |entry| {
        spread(entry.hash)
    });
}

/// The ring index of the entry at `pos` of a ring whose front is at
/// `base`.
fn ring_index(base: u32, pos: u32) -> usize {
    pos.wrapping_sub(base) as usize
}

/// Whether `entry` indexes the finished entry of `id` (`hash`: its short
/// hash) in `ring`, whose front is at `base`.
fn indexes<F>(
    ring: &ChunkRing<Slot<F>>,
    base: u32,
    id: &JobId,
    hash: u32,
    entry: &IndexEntry,
) -> bool {
    entry.hash == hash
        && ring
            .get(ring_index(base, entry.pos))
            .is_some_and(|slot| slot.id == *id)
}

/// Live entries (never evicted) and finished ones (oldest first by the
/// order they finished in, bounded by a [`Retention`]); an id is in one
/// of the two at most.
#[derive(Debug)]
pub(crate) struct RecordTable<L, F> {
    live: IdMap<L>,
    /// Finished entries in finishing order, holes included.
    ring: ChunkRing<Slot<F>>,
    /// The position of `ring[0]`.
    base: u32,
    /// Finished entries (not holes) by id.
    index: HashTable<IndexEntry>,
    holes: usize,
    bytes: u64,
}

impl<L, F> Default for RecordTable<L, F> {
    fn default() -> Self {
        RecordTable {
            live: IdMap::default(),
            ring: ChunkRing::default(),
            base: 0,
            index: HashTable::new(),
            holes: 0,
            bytes: 0,
        }
    }
}

impl<L, F> RecordTable<L, F> {
    /// Makes `id` live with `value`, replacing a finished entry of the
    /// same id (an explicit re-run) or a live one (returned).
    pub(crate) fn insert_live(&mut self, id: JobId, value: L) -> Option<L> {
        self.remove_finished(&id);
        self.live.insert(id, value)
    }

    pub(crate) fn live(&self, id: &JobId) -> Option<&L> {
        self.live.get(id)
    }

    pub(crate) fn live_mut(&mut self, id: &JobId) -> Option<&mut L> {
        self.live.get_mut(id)
    }

    /// The ring index of the finished entry of `id`.
    fn find(&self, id: &JobId) -> Option<usize> {
        let hash = short_hash(id);
        let (ring, base) = (&self.ring, self.base);
        self.index
            .find(spread(hash), |entry| indexes(ring, base, id, hash, entry))
            .map(|entry| ring_index(base, entry.pos))
    }

    pub(crate) fn finished(&self, id: &JobId) -> Option<&F> {
        self.ring.get(self.find(id)?)?.value.as_ref()
    }

    pub(crate) fn contains(&self, id: &JobId) -> bool {
        self.live.contains_key(id) || self.find(id).is_some()
    }

    /// Removes a live entry.
    pub(crate) fn remove_live(&mut self, id: &JobId) -> Option<L> {
        self.live.remove(id)
    }

    /// Removes a finished entry (it leaves a hole in the ring).
    pub(crate) fn remove_finished(&mut self, id: &JobId) -> Option<F> {
        if self.index.is_empty() {
            return None;
        }
        let hash = short_hash(id);
        let (ring, base) = (&self.ring, self.base);
        let entry = self
            .index
            .find_entry(spread(hash), |entry| indexes(ring, base, id, hash, entry))
            .ok()?;
        let (entry, _) = entry.remove();
        let slot = self.ring.get_mut(ring_index(base, entry.pos))?;
        let value = slot.value.take()?;
        self.bytes -= u64::from(slot.bytes);
        self.holes += 1;
        self.compact();
        Some(value)
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
            // Not finished as well: an id is in one of the two at most.
            self.push_finished(id, finished_ms, bytes, value);
        }
        Some(out)
    }

    /// Adds (or replaces) a finished entry (e.g. read back from a journal).
    pub(crate) fn insert_finished(&mut self, id: JobId, finished_ms: u64, bytes: usize, value: F) {
        self.live.remove(&id);
        self.remove_finished(&id);
        self.push_finished(id, finished_ms, bytes, value);
    }

    /// Appends a finished entry of an id that has none.
    fn push_finished(&mut self, id: JobId, finished_ms: u64, bytes: usize, value: F) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.bytes += u64::from(bytes);
        let hash = short_hash(&id);
        // Truncation intended: positions wrap (see `IndexEntry`).
        let pos = self.base.wrapping_add(self.ring.len() as u32);
        self.ring.push_back(Slot {
            id,
            finished_ms,
            bytes,
            value: Some(value),
        });
        index_insert(&mut self.index, hash, pos);
    }

    /// Drops the holes once they outnumber the entries (and the index's
    /// positions with them: it is made again).
    fn compact(&mut self) {
        if self.holes <= self.index.len() + 1024 {
            return;
        }
        self.ring.retain(|slot| slot.value.is_some());
        self.holes = 0;
        self.index.clear();
        for (i, slot) in self.ring.iter().enumerate() {
            let hash = short_hash(&slot.id);
            // Truncation intended: positions wrap (see `IndexEntry`).
            index_insert(&mut self.index, hash, self.base.wrapping_add(i as u32));
        }
    }

    #[cfg(test)]
    pub(crate) fn live_len(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    pub(crate) fn finished_len(&self) -> usize {
        self.index.len()
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
        while let Some(front) = self.ring.front() {
            // A hole at the front is left for later: dropping it frees nothing.
            if self.bytes <= retention.bytes && front.finished_ms >= cutoff {
                break;
            }
            let Some(front) = self.ring.pop_front() else {
                break;
            };
            let pos = self.base;
            self.base = self.base.wrapping_add(1);
            if front.value.is_none() {
                self.holes -= 1;
                continue;
            }
            self.bytes -= u64::from(front.bytes);
            let hash = short_hash(&front.id);
            if let Ok(entry) = self
                .index
                .find_entry(spread(hash), |entry| entry.pos == pos)
            {
                entry.remove();
            }
            dropped += 1;
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

    /// The finished entries (oldest first, as [`Self::oldest_finished`]).
    pub(crate) fn iter_finished(&self) -> impl Iterator<Item = (&JobId, &F)> {
        self.oldest_finished()
    }

    /// The finished entries, mutably, oldest first.
    pub(crate) fn iter_finished_mut(&mut self) -> impl Iterator<Item = (&JobId, &mut F)> {
        self.ring
            .iter_mut()
            .filter_map(|slot| Some((&slot.id, slot.value.as_mut()?)))
    }

    /// The finished entries, oldest first.
    pub(crate) fn oldest_finished(&self) -> impl Iterator<Item = (&JobId, &F)> {
        self.ring
            .iter()
            .filter_map(|slot| Some((&slot.id, slot.value.as_ref()?)))
    }

    /// The finished entries with their finish times, newest first.
    pub(crate) fn newest_finished(&self) -> impl Iterator<Item = (u64, &F)> {
        self.ring
            .iter()
            .rev()
            .filter_map(|slot| Some((slot.finished_ms, slot.value.as_ref()?)))
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
        assert!(table.ring.len() <= 2 + 1024 + 1);
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

#[cfg(test)]
mod model_tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Live(u8),
        Finish(u8, u16),
        Journaled(u8, u16),
        Remove(u8),
        Evict(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Live),
            3 => (any::<u8>(), 1..50u16).prop_map(|(n, b)| Op::Finish(n, b)),
            1 => (any::<u8>(), 1..50u16).prop_map(|(n, b)| Op::Journaled(n, b)),
            1 => any::<u8>().prop_map(Op::Remove),
            1 => (0..2_000u16).prop_map(Op::Evict),
        ]
    }

    fn id(n: u8) -> JobId {
        JobId::new(&format!("j{n}")).unwrap()
    }

    proptest! {
        /// The ring and its index against a plain model: live ids, and
        /// finished ones in finishing order (an id at most once).
        #[test]
        fn the_table_agrees_with_a_plain_model(
            ops in proptest::collection::vec(op(), 1..400),
            base in prop_oneof![Just(0u32), Just(u32::MAX - 20)],
        ) {
            let mut table: RecordTable<u32, u32> = RecordTable { base, ..RecordTable::default() };
            let mut live: Vec<u8> = Vec::new();
            // (id, finished_ms, bytes), oldest first.
            let mut finished: Vec<(u8, u64, u32)> = Vec::new();
            let mut clock = 0u64;
            for op in ops {
                clock += 1;
                match op {
                    Op::Live(n) => {
                        table.insert_live(id(n), u32::from(n));
                        finished.retain(|f| f.0 != n);
                        if !live.contains(&n) {
                            live.push(n);
                        }
                    }
                    Op::Finish(n, bytes) => {
                        let out = table.finish(&id(n), clock, |v| (Some((v + 1, usize::from(bytes))), v));
                        if live.contains(&n) {
                            prop_assert_eq!(out, Some(u32::from(n)));
                            live.retain(|&l| l != n);
                            finished.push((n, clock, u32::from(bytes)));
                        } else {
                            prop_assert_eq!(out, None);
                        }
                    }
                    Op::Journaled(n, bytes) => {
                        table.insert_finished(id(n), clock, usize::from(bytes), u32::from(n) + 1);
                        live.retain(|&l| l != n);
                        finished.retain(|f| f.0 != n);
                        finished.push((n, clock, u32::from(bytes)));
                    }
                    Op::Remove(n) => {
                        let had = finished.iter().any(|f| f.0 == n);
                        prop_assert_eq!(table.remove_finished(&id(n)).is_some(), had);
                        finished.retain(|f| f.0 != n);
                    }
                    Op::Evict(budget) => {
                        let retention = Retention { age: Duration::from_secs(3600), bytes: u64::from(budget) };
                        let mut dropped = 0;
                        while finished.iter().map(|f| u64::from(f.2)).sum::<u64>() > u64::from(budget) {
                            finished.remove(0);
                            dropped += 1;
                        }
                        prop_assert_eq!(table.evict(clock, retention), dropped);
                    }
                }
                prop_assert_eq!(table.bytes(), finished.iter().map(|f| u64::from(f.2)).sum::<u64>());
                prop_assert_eq!(table.finished_len(), finished.len());
                prop_assert_eq!(table.live_len(), live.len());
                let newest: Vec<u64> = table.newest_finished().map(|(at, _)| at).collect();
                let expected: Vec<u64> = finished.iter().rev().map(|f| f.1).collect();
                prop_assert_eq!(newest, expected);
            }
            for n in 0..=u8::MAX {
                let done = finished.iter().any(|f| f.0 == n);
                prop_assert_eq!(table.finished(&id(n)) == Some(&(u32::from(n) + 1)), done);
                prop_assert_eq!(table.contains(&id(n)), done || live.contains(&n));
            }
        }
    }

    /// Holes from many removals are compacted away and the index made
    /// again across wrapping positions: every entry is still found.
    #[test]
    fn compaction_across_wrapping_positions_keeps_every_entry_found() {
        let mut table: RecordTable<(), u64> = RecordTable {
            base: u32::MAX - 1_000,
            ..RecordTable::default()
        };
        for n in 0..20_000u64 {
            table.insert_finished(JobId::new(&format!("w{n}")).unwrap(), n, 1, n);
        }
        for n in (0..20_000u64).filter(|n| n % 3 != 0) {
            assert_eq!(
                table.remove_finished(&JobId::new(&format!("w{n}")).unwrap()),
                Some(n)
            );
        }
        assert!(table.ring.len() < 20_000, "compacted: {}", table.ring.len());
        for n in 0..20_000u64 {
            let found = table.finished(&JobId::new(&format!("w{n}")).unwrap());
            assert_eq!(found, (n % 3 == 0).then_some(&n));
        }
        let retention = Retention {
            age: Duration::from_secs(3600),
            bytes: 1_000,
        };
        assert_eq!(table.evict(20_000, retention), 6_667 - 1_000);
        assert_eq!(
            table.finished(&JobId::new("w19998").unwrap()),
            Some(&19_998)
        );
        assert_eq!(table.finished(&JobId::new("w0").unwrap()), None);
    }
}
