//! [`ActorRef`], the handle used to talk to an actor, and [`ReplyTo`], the
//! one-shot reply handle carried inside `ask` requests.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::task::Waker;

use futures_util::task::AtomicWaker;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::{AskError, SendError, TrySendError};
use crate::sender::Tx;

/// State shared by every handle of one actor and by its run loop.
pub(crate) struct Lifecycle {
    name: Arc<str>,
    /// Set by [`ActorRef::stop`]; the run loop checks it after every message.
    stop_requested: AtomicBool,
    /// Wakes the run loop when it is idle and a stop is requested.
    stop_waker: AtomicWaker,
    /// True from spawn until the actor stops accepting messages.
    alive: AtomicBool,
    /// Becomes `true` once the actor has fully stopped (hooks run).
    stopped: watch::Sender<bool>,
}

impl Lifecycle {
    pub(crate) fn new(name: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            name,
            stop_requested: AtomicBool::new(false),
            stop_waker: AtomicWaker::new(),
            alive: AtomicBool::new(true),
            stopped: watch::Sender::new(false),
        })
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
        self.stop_waker.wake();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Arranges for `waker` to be woken by [`Self::request_stop`]. Check
    /// [`Self::stop_requested`] after registering to not miss a stop.
    pub(crate) fn register_stop_waker(&self, waker: &Waker) {
        self.stop_waker.register(waker);
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn mark_not_alive(&self) {
        self.alive.store(false, Ordering::Release);
    }

    /// Final step of the run loop: wakes every `wait_stopped` caller.
    /// Idempotent.
    pub(crate) fn finish(&self) {
        self.mark_not_alive();
        self.stopped.send_replace(true);
    }
}

/// A handle to a running actor that accepts messages of type `M`.
///
/// Cloning is cheap (two reference-count increments). An actor stops on its
/// own once every `ActorRef` to it is gone and its mailbox is drained.
///
/// `M` is usually the actor's own message type; a handle from
/// [`ActorRef::recipient`] accepts another type that converts into it.
pub struct ActorRef<M> {
    tx: Tx<M>,
    lifecycle: Arc<Lifecycle>,
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }
}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("name", &self.lifecycle.name())
            .field("alive", &self.lifecycle.is_alive())
            .finish()
    }
}

impl<M: Send + 'static> ActorRef<M> {
    pub(crate) fn new(tx: mpsc::Sender<M>, lifecycle: Arc<Lifecycle>) -> Self {
        Self {
            tx: Tx::Direct(tx),
            lifecycle,
        }
    }

    pub(crate) fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// The name the actor was spawned with.
    pub fn name(&self) -> &str {
        self.lifecycle.name()
    }

    /// Sends a message, waiting for mailbox space when the mailbox is full
    /// (backpressure).
    ///
    /// # Errors
    ///
    /// [`SendError`] carrying the message back if the actor has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before completion the message
    /// was not queued (and is dropped with the future).
    pub async fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.tx.send(msg).await
    }

    /// Sends a message without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the mailbox is full, [`TrySendError::Closed`]
    /// if the actor has stopped; both hand the message back.
    pub fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.tx.try_send(msg)
    }

    /// A handle to the same actor and mailbox that accepts `N`, converted
    /// into `M` as it enters the mailbox: e.g. a router that delivers
    /// `ActorRef<Envelope>` can feed an actor whose messages are an enum
    /// with an envelope variant, so the actor keeps one mailbox for
    /// envelopes and local requests alike.
    ///
    /// The conversion runs only once a mailbox slot is reserved, so a failed
    /// send hands back the `N` that was given. Sends through a recipient
    /// cost one dynamic call (and one allocation when they wait for room,
    /// or when the handle is itself a recipient of a recipient).
    ///
    /// # Examples
    ///
    /// ```
    /// # use actor_core::{spawn, Actor, BoxError, Context};
    /// enum Msg { Text(String), Count(u32) }
    /// impl From<String> for Msg {
    ///     fn from(text: String) -> Msg { Msg::Text(text) }
    /// }
    /// # struct Logger;
    /// # #[async_trait::async_trait]
    /// # impl Actor for Logger {
    /// #     type Message = Msg;
    /// #     async fn handle(&mut self, _msg: Msg, _ctx: &mut Context<Self>) -> Result<(), BoxError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let logger = spawn("logger", Logger);
    /// let texts: actor_core::ActorRef<String> = logger.recipient();
    /// texts.tell("hello".to_owned()).await.unwrap();
    /// assert!(texts.same_actor(&logger.recipient()));
    /// # }
    /// ```
    pub fn recipient<N>(&self) -> ActorRef<N>
    where
        N: Send + 'static,
        M: From<N>,
    {
        ActorRef {
            tx: self.tx.map(),
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }

    /// Sends a request built by `make` around a fresh [`ReplyTo`] and waits
    /// for the reply. `timeout` bounds the whole exchange: waiting for
    /// mailbox space and waiting for the answer.
    ///
    /// # Errors
    ///
    /// - [`AskError::Full`]: the mailbox stayed full until the deadline;
    /// - [`AskError::Timeout`]: delivered, but no reply before the deadline;
    /// - [`AskError::ActorGone`]: the actor stopped before answering;
    /// - [`AskError::NoReply`]: the actor dropped the [`ReplyTo`] unanswered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the request; the actor's later
    /// [`ReplyTo::send`] then returns `false`.
    pub async fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let deadline = Instant::now().checked_add(timeout);
        let remaining =
            || deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        let (reply_tx, reply_rx) = oneshot::channel();
        let msg = make(ReplyTo { tx: reply_tx });
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(AskError::ActorGone),
            Err(TrySendError::Full(msg)) => {
                match tokio::time::timeout(remaining(), self.tx.send(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(AskError::ActorGone),
                    Err(_) => return Err(AskError::Full),
                }
            }
        }
        match tokio::time::timeout(remaining(), reply_rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) if self.is_alive() => Err(AskError::NoReply),
            Ok(Err(_)) => Err(AskError::ActorGone),
            Err(_) => Err(AskError::Timeout),
        }
    }

    /// Asks the actor to stop after the message it is handling now.
    /// Messages still queued are dropped. Idempotent.
    pub fn stop(&self) {
        self.lifecycle.request_stop();
    }

    /// Whether the actor still accepts messages.
    pub fn is_alive(&self) -> bool {
        self.lifecycle.is_alive() && !self.tx.is_closed()
    }

    /// Waits until the actor has fully stopped: its `stopped` hook has run.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_stopped(&self) {
        let mut rx = self.lifecycle.stopped.subscribe();
        // The sender lives in `self.lifecycle`, so it cannot be dropped here.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// A handle that waits for this actor to stop without keeping it
    /// alive (an `ActorRef` does: the actor stops on its own only once every
    /// `ActorRef` is gone).
    pub fn stop_watch(&self) -> StopWatch {
        StopWatch {
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }

    /// Number of free slots in the mailbox right now.
    pub fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// The mailbox capacity the actor was spawned with.
    pub fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Whether two handles point at the same actor.
    pub fn same_actor(&self, other: &ActorRef<M>) -> bool {
        Arc::ptr_eq(&self.lifecycle, &other.lifecycle)
    }
}

