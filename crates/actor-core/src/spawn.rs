//! Spawning actors: [`spawn`], [`spawn_with`] and [`SpawnOptions`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::actor::{Actor, Context};
use crate::actor_ref::{ActorRef, Lifecycle};
use crate::error::ActorError;
use crate::runner::{self, Mailbox};

/// Mailbox capacity used when none is configured.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Options for [`spawn_with`] and
/// [`Supervisor::spawn_child`](crate::Supervisor::spawn_child).
///
/// ```
/// # use actor_core::SpawnOptions;
/// let opts = SpawnOptions::default().capacity(16);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    capacity: usize,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl SpawnOptions {
    /// Sets the mailbox capacity (default [`DEFAULT_CAPACITY`]). When the
    /// mailbox is full, `tell` waits and `try_tell` fails. Zero (or more
    /// than `tokio::sync::Semaphore::MAX_PERMITS`) is rejected by the spawn
    /// call with [`ActorError::InvalidCapacity`].
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }
}

/// Spawns `actor` on the current Tokio runtime with default options and
/// returns its handle.
///
/// A handler error or panic is logged and stops the actor; use a
/// [`Supervisor`](crate::Supervisor) to have it restarted instead.
///
/// # Panics
///
/// Like `tokio::spawn`, panics when called outside a Tokio runtime; use
/// [`spawn_with`] to get an error instead.
pub fn spawn<A: Actor>(name: impl Into<String>, actor: A) -> ActorRef<A::Message> {
    match spawn_with(name, actor, SpawnOptions::default()) {
        Ok(actor) => actor,
        // The only possible error with default options (non-zero
        // capacity): no runtime.
        Err(err) => panic!("actor_core::spawn: {err}"),
    }
}

/// Spawns `actor` with `opts` (capacity) on the current Tokio runtime.
///
/// # Errors
///
/// [`ActorError::InvalidCapacity`] for a zero capacity,
/// [`ActorError::NoRuntime`] outside a Tokio runtime.
pub fn spawn_with<A: Actor>(
    name: impl Into<String>,
    actor: A,
    opts: SpawnOptions,
) -> Result<ActorRef<A::Message>, ActorError> {
    let (handle, runtime, ctx, mailbox) = prepare::<A>(name.into(), &opts)?;
    runtime.spawn(runner::run_plain(actor, ctx, mailbox));
    Ok(handle)
}

/// Everything a run loop needs, created before the actor starts.
pub(crate) type Prepared<A> = (
    ActorRef<<A as Actor>::Message>,
    tokio::runtime::Handle,
    Context<A>,
    Mailbox<<A as Actor>::Message>,
);

/// Validates `opts`, creates the mailbox and handle.
pub(crate) fn prepare<A: Actor>(
    name: String,
    opts: &SpawnOptions,
) -> Result<Prepared<A>, ActorError> {
    if opts.capacity == 0 || opts.capacity > tokio::sync::Semaphore::MAX_PERMITS {
        return Err(ActorError::InvalidCapacity);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ActorError::NoRuntime)?;
    let (tx, rx) = mpsc::channel(opts.capacity);
    let handle = ActorRef::new(tx, Lifecycle::new(Arc::from(name)));
    let ctx = Context::new(&handle);
    Ok((handle, runtime, ctx, Mailbox::new(rx)))
}
