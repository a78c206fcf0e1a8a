//! Where shuffle data lives: the per-node [`PartitionStore`] of blobs
//! named by [`BlobId`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::fetch::FetchError;
use super::source::FileRange;

/// A blob as stored: bytes, or a file range read when fetched.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    Memory(Bytes),
    File(FileRange),
}

/// Which stage of a job produced a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// An input split, staged on the driver's node (`task` = split number).
    Input,
    /// A map task's output for one partition.
    Map,
    /// A reduce task's output (`task` = `partition` = the partition).
    Reduce,
}

/// The name of one blob in a [`PartitionStore`]:
/// `(job, stage, task, partition)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobId {
    /// The map-reduce job's id.
    pub job: String,
    /// The stage that produced it.
    pub stage: Stage,
    /// The task (split number for inputs and map outputs).
    pub task: u32,
    /// The partition (0 for inputs).
    pub partition: u32,
}

impl BlobId {
    /// The staged bytes of input split `split`.
    pub(crate) fn input(job: &str, split: u32) -> Self {
        BlobId {
            job: job.to_owned(),
            stage: Stage::Input,
            task: split,
            partition: 0,
        }
    }

    /// Map task `task`'s output for partition `partition`.
    pub(crate) fn map_output(job: &str, task: u32, partition: u32) -> Self {
        BlobId {
            job: job.to_owned(),
            stage: Stage::Map,
            task,
            partition,
        }
    }

    /// Reduce task `partition`'s output.
    pub(crate) fn reduce_output(job: &str, partition: u32) -> Self {
        BlobId {
            job: job.to_owned(),
            stage: Stage::Reduce,
            task: partition,
            partition,
        }
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{:?}/{}/{}",
            self.job, self.stage, self.task, self.partition
        )
    }
}

/// Why a store refused a blob.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The blob would exceed the store's byte limit.
    #[error("partition store full: {needed} more bytes with {used} of {limit} in use (blob {id})")]
    Full {
        /// The refused blob.
        id: BlobId,
        /// Its size.
        needed: usize,
        /// Bytes in use.
        used: usize,
        /// The limit.
        limit: usize,
    },
    /// The blob's job has ended here (its driver dropped its data): a late
    /// attempt must not leave blobs behind.
    #[error("job {job} has ended on this node; blob {id} refused")]
    JobEnded {
        /// The job.
        job: String,
        /// The refused blob.
        id: BlobId,
    },
}

/// How many ended jobs a store remembers, to refuse their late blobs.
const ENDED_JOBS_REMEMBERED: usize = 1024;

#[derive(Debug, Default)]
struct StoreInner {
    blobs: FxHashMap<BlobId, Bytes>,
    /// Blobs that are byte ranges of files, read when fetched (staged
    /// inputs read on demand); they use no memory and no limit.
    files: FxHashMap<BlobId, FileRange>,
    bytes: usize,
    /// Recently ended jobs, oldest first (bounded).
    ended: VecDeque<String>,
}

/// One node's in-memory blob store: map outputs (and staged inputs and
/// reduce outputs) keyed by [`BlobId`], with an optional byte limit.
/// Staged inputs of files opened with [`Input::open`](super::Input::open)
/// are kept as file ranges and read when fetched.
///
/// Cheap to clone (shared). Blobs are `Bytes`, so reads do not copy.
#[derive(Clone, Debug)]
pub struct PartitionStore {
    inner: Arc<Mutex<StoreInner>>,
    limit: usize,
}

