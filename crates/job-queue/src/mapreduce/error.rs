//! The errors of map-shuffle-reduce.

use crate::failure::JobFailure;
use crate::job::JobId;

use super::fetch::FetchError;
use super::store::StoreError;

/// Why a map-reduce job could not be planned or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapReduceError {
    /// The job id is not 1..=64 characters of `[A-Za-z0-9_.-]`.
    #[error("invalid map-reduce job id {id:?}: expected 1..=64 characters of [A-Za-z0-9_.-]")]
    InvalidJobId {
        /// The offending id.
        id: String,
    },
    /// Split `index` is not numbered by its position in the split list.
    #[error(
        "split at position {position} is numbered {index}; splits must be numbered 0..n in order"
    )]
    SplitNumbering {
        /// Its position in the list.
        position: usize,
        /// Its number.
        index: u32,
    },
    /// An input file could not be read while planning the splits.
    #[error("cannot read the inputs")]
    Input(#[source] std::io::Error),
    /// Zero reducers were asked for.
    #[error("the number of reducers must be at least 1")]
    ZeroReducers,
    /// More reducers than [`MAX_REDUCERS`](super::MAX_REDUCERS) were asked for.
    #[error("{reducers} reducers asked for; at most {max} are allowed", max = super::MAX_REDUCERS)]
    TooManyReducers {
        /// The number asked for.
        reducers: u32,
    },
    /// A map or reduce task failed for good (after its retries).
    #[error("task {task} failed: {failure}")]
    TaskFailed {
        /// The task's job id.
        task: JobId,
        /// Its last failure.
        failure: JobFailure,
    },
    /// A task succeeded but its report could not be read.
    #[error("task {task} returned an unreadable report")]
    BadReport {
        /// The task's job id.
        task: JobId,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// Lost outputs were re-run more often than allowed.
    #[error("gave up after {limit} re-runs of tasks whose outputs were lost")]
    TooManyRecoveries {
        /// The limit that was reached.
        limit: u32,
    },
    /// The coordinator refused a task job.
    #[error("the coordinator refused a task")]
    Submit(#[from] crate::error::SubmitError),
    /// A blob could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A store refused a blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Shuffle data could not be encoded or decoded.
    #[error("shuffle data could not be encoded or decoded")]
    Codec(#[from] bincode::Error),
    /// The node's `partitions` actor could not be started (outside a
    /// Tokio runtime).
    #[error("the partitions actor could not be started")]
    Spawn(#[from] actor_core::ActorError),
    /// The merge of the reduce outputs did not finish (it panicked, or the
    /// runtime is shutting down).
    #[error("the merge of the reduce outputs was aborted")]
    MergeAborted(#[source] tokio::task::JoinError),
    /// The router refused an operation (registering the partition actor).
    #[error("cluster router error")]
    Router(#[from] cluster_router::RouterError),
    /// The coordinator refused a task or stopped before answering.
    #[error("the coordinator failed")]
    Coordinator(#[from] crate::error::JobError),
    /// The driver waits for tasks but none is in progress (a bug; the job
    /// is failed rather than left hanging).
    #[error("map-reduce job {job} stalled in phase {phase:?} with no task in progress")]
    Stalled {
        /// The job.
        job: String,
        /// The phase it stalled in.
        phase: super::Phase,
    },
}
