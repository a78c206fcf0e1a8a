//! Per-actor overflow queues, so that one full mailbox never stalls the
//! delivery of incoming envelopes to every other local actor.
//!
//! Incoming traffic (batches from peer links and external clients) is
//! dispatched by one task. It hands each envelope to its mailbox with
//! `try_tell`; when the mailbox is full, the envelope goes to that actor's
//! [`Backlog`] instead, and a drainer task (one per backlog while it holds
//! anything) feeds the backlog into the mailbox with the awaiting `tell`.
//! While a backlog is not empty, every later envelope for that actor joins
//! it too, so envelopes keep their order.
//!
//! A backlog is bounded (envelopes and payload bytes). When one is at its
//! bound, the dispatch task waits for room: the incoming queue of the
//! transport fills, its link readers stop reading, and the senders' link
//! queues fill, so backpressure still reaches the peers that flood a slow
//! actor; below the bound, nobody else notices that actor is slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use actor_core::{ActorRef, TrySendError};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::envelope::Envelope;
use crate::router::Inner;

/// A registered local actor: its mailbox and its overflow queue.
pub(crate) struct Slot {
    pub(crate) actor: ActorRef<Envelope>,
    pub(crate) backlog: Arc<Backlog>,
}

impl Slot {
    pub(crate) fn new(actor: ActorRef<Envelope>, limits: BacklogLimits) -> Self {
        Slot {
            actor,
            backlog: Arc::new(Backlog::new(limits)),
        }
    }
}

/// Bounds of one backlog.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BacklogLimits {
    /// Most envelopes held (the one being delivered included).
    pub(crate) envelopes: usize,
    /// Most payload bytes held.
    pub(crate) bytes: usize,
}

#[derive(Default)]
struct Queue {
    envelopes: VecDeque<Envelope>,
    /// Whether a drainer task is running.
    draining: bool,
}

/// The overflow queue of one actor.
pub(crate) struct Backlog {
    queue: Mutex<Queue>,
    /// Envelopes queued plus the one the drainer is delivering.
    len: AtomicUsize,
    /// Payload bytes queued plus those of the one being delivered.
    bytes: AtomicUsize,
    limits: BacklogLimits,
    /// Woken when an envelope left the backlog (or it closed).
    room: Notify,
    closed: AtomicBool,
    /// Woken when the backlog closes.
    stop: Notify,
}

impl Backlog {
    fn new(limits: BacklogLimits) -> Self {
        Backlog {
            queue: Mutex::default(),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            limits,
            room: Notify::new(),
            closed: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }

    /// Whether nothing is queued or being delivered (the fast path may
    /// then `try_tell` without overtaking anything).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Whether the backlog is at one of its bounds.
    pub(crate) fn is_full(&self) -> bool {
        self.len.load(Ordering::Acquire) >= self.limits.envelopes
            || self.bytes.load(Ordering::Acquire) >= self.limits.bytes
    }

    /// Waits until the backlog is below its bounds (or closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is taken from the backlog.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_full() || self.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Appends `env` (whatever the bounds: callers that respect them wait
    /// for [`Backlog::room`] first) and starts a drainer if none runs.
    pub(crate) fn push(self: &Arc<Self>, actor: &ActorRef<Envelope>, env: Envelope, inner: &Inner) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut queue = self.queue.lock();
        self.len.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(env.payload.len(), Ordering::AcqRel);
        queue.envelopes.push_back(env);
        if !queue.draining {
            queue.draining = true;
            let weak = inner.weak_self();
            tokio::spawn(drain(Arc::clone(self), actor.clone(), weak));
        }
    }

    /// Drops what is queued and stops the drainer (router shutdown).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue.lock().envelopes.clear();
        self.stop.notify_waiters();
        self.room.notify_waiters();
    }

    async fn stopped(&self) {
        loop {
            let notified = self.stop.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Moves up to `DRAIN_BATCH` envelopes into `batch`; when there are
    /// none, the drainer is done (`false`).
    fn take(&self, batch: &mut VecDeque<Envelope>) -> bool {
        let mut queue = self.queue.lock();
        let n = queue.envelopes.len().min(DRAIN_BATCH);
        batch.extend(queue.envelopes.drain(..n));
        if n == 0 {
            queue.draining = false;
        }
        n > 0
    }

    /// One envelope left the backlog (delivered or bounced); wakes the
    /// waiters when that made room.
    fn delivered(&self, payload_len: usize) {
        let len = self.len.fetch_sub(1, Ordering::AcqRel);
        let bytes = self.bytes.fetch_sub(payload_len, Ordering::AcqRel);
        if len >= self.limits.envelopes || bytes >= self.limits.bytes {
            self.room.notify_waiters();
        }
    }
}

/// Envelopes a drainer takes from its backlog per lock.
const DRAIN_BATCH: usize = 256;

/// Feeds `backlog` into `actor`'s mailbox, in order, until it is empty.
async fn drain(backlog: Arc<Backlog>, actor: ActorRef<Envelope>, inner: Weak<Inner>) {
    let mut batch = VecDeque::with_capacity(DRAIN_BATCH);
    while backlog.take(&mut batch) {
        while let Some(env) = batch.pop_front() {
            let payload_len = env.payload.len();
            if backlog.closed.load(Ordering::Acquire) {
                return;
            }
            // Wait (and watch for close) only when the mailbox is full.
            let told = match actor.try_tell(env) {
                Ok(()) => Ok(()),
                Err(TrySendError::Closed(env)) => Err(env),
                Err(TrySendError::Full(env)) => tokio::select! {
                    told = actor.tell(env) => told.map_err(|e| e.into_inner()),
                    () = backlog.stopped() => return,
                },
            };
            // Counted until it is in the mailbox (taken envelopes too), so
            // that the fast path cannot overtake it.
            backlog.delivered(payload_len);
            if let Err(env) = told {
                match inner.upgrade() {
                    Some(inner) => inner.actor_gone(env),
                    None => return,
                }
            }
        }
    }
}
