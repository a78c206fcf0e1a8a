//! What a run takes and gives: [`RunOptions`], [`MapReduceOutput`] with
//! its [`PhaseTimings`], and the staging of the inputs in the driver's store.

use std::time::Duration;

use bytes::Bytes;

use crate::job::Job;

use super::driver::DriverStats;
use super::report::NodeTasks;
use super::split::{Input, Located, SplitSpec};
use super::store::{BlobId, PartitionStore, StoreError};

/// Settings of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The target number of splits (see [`plan_splits`](super::plan_splits)).
    pub splits: usize,
    /// The number of reducers (R >= 1).
    pub reducers: u32,
    /// The per-attempt timeout of each task.
    pub task_timeout: Duration,
    /// The attempts of each task.
    pub max_attempts: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            splits: 8,
            reducers: 4,
            task_timeout: Job::DEFAULT_TIMEOUT,
            max_attempts: Job::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Wall-clock time per phase of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Planning splits and staging inputs.
    pub plan: Duration,
    /// Until every map output was available.
    pub map: Duration,
    /// Until every reduce output was available.
    pub reduce: Duration,
    /// Fetching and merging the reduce outputs.
    pub merge: Duration,
}

impl PhaseTimings {
    /// The whole run.
    pub fn total(&self) -> Duration {
        self.plan + self.map + self.reduce + self.merge
    }
}

/// The result of a run: entries sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct MapReduceOutput<K, O> {
    /// `(key, output)` sorted by key.
    pub entries: Vec<(K, O)>,
    /// The input names, by input index (what [`Posting::file`](super::Posting::file) refers to).
    pub inputs: Vec<String>,
    /// The driver's figures.
    pub stats: DriverStats,
    /// Time per phase.
    pub timings: PhaseTimings,
    /// What each node ran (final task results), sorted by node.
    pub nodes: Vec<NodeTasks>,
}

/// Copies and reads nothing: stores each split of `inputs` in `store` as
/// [`BlobId::input`] — a slice of the input's `Bytes` for an input in
/// memory, the file range for a file read on demand ([`Input::open`]),
/// which the store reads when a map task fetches it. Returns the bytes
/// staged.
///
/// # Errors
///
/// [`StoreError`] if the store refuses a split (limit reached, or the job
/// has ended).
pub(crate) fn stage_inputs(
    store: &PartitionStore,
    job: &str,
    inputs: &[Input],
    splits: &[SplitSpec],
) -> Result<u64, StoreError> {
    let mut staged = 0;
    for split in splits {
        let id = BlobId::input(job, split.index);
        match inputs
            .get(split.file as usize)
            .and_then(|i| i.locate(split))
        {
            Some(Located::Memory(bytes)) => {
                staged += bytes.len() as u64;
                store.put(id, bytes)?;
            }
            Some(Located::File(range)) => {
                staged += range.len;
                store.put_file(id, range)?;
            }
            // A split that does not fit the inputs is staged empty.
            None => store.put(id, Bytes::new())?,
        }
    }
    Ok(staged)
}
