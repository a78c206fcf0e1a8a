//! The jobs in progress: a small index from id to slot, and the entries in
//! a slab.
//!
//! A coordinator looks a job up several times per event (a result: is it
//! current, end the attempt, succeed; a placement: the entry, the
//! strategy's view, the dispatch), with thousands in flight. Held inline in
//! a hash map, every entry (the job and its state, a few hundred bytes)
//! sat in the probed table: the table outgrew the caches, each probe of an
//! event's first lookup missed, and every growth moved every entry. The
//! index holds an id and a slot number per job, so it stays small and
//! warm; the entry is touched where it lies, and never moves.

use slab::Slab;

use super::JobEntry;
use crate::job::{IdMap, JobId};

/// See the module guide.
#[derive(Debug, Default)]
pub(super) struct JobTable {
    /// Keyed by ids clients may choose: keyed hashing, as for every map
    /// keyed by job ids in this crate.
    index: IdMap<usize>,
    entries: Slab<JobEntry>,
}

impl JobTable {
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains_key(&self, id: &JobId) -> bool {
        self.index.contains_key(id)
    }

    pub(super) fn get(&self, id: &JobId) -> Option<&JobEntry> {
        let slot = *self.index.get(id)?;
        self.entries.get(slot)
    }

    pub(super) fn get_mut(&mut self, id: &JobId) -> Option<&mut JobEntry> {
        let slot = *self.index.get(id)?;
        self.entries.get_mut(slot)
    }

    /// Adds a job (its entry's `job.id` is `id`); a job already held under
    /// `id` is replaced and returned.
    pub(super) fn insert(&mut self, id: JobId, entry: JobEntry) -> Option<JobEntry> {
        debug_assert_eq!(id, entry.job.id);
        match self.index.get(&id) {
            Some(&slot) => Some(std::mem::replace(&mut self.entries[slot], entry)),
            None => {
                let slot = self.entries.insert(entry);
                self.index.insert(id, slot);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, id: &JobId) -> Option<JobEntry> {
        let slot = self.index.remove(id)?;
        self.entries.try_remove(slot)
    }

    /// The jobs, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&JobId, &JobEntry)> {
        self.entries.iter().map(|(_, entry)| (&entry.job.id, entry))
    }

    /// The entries, in no particular order.
    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &JobEntry> {
        self.entries.iter().map(|(_, entry)| entry)
    }

    /// Every entry, emptying the table.
    pub(super) fn into_values(self) -> impl Iterator<Item = JobEntry> {
        self.entries.into_iter().map(|(_, entry)| entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;

    fn entry(id: &str) -> JobEntry {
        let mut job = Job::new("echo", id);
        job.id = JobId::new(id).unwrap();
        JobEntry::new(job)
    }

    #[test]
    fn behaves_as_a_map_and_reuses_slots() {
        let mut table = JobTable::default();
        for n in 0..100_000 {
            let id = format!("j{n}");
            assert!(table.insert(JobId::new(&id).unwrap(), entry(&id)).is_none());
            // Keep 1,000 in progress.
            if n >= 1_000 {
                let old = JobId::new(&format!("j{}", n - 1_000)).unwrap();
                assert_eq!(table.remove(&old).unwrap().job.id, old);
                assert!(table.remove(&old).is_none());
            }
        }
        assert_eq!(table.len(), 1_000);
        assert!(table.entries.capacity() <= 2_048, "slots are reused");
        let id = JobId::new("j99999").unwrap();
        assert!(table.contains_key(&id));
        table.get_mut(&id).unwrap().job.attempt = 7;
        assert_eq!(table.get(&id).unwrap().job.attempt, 7);
        // Replacing keeps one entry.
        assert_eq!(
            table
                .insert(id.clone(), entry("j99999"))
                .unwrap()
                .job
                .attempt,
            7
        );
        assert_ne!(table.get(&id).unwrap().job.attempt, 7);
        assert_eq!(table.iter().count(), 1_000);
        assert!(table.iter().all(|(id, e)| *id == e.job.id));
        assert_eq!(table.into_values().count(), 1_000);
    }
}
