//! The dead-letter list: jobs that failed for good, with the reason each
//! attempt failed.

use std::collections::BTreeMap;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::failure::JobFailure;
use crate::job::{Job, JobId};

/// Why one attempt of a job failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// The attempt number (1-based).
    pub attempt: u32,
    /// The node the attempt ran on, if it was dispatched.
    pub node: Option<String>,
    /// The failure.
    pub failure: JobFailure,
}

/// A job that failed for good.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The job as last attempted.
    pub job: Job,
    /// Why each attempt failed, in order.
    pub failures: Vec<AttemptFailure>,
}

impl DeadLetter {
    /// The failure that ended the job.
    pub fn last_failure(&self) -> Option<&JobFailure> {
        self.failures.last().map(|f| &f.failure)
    }
}

/// Dead letters by id, in the order they were added, capped.
#[derive(Debug, Default)]
pub(crate) struct DeadLetters {
    by_id: HashMap<JobId, (u64, DeadLetter)>,
    order: BTreeMap<u64, JobId>,
    next_seq: u64,
}

impl DeadLetters {
    /// Adds a dead letter, evicting the oldest beyond `cap`; returns the
    /// ids evicted.
    pub(crate) fn push(&mut self, letter: DeadLetter, cap: usize) -> Vec<JobId> {
        let id = letter.job.id.clone();
        self.remove(&id);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id.clone());
        self.by_id.insert(id, (seq, letter));
        let mut evicted = Vec::new();
        while self.by_id.len() > cap.max(1) {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.by_id.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<&DeadLetter> {
        self.by_id.get(id).map(|(_, l)| l)
    }

    pub(crate) fn remove(&mut self, id: &JobId) -> Option<DeadLetter> {
        let (seq, letter) = self.by_id.remove(id)?;
        self.order.remove(&seq);
        Some(letter)
    }

    /// All dead letters, oldest first.
    pub(crate) fn list(&self) -> Vec<&DeadLetter> {
        self.order
            .values()
            .filter_map(|id| self.by_id.get(id).map(|(_, l)| l))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str) -> DeadLetter {
        DeadLetter {
            job: Job::new("k", "").with_id(JobId::new(id).unwrap()),
            failures: Vec::new(),
        }
    }

    #[test]
    fn ordered_capped_and_removable() {
        let mut dl = DeadLetters::default();
        let evicted: Vec<JobId> = ["a", "b", "c"]
            .into_iter()
            .flat_map(|id| dl.push(letter(id), 2))
            .collect();
        assert_eq!(evicted, [JobId::new("a").unwrap()]);
        let ids: Vec<&str> = dl.list().iter().map(|l| l.job.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(dl.remove(&JobId::new("b").unwrap()).is_some());
        assert!(dl.push(letter("c"), 2).is_empty());
        assert_eq!(dl.len(), 1);
        assert!(dl.get(&JobId::new("c").unwrap()).is_some());
    }
}
