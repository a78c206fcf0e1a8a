//! Errors of the job queue: the crate-wide [`JobError`] and small
//! per-operation error types.

use crate::job::{Job, JobId};

/// The crate-wide error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A job id was malformed.
    #[error(transparent)]
    JobId(#[from] ParseJobIdError),
    /// A job failed validation.
    #[error(transparent)]
    InvalidJob(#[from] InvalidJob),
    /// A wire form could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A coordinator refused a submission.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The router refused an operation (registering a name, sending).
    #[error("router error")]
    Router(#[source] Box<cluster_router::RouterError>),
    /// An actor could not be spawned.
    #[error("cannot spawn an actor")]
    Actor(#[from] actor_core::ActorError),
    /// An actor did not answer a request.
    #[error("no answer from the coordinator")]
    Ask(#[from] actor_core::AskError),
    /// The coordinator or worker pool has stopped.
    #[error("the job service has stopped")]
    Stopped,
    /// The coordinator's journal (data directory) could not be used.
    #[error("job journal error")]
    Journal(#[source] std::io::Error),
    /// No such job (e.g. [`Coordinator::attach`](crate::Coordinator::attach)
    /// to an id that was not resumed).
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    /// A recurring job was refused (bad name, expression or template).
    #[error(transparent)]
    Recurring(#[from] crate::service::RecurringError),
    /// A query or cancellation named more ids than one command may.
    #[error("{got} ids in one command, above the limit of {max}")]
    TooManyIds {
        /// Ids given.
        got: usize,
        /// The limit.
        max: usize,
    },
}

impl From<cluster_router::RouterError> for JobError {
    fn from(err: cluster_router::RouterError) -> Self {
        JobError::Router(Box::new(err))
    }
}

/// Why a string is not a valid [`JobId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseJobIdError {
    /// The id is empty.
    #[error("job id is empty")]
    Empty,
    /// The id is longer than [`JobId::MAX_LEN`] bytes.
    #[error("job id is {len} bytes, more than the limit of {max}", max = JobId::MAX_LEN)]
    TooLong {
        /// The id's length in bytes.
        len: usize,
    },
    /// The id contains whitespace or a control character.
    #[error("job id contains the forbidden character {c:?}")]
    BadChar {
        /// The offending character.
        c: char,
    },
}

/// Why a [`Job`] is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidJob {
    /// The kind is empty or longer than [`Job::MAX_KIND_LEN`].
    #[error("job kind must be 1..={max} bytes, got {len}", max = Job::MAX_KIND_LEN)]
    Kind {
        /// The kind's length in bytes.
        len: usize,
    },
    /// `max_attempts` is zero.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// The timeout is zero.
    #[error("timeout must be positive")]
    ZeroTimeout,
    /// A required tag is empty or longer than [`Job::MAX_TAG_LEN`].
    #[error("required tag {tag:?} is invalid: tags are 1..={max} bytes", max = Job::MAX_TAG_LEN)]
    Tag {
        /// The offending tag.
        tag: String,
    },
    /// More than [`Job::MAX_TAGS`] required tags.
    #[error("a job may require at most {max} tags, got {count}", max = Job::MAX_TAGS)]
    TooManyTags {
        /// How many were given.
        count: usize,
    },
    /// The timeout is above [`Job::MAX_TIMEOUT`].
    #[error("timeout must be at most {max} s, got {ms} ms", max = Job::MAX_TIMEOUT.as_secs())]
    TimeoutTooLong {
        /// The timeout given, in milliseconds.
        ms: u128,
    },
    /// `max_attempts` is above [`Job::MAX_ATTEMPTS`].
    #[error("max_attempts must be at most {max}, got {got}", max = Job::MAX_ATTEMPTS)]
    TooManyAttempts {
        /// The value given.
        got: u32,
    },
    /// The data is longer than [`Job::MAX_DATA_LEN`].
    #[error("job data must be at most {max} bytes, got {len}", max = Job::MAX_DATA_LEN)]
    DataTooLarge {
        /// The data's length in bytes.
        len: usize,
    },
}

/// Why a JSON or bincode form could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Malformed JSON or a missing/mistyped field. Its text quotes the
    /// offending input (a field's name, a value) and is cut to
    /// [`cluster_router::MAX_ERROR_TEXT`] bytes, as it goes back to the
    /// client.
    #[error("invalid JSON: {}", cluster_router::bound_text(&.0.to_string()))]
    Json(#[from] serde_json::Error),
    /// Malformed bincode, or input above the size limit.
    #[error("invalid bincode: {0}")]
    Bincode(#[from] bincode::Error),
    /// The bincode form was written by another wire version.
    #[error("wire version {found} is not supported (expected {expected})")]
    Version {
        /// The version found in the input.
        found: u8,
        /// The version this build speaks.
        expected: u8,
    },
    /// A job id in the input is malformed.
    #[error(transparent)]
    JobId(#[from] ParseJobIdError),
    /// A field holds a value out of range.
    #[error("field `{field}` is invalid: {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a coordinator refused a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The job failed validation.
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    /// A job with this id is still running.
    #[error("job {0} is already in progress")]
    Duplicate(JobId),
    /// The coordinator already tracks its maximum number of jobs.
    #[error("coordinator is at capacity ({limit} jobs in progress or queued)")]
    AtCapacity {
        /// The configured limit.
        limit: usize,
    },
    /// The coordinator is draining: it finishes the jobs it holds and
    /// takes no new ones.
    #[error("coordinator on node {node} is draining")]
    Draining {
        /// The coordinator's node.
        node: String,
    },
    /// One job of a batch was refused, so the whole batch was.
    #[error("job {index} of the batch was refused")]
    InBatch {
        /// The job's position in the batch.
        index: usize,
        /// Why it was refused.
        #[source]
        source: Box<SubmitError>,
    },
    /// No dead letter has this id.
    #[error("no dead letter with id {0}")]
    NotDeadLettered(JobId),
    /// The job could not be written to the coordinator's journal, so it
    /// was not acknowledged (it may still run).
    #[error("cannot journal the job: {kind}")]
    Journal {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
    },
}

/// Why the worker engine did not accept a job; hands the job back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySubmitError<T> {
    /// The queue is full.
    #[error("worker queue is full")]
    Full(T),
    /// The engine has shut down.
    #[error("worker engine is shut down")]
    Closed(T),
}

impl<T> TrySubmitError<T> {
    /// The value that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            TrySubmitError::Full(v) | TrySubmitError::Closed(v) => v,
        }
    }
}

/// The worker engine has shut down; hands the job back.
#[derive(Debug, thiserror::Error)]
#[error("worker engine is shut down")]
pub struct EngineClosed<T>(pub T);
