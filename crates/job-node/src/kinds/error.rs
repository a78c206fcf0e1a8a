//! The error type shared by the built-in kinds.

use std::time::Duration;

/// Why a built-in job kind failed.
///
/// [`KindError::is_retryable`] tells the queue whether another attempt (maybe
/// on another node) could succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KindError {
    /// The data is not valid JSON of the shape the kind expects.
    #[error("invalid {kind} job data: {source}")]
    InvalidJson {
        /// The kind that rejected the data.
        kind: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// `sleep` data is not a whole number of milliseconds.
    #[error("invalid sleep job data {data:?}: expected a whole number of milliseconds")]
    InvalidSleep {
        /// The data as received (truncated to 64 characters).
        data: String,
    },
    /// A numeric argument is outside the range the kind accepts.
    #[error("{what} is {value}; it must be from {min} to {max}")]
    OutOfRange {
        /// What was out of range (`"sleep milliseconds"`, `"sha256 rounds"`, ...).
        what: &'static str,
        /// The requested value.
        value: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// `exec` asked for a program that is not on the node's allow-list.
    #[error(
        "exec of `{program}` refused: this node only runs programs listed with \
         --allow-exec (allowed: {allowed})"
    )]
    ExecNotAllowed {
        /// The refused program.
        program: String,
        /// The allow-list, comma-separated, or `none`.
        allowed: String,
    },
    /// The program could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Talking to the running program failed.
    #[error("i/o error while running `{program}`: {source}")]
    Io {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The program ran past its time limit and was killed.
    #[error("`{program}` did not finish within {timeout:?} and was killed")]
    ExecTimeout {
        /// The program.
        program: String,
        /// The limit that expired.
        timeout: Duration,
    },
    /// A blocking computation panicked or was cancelled.
    #[error("the {kind} computation was aborted")]
    Aborted {
        /// The kind.
        kind: &'static str,
    },
    /// The job was cancelled while it ran (a program is killed first).
    #[error("the {kind} job was cancelled")]
    Cancelled {
        /// The kind.
        kind: &'static str,
    },
}

impl KindError {
    /// Whether another attempt could succeed: only transient failures
    /// (I/O trouble, timeouts, aborted computations) are retryable; bad data
    /// and refused programs are permanent.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            KindError::Io { .. } | KindError::ExecTimeout { .. } | KindError::Aborted { .. } => {
                true
            }
            KindError::Spawn { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            KindError::InvalidJson { .. }
            | KindError::InvalidSleep { .. }
            | KindError::OutOfRange { .. }
            | KindError::ExecNotAllowed { .. }
            | KindError::Cancelled { .. } => false,
        }
    }
}