impl PartitionStore {
    /// An unlimited store.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        PartitionStore::with_limit(usize::MAX)
    }

    /// A store that refuses blobs past `limit` bytes in total.
    pub(crate) fn with_limit(limit: usize) -> Self {
        PartitionStore {
            inner: Arc::default(),
            limit,
        }
    }

    /// Stores `data` under `id`, replacing (and un-counting) any blob there.
    ///
    /// # Errors
    ///
    /// [`StoreError::Full`] if the blob does not fit in the limit,
    /// [`StoreError::JobEnded`] if its job was removed from this store.
    pub(crate) fn put(&self, id: BlobId, data: Bytes) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.ended.contains(&id.job) {
            return Err(StoreError::JobEnded {
                job: id.job.clone(),
                id,
            });
        }
        let replaced = inner.blobs.get(&id).map_or(0, Bytes::len);
        let used = inner.bytes - replaced;
        if data.len() > self.limit.saturating_sub(used) {
            return Err(StoreError::Full {
                id,
                needed: data.len(),
                used,
                limit: self.limit,
            });
        }
        inner.bytes = used + data.len();
        inner.blobs.insert(id, data);
        Ok(())
    }

    /// The blob under `id`, if it is in memory (a staged file range is not:
    /// see [`read`](Self::read)).
    #[cfg(test)]
    pub(crate) fn get(&self, id: &BlobId) -> Option<Bytes> {
        self.inner.lock().blobs.get(id).cloned()
    }

    /// Stages a file range under `id` (read when fetched).
    pub(crate) fn put_file(&self, id: BlobId, range: FileRange) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.ended.contains(&id.job) {
            return Err(StoreError::JobEnded {
                job: id.job.clone(),
                id,
            });
        }
        inner.files.insert(id, range);
        Ok(())
    }

    /// What is stored under `id`.
    pub(crate) fn entry(&self, id: &BlobId) -> Option<Stored> {
        let inner = self.inner.lock();
        if let Some(blob) = inner.blobs.get(id) {
            return Some(Stored::Memory(blob.clone()));
        }
        inner.files.get(id).cloned().map(Stored::File)
    }

    /// The whole blob under `id`, in memory or read from its file (on the
    /// blocking pool), as node `node` (for errors).
    ///
    /// # Errors
    ///
    /// [`FetchError::Missing`] if there is no such blob,
    /// [`FetchError::Unreadable`] if its file cannot be read.
    pub(crate) async fn read(&self, node: &str, id: &BlobId) -> Result<Bytes, FetchError> {
        let unreadable = |source| FetchError::Unreadable {
            node: node.to_owned(),
            id: id.clone(),
            source,
        };
        match self.entry(id) {
            Some(Stored::Memory(blob)) => Ok(blob),
            Some(Stored::File(range)) => tokio::task::spawn_blocking(move || range.read_all())
                .await
                .map_err(|e| unreadable(std::io::Error::other(e)))?
                .map_err(unreadable),
            None => Err(FetchError::Missing {
                node: node.to_owned(),
                id: id.clone(),
            }),
        }
    }

    /// Removes every blob of job `job` and refuses its later blobs (the
    /// last 1024 ended jobs are remembered); returns how many blobs there
    /// were.
    pub(crate) fn remove_job(&self, job: &str) -> usize {
        let mut inner = self.inner.lock();
        if !inner.ended.iter().any(|j| j == job) {
            if inner.ended.len() == ENDED_JOBS_REMEMBERED {
                inner.ended.pop_front();
            }
            inner.ended.push_back(job.to_owned());
        }
        let before = inner.blobs.len() + inner.files.len();
        inner.blobs.retain(|id, _| id.job != job);
        inner.files.retain(|id, _| id.job != job);
        inner.bytes = inner.blobs.values().map(Bytes::len).sum();
        before - inner.blobs.len() - inner.files.len()
    }

    /// The bytes held in memory (staged file ranges use none).
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The number of blobs stored (file ranges included).
    pub fn len(&self) -> usize {
        let inner = self.inner.lock();
        inner.blobs.len() + inner.files.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_counts_bytes_and_enforces_its_limit() {
        let store = PartitionStore::with_limit(10);
        store
            .put(BlobId::map_output("j", 0, 0), Bytes::from_static(b"123456"))
            .unwrap();
        let full = store
            .put(BlobId::map_output("j", 1, 0), Bytes::from_static(b"12345"))
            .unwrap_err();
        assert!(matches!(
            full,
            StoreError::Full {
                needed: 5,
                used: 6,
                limit: 10,
                ..
            }
        ));
        // Replacing a blob frees its old size first.
        store
            .put(
                BlobId::map_output("j", 0, 0),
                Bytes::from_static(b"1234567890"),
            )
            .unwrap();
        assert_eq!(store.bytes(), 10);
        store.put(BlobId::input("k", 0), Bytes::new()).unwrap();
        assert_eq!(store.remove_job("j"), 1);
        assert_eq!((store.bytes(), store.len()), (0, 1));
        // A late attempt of the ended job cannot leave a blob behind.
        let late = store.put(BlobId::map_output("j", 2, 0), Bytes::from_static(b"1"));
        assert!(matches!(late, Err(StoreError::JobEnded { .. })));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn file_ranges_are_read_when_fetched_and_dropped_with_their_job() {
        let dir = std::env::temp_dir().join(format!("mr-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.txt");
        std::fs::write(&path, b"hello world").unwrap();
        let store = PartitionStore::with_limit(0);
        let range = FileRange {
            path: Arc::new(path.clone()),
            start: 6,
            len: 5,
        };
        let id = BlobId::input("j", 0);
        // File ranges hold no memory: a zero limit does not refuse them.
        store.put_file(id.clone(), range).unwrap();
        assert_eq!((store.bytes(), store.len()), (0, 1));
        assert!(store.get(&id).is_none());
        assert_eq!(&store.read("n", &id).await.unwrap()[..], b"world");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            store.read("n", &id).await,
            Err(FetchError::Unreadable { .. })
        ));
        assert_eq!(store.remove_job("j"), 1);
        assert!(matches!(
            store.read("n", &id).await,
            Err(FetchError::Missing { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
