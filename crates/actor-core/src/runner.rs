//! The run loop shared by plain and supervised actors.
//!
//! The loop owns the mailbox receiver and a reused batch buffer; an actor
//! value can be replaced (restart) without touching either, so queued
//! messages survive restarts.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::actor::{Actor, Context};
use crate::actor_ref::Lifecycle;
use crate::error::BoxError;
use crate::supervisor::Failure;

/// Where a run loop takes its messages from.
enum Source<M> {
    /// The actor's own channel.
    Own(mpsc::Receiver<M>),
    /// A channel shared by the members of a pool, one message at a time.
    Shared(Arc<tokio::sync::Mutex<mpsc::Receiver<M>>>),
}

/// The receiving side of an actor's mailbox.
pub(crate) struct Mailbox<M> {
    source: Source<M>,
    /// Received but not yet handled messages, in *reverse* order so that
    /// `pop` yields the oldest. Kept across restarts.
    batch: Vec<M>,
    /// Most messages taken from the channel in one go (one run).
    limit: usize,
}

impl<M: Send + 'static> Mailbox<M> {
    pub(crate) fn new(rx: mpsc::Receiver<M>, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            source: Source::Own(rx),
            batch: Vec::with_capacity(limit.min(4096)),
            limit,
        }
    }

    /// A pool member's view of a shared channel: it takes one message at a
    /// time, so that a free member gets the next one.
    pub(crate) fn shared(rx: Arc<tokio::sync::Mutex<mpsc::Receiver<M>>>) -> Self {
        Self {
            source: Source::Shared(rx),
            batch: Vec::with_capacity(1),
            limit: 1,
        }
    }

    /// Adds messages that are ready now to the (exhausted) current run, up
    /// to `room`. Returns how many were added (none for a pool member).
    fn top_up(&mut self, room: usize) -> usize {
        debug_assert!(self.batch.is_empty());
        let Source::Own(rx) = &mut self.source else {
            return 0;
        };
        while self.batch.len() < room {
            match rx.try_recv() {
                Ok(msg) => self.batch.push(msg),
                Err(_) => break,
            }
        }
        self.batch.reverse();
        self.batch.len()
    }

    /// Stops accepting messages and drops the ones still queued (their
    /// `ask` callers see the actor gone). For a shared channel, only the
    /// last member of the pool calls this.
    pub(crate) fn close(&mut self, lifecycle: &Lifecycle) {
        lifecycle.mark_not_alive();
        self.batch.clear();
        match &mut self.source {
            Source::Own(rx) => close_channel(rx),
            Source::Shared(shared) => {
                // Every other member has ended, so nobody holds the lock.
                if let Ok(mut rx) = shared.try_lock() {
                    close_channel(&mut rx);
                }
            }
        }
    }
}

fn close_channel<M>(rx: &mut mpsc::Receiver<M>) {
    rx.close();
    while rx.try_recv().is_ok() {}
}

/// Why [`serve`] returned.
pub(crate) enum Exit {
    /// A stop was requested by the actor or through a handle.
    Stopped,
    /// Every handle was dropped and the mailbox is drained.
    Closed,
    /// The handler (or `started`) returned an error or panicked.
    Failed(Failure),
}

/// Marks the actor stopped when dropped, even if the run loop task is
/// cancelled (runtime shutdown).
pub(crate) struct FinishGuard(Arc<Lifecycle>);

impl FinishGuard {
    pub(crate) fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self(lifecycle)
    }
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Runs an unsupervised actor to completion. A failure is logged and stops
/// the actor.
pub(crate) async fn run_plain<A: Actor>(
    mut actor: A,
    mut ctx: Context<A>,
    mut mailbox: Mailbox<A::Message>,
) {
    let _guard = FinishGuard::new(Arc::clone(ctx.lifecycle()));
    if let Exit::Failed(failure) = start_and_serve(&mut actor, &mut ctx, &mut mailbox).await {
        tracing::error!(
            actor = ctx.name(),
            %failure,
            "actor failed and is stopped (spawn it under a Supervisor to restart it)"
        );
    }
    shut_down(&mut actor, &mut ctx, &mut mailbox).await;
}

