//! [`IdSlab`]: per-job state by id, as a small index from id to slot and
//! the values in a slab.
//!
//! The coordinator looks a job up several times per event (a result: is
//! it current, end the attempt, succeed; a placement: the entry, the
//! strategy's view, the dispatch), and its record once or twice more, with
//! thousands of jobs in flight. Held inline in a hash map, every value (a
//! job and its state, a few hundred bytes) sat in the probed table: the
//! table outgrew the caches, an event's first probe missed, and every
//! growth moved every value. The index holds an id and a slot number per
//! job, so it stays small and warm; a value is touched where it lies, and
//! never moves.

use slab::Slab;

use crate::job::{IdMap, JobId};

/// See the module guide.
#[derive(Debug)]
pub(crate) struct IdSlab<V> {
    /// Keyed by ids clients may choose: keyed hashing, as for every map
    /// keyed by job ids in this crate.
    index: IdMap<usize>,
    values: Slab<(JobId, V)>,
}

impl<V> Default for IdSlab<V> {
    fn default() -> Self {
        IdSlab {
            index: IdMap::default(),
            values: Slab::new(),
        }
    }
}

impl<V> IdSlab<V> {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn contains_key(&self, id: &JobId) -> bool {
        self.index.contains_key(id)
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<&V> {
        let slot = *self.index.get(id)?;
        self.values.get(slot).map(|(_, value)| value)
    }

    pub(crate) fn get_mut(&mut self, id: &JobId) -> Option<&mut V> {
        let slot = *self.index.get(id)?;
        self.values.get_mut(slot).map(|(_, value)| value)
    }

    /// Adds a value; one already held under `id` is replaced and returned.
    pub(crate) fn insert(&mut self, id: JobId, value: V) -> Option<V> {
        match self.index.get(&id) {
            Some(&slot) => Some(std::mem::replace(&mut self.values[slot].1, value)),
            None => {
                let slot = self.values.insert((id.clone(), value));
                self.index.insert(id, slot);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &JobId) -> Option<V> {
        let slot = self.index.remove(id)?;
        self.values.try_remove(slot).map(|(_, value)| value)
    }

    /// The values with their ids, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&JobId, &V)> {
        self.values.iter().map(|(_, (id, value))| (id, value))
    }

    /// The values, in no particular order.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter().map(|(_, (_, value))| value)
    }

    /// Every value, emptying the table.
    pub(crate) fn into_values(self) -> impl Iterator<Item = V> {
        self.values.into_iter().map(|(_, (_, value))| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> JobId {
        JobId::new(&format!("j{n}")).unwrap()
    }

    #[test]
    fn behaves_as_a_map_and_reuses_slots() {
        let mut table = IdSlab::default();
        for n in 0..100_000 {
            assert!(table.insert(id(n), n).is_none());
            // Keep 1,000 in progress.
            if n >= 1_000 {
                assert_eq!(table.remove(&id(n - 1_000)), Some(n - 1_000));
                assert_eq!(table.remove(&id(n - 1_000)), None);
            }
        }
        assert_eq!(table.len(), 1_000);
        assert!(table.values.capacity() <= 2_048, "slots are reused");
        let last = id(99_999);
        assert!(table.contains_key(&last) && !table.contains_key(&id(5)));
        *table.get_mut(&last).unwrap() = 7;
        assert_eq!(table.get(&last), Some(&7));
        // Replacing keeps one entry.
        assert_eq!(table.insert(last.clone(), 8), Some(7));
        assert_eq!(table.get(&last), Some(&8));
        assert_eq!(table.iter().count(), 1_000);
        assert!(table
            .iter()
            .all(|(id, n)| *id == last || *id == self::id(*n)));
        assert_eq!(table.into_values().count(), 1_000);
    }
}
