//! The [`Actor`] trait and the [`Context`] handed to its handlers.

use std::fmt;

use async_trait::async_trait;

use std::sync::Arc;

use crate::actor_ref::{ActorRef, Lifecycle, WeakActorRef};
use crate::error::BoxError;

/// An actor: state plus a handler run for one message at a time.
///
/// A handler that returns `Err` or panics *fails* the actor. A supervised
/// actor ([`Supervisor::spawn_child`](crate::Supervisor::spawn_child)) is then
/// rebuilt by its factory; a plain one ([`spawn`](crate::spawn)) is logged
/// and stopped.
#[async_trait]
pub trait Actor: Send + Sized + 'static {
    /// The type of the messages in this actor's mailbox.
    type Message: Send + 'static;

    /// Runs once before the first message (and again after each restart).
    /// An error fails the actor like a failing handler.
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one message.
    async fn handle(&mut self, msg: Self::Message, ctx: &mut Context<Self>)
        -> Result<(), BoxError>;

    /// Runs once when the actor stops, including after a failure (before a
    /// restart, the failed instance's `stopped` runs too). A panic here is
    /// logged and ignored.
    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx;
    }
}

/// What an actor knows about itself while it runs.
pub struct Context<A: Actor> {
    myself: WeakActorRef<A::Message>,
    stopping: bool,
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name())
            .field("stopping", &self.stopping)
            .finish()
    }
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(myself: &ActorRef<A::Message>) -> Self {
        Self {
            myself: WeakActorRef::new(myself),
            stopping: false,
        }
    }

    pub(crate) fn lifecycle(&self) -> &Arc<Lifecycle> {
        self.myself.lifecycle()
    }

    /// Whether [`Context::stop`] was called.
    pub(crate) fn stop_called(&self) -> bool {
        self.stopping
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        self.myself.lifecycle().name()
    }

    /// A handle to this actor, e.g. to hand to other actors. The context
    /// itself holds only a weak handle, so an actor whose handles are all
    /// dropped still stops; in that case the returned handle is closed.
    pub fn myself(&self) -> ActorRef<A::Message> {
        self.myself.upgrade()
    }

    /// Stops the actor after the current message; messages still queued are
    /// dropped.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether a stop was requested, through [`Context::stop`] or
    /// [`ActorRef::stop`].
    pub fn is_stopping(&self) -> bool {
        self.stopping || self.myself.lifecycle().stop_requested()
    }
}