/// Runs `started`, then the message loop; ends the instance's sources
/// (timers, forwarded streams) however it exits.
pub(crate) async fn start_and_serve<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    mailbox: &mut Mailbox<A::Message>,
) -> Exit {
    let exit = match AssertUnwindSafe(actor.started(ctx)).catch_unwind().await {
        Ok(Ok(())) => serve(actor, ctx, mailbox).await,
        Ok(Err(error)) => Exit::Failed(Failure::Errored(error)),
        Err(panic) => Exit::Failed(Failure::from_panic(panic)),
    };
    ctx.end_sources();
    exit
}

/// Handles messages until a stop, a failure or a closed mailbox, calling
/// `drained` after each run.
async fn serve<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    mailbox: &mut Mailbox<A::Message>,
) -> Exit {
    let lifecycle = Arc::clone(ctx.lifecycle());
    // Messages handled in the current run, and whether it lingered once.
    let mut run = 0usize;
    let mut lingered = false;
    loop {
        if ctx.stop_called() || lifecycle.stop_requested() {
            return Exit::Stopped;
        }
        let Some(msg) = mailbox.batch.pop() else {
            if run > 0 {
                if ctx.take_linger() && !lingered && run < mailbox.limit {
                    lingered = true;
                    tokio::task::yield_now().await;
                    if mailbox.top_up(mailbox.limit - run) > 0 {
                        continue;
                    }
                }
                run = 0;
                lingered = false;
                if let Err(failure) = call(actor.drained(ctx)).await {
                    return Exit::Failed(failure);
                }
                continue;
            }
            match refill(mailbox, &lifecycle).await {
                Refill::Received => {}
                Refill::Closed => return Exit::Closed,
                Refill::StopRequested => return Exit::Stopped,
            }
            mailbox.batch.reverse();
            continue;
        };
        run += 1;
        if let Err(failure) = call(actor.handle(msg, ctx)).await {
            return Exit::Failed(failure);
        }
    }
}

/// Awaits a handler or hook, turning an error or a panic into a failure.
async fn call(fut: impl std::future::Future<Output = Result<(), BoxError>>) -> Result<(), Failure> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::Errored(error)),
        Err(panic) => Err(Failure::from_panic(panic)),
    }
}

/// Outcome of waiting for messages.
enum Refill {
    Received,
    Closed,
    StopRequested,
}

/// Waits until messages arrive (moving up to the mailbox's limit of them
/// into the batch buffer), every sender is gone, or a stop is requested.
async fn refill<M: Send + 'static>(mailbox: &mut Mailbox<M>, lifecycle: &Lifecycle) -> Refill {
    let limit = mailbox.limit;
    let batch = &mut mailbox.batch;
    match &mut mailbox.source {
        Source::Own(rx) => receive(rx, batch, limit, lifecycle).await,
        Source::Shared(shared) => {
            // Members queue for the lock (fairly); the holder waits for the
            // next message. A stop wakes the holder, which lets the next
            // member in to see it, and so on.
            let mut rx = shared.lock().await;
            receive(&mut rx, batch, limit, lifecycle).await
        }
    }
}

async fn receive<M: Send + 'static>(
    rx: &mut mpsc::Receiver<M>,
    batch: &mut Vec<M>,
    limit: usize,
    lifecycle: &Lifecycle,
) -> Refill {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(n) = rx.poll_recv_many(cx, batch, limit) {
            return Poll::Ready(if n == 0 {
                Refill::Closed
            } else {
                Refill::Received
            });
        }
        // Register before checking the flag so a concurrent stop is not missed.
        lifecycle.register_stop_waker(cx.waker());
        if lifecycle.stop_requested() {
            Poll::Ready(Refill::StopRequested)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Runs the `stopped` hook; a panic in it is logged and swallowed.
pub(crate) async fn stop_hook<A: Actor>(actor: &mut A, ctx: &mut Context<A>) {
    if let Err(panic) = AssertUnwindSafe(actor.stopped(ctx)).catch_unwind().await {
        tracing::error!(
            actor = ctx.name(),
            panic = panic_message(panic.as_ref()),
            "`stopped` hook panicked"
        );
    }
}

/// Finishes a run loop: closes the mailbox and runs the `stopped` hook.
pub(crate) async fn shut_down<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    mailbox: &mut Mailbox<A::Message>,
) {
    mailbox.close(ctx.lifecycle());
    stop_hook(actor, ctx).await;
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42_u32), "non-string panic payload");
    }
}
