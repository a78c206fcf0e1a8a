//! Spawning actors: [`spawn`], [`spawn_with`] and [`SpawnOptions`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::actor::{Actor, Context};
use crate::actor_ref::{ActorRef, Lifecycle, WeakActorRef};
use crate::error::ActorError;
use crate::runner::{self, Mailbox};

/// Mailbox capacity used when none is configured.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Run length used when none is configured (see [`SpawnOptions::batch`]).
pub const DEFAULT_BATCH: usize = 64;

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
    batch: usize,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            batch: DEFAULT_BATCH,
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

    /// Sets the run length (default [`DEFAULT_BATCH`]; zero counts as one):
    /// the most messages the run loop takes from the mailbox in one go, and
    /// so the most handled between two calls of
    /// [`Actor::drained`](crate::Actor::drained).
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
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
pub(crate) type Prepared<A, R = Mailbox<<A as Actor>::Message>> = (
    ActorRef<<A as Actor>::Message>,
    tokio::runtime::Handle,
    Context<A>,
    R,
);

/// Validates `opts`, creates the mailbox and handle.
pub(crate) fn prepare<A: Actor>(
    name: String,
    opts: &SpawnOptions,
) -> Result<Prepared<A>, ActorError> {
    let (handle, runtime, ctx, rx) = prepare_channel::<A>(name, opts)?;
    Ok((handle, runtime, ctx, Mailbox::new(rx, opts.batch)))
}

/// [`prepare`], handing out the mailbox's bare channel (to share it).
pub(crate) fn prepare_channel<A: Actor>(
    name: String,
    opts: &SpawnOptions,
) -> Result<Prepared<A, mpsc::Receiver<A::Message>>, ActorError> {
    if opts.capacity == 0 || opts.capacity > tokio::sync::Semaphore::MAX_PERMITS {
        return Err(ActorError::InvalidCapacity);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ActorError::NoRuntime)?;
    let (tx, rx) = mpsc::channel(opts.capacity);
    let lifecycle = Lifecycle::new(Arc::from(name));
    let ctx = Context::new(WeakActorRef::new(&tx, &lifecycle));
    let handle = ActorRef::new(tx, lifecycle);
    Ok((handle, runtime, ctx, rx))
}
