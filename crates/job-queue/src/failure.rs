//! Why a job attempt failed: [`FailureCause`], [`JobFailure`] and the error a
//! handler returns, [`HandlerError`].

use std::fmt;

pub use actor_core::BoxError;
use serde::{Deserialize, Serialize};

/// The reason one attempt of a job failed.
///
/// Serialized in `snake_case` (`"timeout"`, `"node_down"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCause {
    /// No result arrived before the job's timeout.
    Timeout,
    /// The node running the attempt was marked Down.
    NodeDown,
    /// The handler returned an error.
    Handler,
    /// The handler panicked.
    Panic,
    /// The dispatch could not be delivered to the worker pool.
    Undeliverable,
    /// The worker node has no handler for the job's kind.
    UnknownKind,
    /// The handler could not decode the job's data.
    BadData,
    /// No Up node has the required tags and serves the kind.
    NoEligibleNode,
    /// The worker pool did not take the job (its queue was full, or it is
    /// draining); the job never ran there. A coordinator places it again
    /// without counting an attempt.
    Refused,
    /// The job was cancelled (`cancel` command, `DELETE /v1/jobs/{id}`,
    /// [`Coordinator::cancel`](crate::Coordinator::cancel)). Never retried.
    Cancelled,
}

impl FailureCause {
    /// Every cause, in declaration order.
    pub const ALL: [FailureCause; 10] = [
        FailureCause::Timeout,
        FailureCause::NodeDown,
        FailureCause::Handler,
        FailureCause::Panic,
        FailureCause::Undeliverable,
        FailureCause::UnknownKind,
        FailureCause::BadData,
        FailureCause::NoEligibleNode,
        FailureCause::Refused,
        FailureCause::Cancelled,
    ];

    /// The `snake_case` name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Timeout => "timeout",
            FailureCause::NodeDown => "node_down",
            FailureCause::Handler => "handler",
            FailureCause::Panic => "panic",
            FailureCause::Undeliverable => "undeliverable",
            FailureCause::UnknownKind => "unknown_kind",
            FailureCause::BadData => "bad_data",
            FailureCause::NoEligibleNode => "no_eligible_node",
            FailureCause::Refused => "refused",
            FailureCause::Cancelled => "cancelled",
        }
    }

    /// Whether a failure with this cause is retried by default.
    ///
    /// Infrastructure failures (timeout, node down, undeliverable, unknown
    /// kind on a stale node, panic) are retried on another node; bad data and
    /// a missing eligible node are not. Handler errors say for themselves.
    pub fn retryable_by_default(self) -> bool {
        !matches!(
            self,
            FailureCause::BadData | FailureCause::NoEligibleNode | FailureCause::Cancelled
        )
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job (or one attempt of it) failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The category of the failure.
    pub cause: FailureCause,
    /// A human-readable explanation.
    pub message: String,
    /// Whether the coordinator may retry the job after this failure.
    pub retryable: bool,
}

impl JobFailure {
    /// A failure with the cause's default retryability.
    pub fn new(cause: FailureCause, message: impl Into<String>) -> Self {
        JobFailure {
            cause,
            message: message.into(),
            retryable: cause.retryable_by_default(),
        }
    }

    /// The failure a handler error turns into.
    pub fn from_handler_error(err: &HandlerError) -> Self {
        let (cause, retryable) = match err {
            HandlerError::Retryable(_) => (FailureCause::Handler, true),
            HandlerError::Permanent(_) => (FailureCause::Handler, false),
            HandlerError::BadData(_) => (FailureCause::BadData, false),
        };
        JobFailure {
            cause,
            message: err.to_string(),
            retryable,
        }
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        write!(f, "{} ({kind}): {}", self.cause, self.message)
    }
}

/// The error a job handler returns.
///
/// [`Retryable`](HandlerError::Retryable) errors are retried on another node
/// while attempts remain; [`Permanent`](HandlerError::Permanent) and
/// [`BadData`](HandlerError::BadData) errors fail the job at once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// A transient failure: another attempt may succeed.
    #[error("retryable handler error: {0}")]
    Retryable(#[source] BoxError),
    /// A failure that no retry can fix.
    #[error("permanent handler error: {0}")]
    Permanent(#[source] BoxError),
    /// The job's data could not be decoded.
    #[error("undecodable job data: {0}")]
    BadData(#[source] BoxError),
}

impl HandlerError {
    /// A transient failure; the job is retried while attempts remain.
    pub fn retryable(err: impl Into<BoxError>) -> Self {
        HandlerError::Retryable(err.into())
    }

    /// A permanent failure; the job is not retried.
    pub fn permanent(err: impl Into<BoxError>) -> Self {
        HandlerError::Permanent(err.into())
    }

    /// Undecodable input data; the job is not retried.
    pub fn bad_data(err: impl Into<BoxError>) -> Self {
        HandlerError::BadData(err.into())
    }

    /// Whether the coordinator may retry after this error.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retryable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_errors_map_to_causes() {
        let f = JobFailure::from_handler_error(&HandlerError::retryable("busy"));
        assert_eq!((f.cause, f.retryable), (FailureCause::Handler, true));
        assert!(f.message.contains("busy"));
        let f = JobFailure::from_handler_error(&HandlerError::permanent("nope"));
        assert_eq!((f.cause, f.retryable), (FailureCause::Handler, false));
        let f = JobFailure::from_handler_error(&HandlerError::bad_data("not json"));
        assert_eq!((f.cause, f.retryable), (FailureCause::BadData, false));
    }

    #[test]
    fn cause_names_match_serde() {
        for cause in FailureCause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
        }
    }
}
