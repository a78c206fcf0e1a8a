//! Error types: one crate-wide [`ActorError`] plus one small type per
//! operation ([`SendError`], [`TrySendError`], [`AskError`]).
//!
//! The per-operation errors of `tell` and `try_tell` hand the unsent message
//! back, so the caller can retry, reroute or drop it deliberately.

use std::fmt;

/// The error type returned by actor handlers and lifecycle hooks.
///
/// Any `std::error::Error + Send + Sync` converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the crate-wide operation: spawning.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorError {
    /// A mailbox capacity of zero was requested; the minimum is one.
    #[error("mailbox capacity must be at least 1")]
    InvalidCapacity,
    /// `spawn_with` / `spawn_child` was called outside a Tokio runtime.
    #[error("no Tokio runtime is running on this thread")]
    NoRuntime,
}

/// Error of [`ActorRef::tell`](crate::ActorRef::tell): the actor has stopped.
///
/// The undelivered message is handed back in the tuple field.
#[derive(thiserror::Error, Clone, PartialEq, Eq)]
#[error("the actor has stopped; the message was not delivered")]
pub struct SendError<M>(pub M);

impl<M> SendError<M> {
    /// Returns the message that could not be delivered.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError").finish_non_exhaustive()
    }
}

/// Error of [`ActorRef::try_tell`](crate::ActorRef::try_tell).
///
/// Both variants hand the undelivered message back.
#[derive(thiserror::Error, Clone, PartialEq, Eq)]
pub enum TrySendError<M> {
    /// The mailbox is full; the actor is alive but behind.
    #[error("the mailbox is full; the message was not delivered")]
    Full(M),
    /// The actor has stopped.
    #[error("the actor has stopped; the message was not delivered")]
    Closed(M),
}

impl<M> TrySendError<M> {
    /// Returns the message that could not be delivered.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(msg) | Self::Closed(msg) => msg,
        }
    }

    /// Whether the failure was a full mailbox (as opposed to a stopped actor).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<M> From<SendError<M>> for TrySendError<M> {
    fn from(err: SendError<M>) -> Self {
        Self::Closed(err.0)
    }
}

/// Error of [`ActorRef::ask`](crate::ActorRef::ask).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AskError {
    /// The request was delivered but no reply arrived before the deadline.
    #[error("no reply before the deadline")]
    Timeout,
    /// The actor has stopped (before or while handling the request).
    #[error("the actor has stopped")]
    ActorGone,
    /// The mailbox stayed full until the deadline; the request was not delivered.
    #[error("the mailbox stayed full until the deadline")]
    Full,
    /// The actor is alive but dropped the reply handle without answering
    /// (its handler ignored it or failed while handling the request).
    #[error("the actor dropped the request without replying")]
    NoReply,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_hand_the_message_back() {
        assert_eq!(SendError(7).into_inner(), 7);
        assert_eq!(TrySendError::Full(1).into_inner(), 1);
        assert_eq!(TrySendError::Closed(2).into_inner(), 2);
        assert!(TrySendError::Full(()).is_full());
        assert!(!TrySendError::from(SendError(())).is_full());
    }

    #[test]
    fn errors_display_without_debug_on_message() {
        struct Opaque;
        assert_eq!(format!("{:?}", TrySendError::Full(Opaque)), "Full(..)");
        assert!(SendError(Opaque).to_string().contains("stopped"));
        let boxed: BoxError = Box::new(AskError::Timeout);
        assert_eq!(boxed.to_string(), "no reply before the deadline");
    }
}