/// Waits for an actor to stop, without keeping it alive; from
/// [`ActorRef::stop_watch`].
#[derive(Clone)]
pub struct StopWatch {
    lifecycle: Arc<Lifecycle>,
}

impl StopWatch {
    /// Waits until the actor has fully stopped: its `stopped` hook has run
    /// and its names are removed from every registry.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) {
        let mut rx = self.lifecycle.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Whether the actor has fully stopped.
    pub fn is_stopped(&self) -> bool {
        *self.lifecycle.stopped.borrow()
    }
}

impl fmt::Debug for StopWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopWatch")
            .field("name", &self.lifecycle.name())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// A weak handle kept by the actor's own [`Context`](crate::Context) (and by
/// its timers and forwarded streams), so that an actor does not keep itself
/// alive.
pub(crate) struct WeakActorRef<M> {
    tx: mpsc::WeakSender<M>,
    lifecycle: Arc<Lifecycle>,
}

impl<M> Clone for WeakActorRef<M> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }
}

impl<M: Send + 'static> WeakActorRef<M> {
    /// A weak handle to the actor that owns the channel `tx`.
    pub(crate) fn new(tx: &mpsc::Sender<M>, lifecycle: &Arc<Lifecycle>) -> Self {
        Self {
            tx: tx.downgrade(),
            lifecycle: Arc::clone(lifecycle),
        }
    }

    /// A strong handle, unless every strong handle is gone.
    pub(crate) fn try_upgrade(&self) -> Option<ActorRef<M>> {
        let tx = self.tx.upgrade()?;
        Some(ActorRef::new(tx, Arc::clone(&self.lifecycle)))
    }

    pub(crate) fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// A strong handle; if every handle is gone, a handle whose sends fail
    /// with `Closed` (the actor is finishing its last queued messages).
    pub(crate) fn upgrade(&self) -> ActorRef<M> {
        let tx = self.tx.upgrade().unwrap_or_else(|| mpsc::channel(1).0);
        ActorRef::new(tx, Arc::clone(&self.lifecycle))
    }
}

/// The reply handle of one [`ActorRef::ask`] request; answer it with
/// [`ReplyTo::send`]. Dropping it unanswered makes the asker fail with
/// [`AskError::NoReply`] (or [`AskError::ActorGone`] if the actor stopped).
pub struct ReplyTo<R> {
    tx: oneshot::Sender<R>,
}

impl<R> ReplyTo<R> {
    /// Sends the reply. Returns `false` if the asker stopped waiting
    /// (timed out or was cancelled).
    pub fn send(self, reply: R) -> bool {
        self.tx.send(reply).is_ok()
    }

    /// Whether the asker has stopped waiting, so computing a reply is moot.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("closed", &self.is_closed())
            .finish()
    }
}
