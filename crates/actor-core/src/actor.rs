//! The [`Actor`] trait and the [`Context`] handed to its handlers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;

use crate::actor_ref::{ActorRef, Lifecycle, WeakActorRef};
use crate::error::BoxError;
use crate::sources::{SourceId, Sources};

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

    /// Runs after a run of messages has been handled, before the actor
    /// waits for more. A run is what the mailbox held when it was last
    /// read, at most [`SpawnOptions::batch`](crate::SpawnOptions::batch)
    /// messages, so under a steady stream this still runs at least once
    /// every `batch` messages. It lets an actor batch work across messages:
    /// flush buffered writes, send one network frame for many requests.
    /// An error or panic fails the actor like a failing handler.
    async fn drained(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// Runs once when the actor stops, including after a failure (before a
    /// restart, the failed instance's `stopped` runs too). A panic here is
    /// logged and ignored.
    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx;
    }
}

/// What an actor knows about itself while it runs, and the message sources
/// it owns: timers ([`Context::send_after`], [`Context::run_interval`]) and
/// forwarded streams ([`Context::forward`]).
///
/// Sources belong to the actor *instance*: they end when it stops or fails.
/// A supervised actor's new instance sets up its own in
/// [`Actor::started`]. Each source holds only a weak handle to the actor
/// (it does not keep the actor alive) and delivers with
/// [`ActorRef::tell`], so it waits while the mailbox is full instead of
/// dropping messages; one source's messages arrive in order.
pub struct Context<A: Actor> {
    myself: WeakActorRef<A::Message>,
    stopping: bool,
    linger: bool,
    sources: Sources,
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name())
            .field("stopping", &self.stopping)
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(myself: WeakActorRef<A::Message>) -> Self {
        Self {
            myself,
            stopping: false,
            linger: false,
            sources: Sources::default(),
        }
    }

    /// A context for another run loop of the same actor (a pool member):
    /// same handle, no sources of its own yet.
    pub(crate) fn sibling(&self) -> Self {
        Self::new(self.myself.clone())
    }

    /// Takes the [`Context::linger`] request, if any.
    pub(crate) fn take_linger(&mut self) -> bool {
        std::mem::take(&mut self.linger)
    }

    /// Ends every source of the instance that is ending.
    pub(crate) fn end_sources(&mut self) {
        self.linger = false;
        self.sources.cancel_all();
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

    /// Asks the run loop, once, to let other tasks run before this run of
    /// messages ends, and to add what arrived meanwhile to the run (up to
    /// [`SpawnOptions::batch`](crate::SpawnOptions::batch) messages in
    /// all) before [`Actor::drained`]. An actor under load calls it so that
    /// one `drained` covers more messages (fewer, fuller batches); an idle
    /// actor does not, and answers at once.
    pub fn linger(&mut self) {
        self.linger = true;
    }

    /// Delivers `msg` to this actor once, after `delay`.
    pub fn send_after(&mut self, delay: Duration, msg: A::Message) -> SourceId {
        let mut msg = Some(msg);
        let stream = futures_util::stream::once(tokio::time::sleep(delay));
        self.forward(stream, move |()| msg.take().expect("one item"))
    }

    /// Delivers `make()` to this actor every `period` (the first one period
    /// from now; a zero period counts as 1 ms). A tick that finds the
    /// mailbox full waits for room; ticks missed meanwhile are skipped, not
    /// bunched up.
    pub fn run_interval(
        &mut self,
        period: Duration,
        mut make: impl FnMut() -> A::Message + Send + 'static,
    ) -> SourceId {
        let period = period.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = futures_util::stream::unfold(ticker, |mut ticker| async move {
            ticker.tick().await;
            Some(((), ticker))
        });
        self.forward(ticks, move |()| make())
    }

    /// Forwards every item of `stream`, converted by `map`, into this
    /// actor's mailbox, in order, until the stream ends, the source is
    /// [cancelled](Context::cancel) or the instance ends. While the mailbox
    /// is full, the stream is not polled (backpressure).
    pub fn forward<S, F>(&mut self, stream: S, map: F) -> SourceId
    where
        S: Stream + Send + 'static,
        F: FnMut(S::Item) -> A::Message + Send + 'static,
    {
        self.sources.spawn(self.myself.clone(), stream, map)
    }

    /// Ends a source of this instance. Returns whether it was still
    /// running. A message it already handed to the mailbox stays there.
    pub fn cancel(&mut self, source: SourceId) -> bool {
        self.sources.cancel(source)
    }
}
