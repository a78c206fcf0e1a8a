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
//! bound, the dispatch task does **not** wait: the envelope bounces to its
//! sender as Undeliverable (`mailbox of <actor> on <node> is full`), counted
//! as a dead letter and in `RouterStats::overflow_bounces`, with a
//! rate-limited warning. Answers (Undeliverable and Error envelopes) are
//! never bounced (no loops), so they must not meet that bound: they may
//! queue beyond it by a separate headroom ([`ANSWER_HEADROOM`]), and only
//! past that are they dropped (a dead letter, with a warning). Like Erlang and Akka distribution, the inbound side
//! of a link never blocks on an application mailbox: waiting there would
//! stop every link of the node, and two nodes whose actors send to each
//! other could then deadlock (each waiting for the other to read).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actor_core::{ActorRef, TrySendError};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::envelope::{Envelope, EnvelopeKind};
use crate::router::Inner;

/// A registered local actor: its mailbox, its overflow queue, and whether
/// external clients may address it.
pub(crate) struct Slot {
    pub(crate) actor: ActorRef<Envelope>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) client_facing: bool,
}

impl Slot {
    pub(crate) fn new(
        actor: ActorRef<Envelope>,
        limits: BacklogLimits,
        client_facing: bool,
    ) -> Self {
        Slot {
            actor,
            backlog: Arc::new(Backlog::new(limits)),
            client_facing,
        }
    }
}

/// Bounds of one backlog (or outbox).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BacklogLimits {
    /// Most envelopes held (the one being delivered included).
    pub(crate) envelopes: usize,
    /// Most payload bytes held.
    pub(crate) bytes: usize,
}

/// Extra envelopes an answer (Undeliverable or Error) may queue beyond the
/// ordinary bound: answers are control messages, never refused for lack of
/// room that ordinary traffic took (see [`BacklogLimits::for_kind`]).
pub(crate) const ANSWER_HEADROOM: usize = 65_536;
/// Extra payload bytes an answer may queue beyond the ordinary bound
/// (answers carry a short reason, a few hundred bytes at most).
pub(crate) const ANSWER_HEADROOM_BYTES: usize = 16 * 1024 * 1024;

/// Whether `kind` is an answer of the router (Undeliverable or Error):
/// never bounced itself, so it must not be dropped where an ordinary
/// envelope would bounce.
pub(crate) fn is_answer(kind: EnvelopeKind) -> bool {
    matches!(kind, EnvelopeKind::Undeliverable | EnvelopeKind::Error)
}

impl BacklogLimits {
    /// The bounds that apply to an envelope of `kind`: the ordinary ones,
    /// or for an answer, those plus [`ANSWER_HEADROOM`] and
    /// [`ANSWER_HEADROOM_BYTES`]. So a queue that ordinary traffic filled
    /// still takes the answers; only a flood of answers beyond that
    /// (a misbehaving peer) is dropped, to keep memory bounded.
    pub(crate) fn for_kind(self, kind: EnvelopeKind) -> BacklogLimits {
        if is_answer(kind) {
            BacklogLimits {
                envelopes: self.envelopes.saturating_add(ANSWER_HEADROOM),
                bytes: self.bytes.saturating_add(ANSWER_HEADROOM_BYTES),
            }
        } else {
            self
        }
    }

    /// Whether a queue holding `envelopes` and `bytes` is at these bounds.
    pub(crate) fn reached(self, envelopes: usize, bytes: usize) -> bool {
        envelopes >= self.envelopes || bytes >= self.bytes
    }
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
    closed: AtomicBool,
    /// Envelopes ever appended, and ever taken out (in the mailbox, or
    /// bounced): a mark of `pushed` is passed once `done` reaches it.
    pushed: AtomicU64,
    done: AtomicU64,
    /// Woken when the backlog closes or `done` moves.
    changed: Notify,
}

impl Backlog {
    fn new(limits: BacklogLimits) -> Self {
        Backlog {
            queue: Mutex::default(),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            limits,
            closed: AtomicBool::new(false),
            pushed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// How many envelopes were ever appended: [`passed`](Self::passed)
    /// waits until every one of them is out of the backlog.
    pub(crate) fn mark(&self) -> u64 {
        self.pushed.load(Ordering::Acquire)
    }

    /// Returns once every envelope appended before `mark` was taken
    /// (told to the mailbox, or bounced), or the backlog closed.
    pub(crate) async fn passed(&self, mark: u64) {
        self.wait_for(|| self.done.load(Ordering::Acquire) >= mark)
            .await;
    }

    /// Returns once `ready` holds or the backlog closed (checked after
    /// each change, with no wake-up lost in between).
    async fn wait_for(&self, ready: impl Fn() -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready() || self.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Whether nothing is queued or being delivered (the fast path may
    /// then `try_tell` without overtaking anything).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Whether the backlog is at one of its bounds for an envelope of
    /// `kind` (answers have headroom: [`BacklogLimits::for_kind`]).
    pub(crate) fn is_full_for(&self, kind: EnvelopeKind) -> bool {
        self.limits.for_kind(kind).reached(
            self.len.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }

    /// Envelopes queued plus the one being delivered.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Appends `env` (whatever the bounds: callers check
    /// [`Backlog::is_full_for`] first) and starts a drainer if none runs.
    pub(crate) fn push(self: &Arc<Self>, actor: &ActorRef<Envelope>, env: Envelope, inner: &Inner) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut queue = self.queue.lock();
        self.len.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(env.payload.len(), Ordering::AcqRel);
        self.pushed.fetch_add(1, Ordering::AcqRel);
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
        self.changed.notify_waiters();
    }

    async fn stopped(&self) {
        self.wait_for(|| false).await;
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

    /// One envelope left the backlog (delivered or bounced).
    fn delivered(&self, payload_len: usize) {
        self.len.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(payload_len, Ordering::AcqRel);
        self.done.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
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

/// Rate limit of the "mailbox full" warning: at most one per interval, which
/// says how many bounces it stands for.
#[derive(Debug)]
pub(crate) struct OverflowWarnings {
    /// When the last warning was logged.
    last: Mutex<Option<Instant>>,
    /// Bounces since the last warning (not logged one by one).
    unlogged: AtomicU64,
}

/// At most one overflow warning per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(5);

impl Default for OverflowWarnings {
    fn default() -> Self {
        OverflowWarnings {
            last: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }
}

impl OverflowWarnings {
    /// Records one bounce; returns the number of bounces to report (this
    /// one included) when a warning is due now.
    pub(crate) fn record(&self, now: Instant) -> Option<u64> {
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock();
        if last.is_some_and(|t| now.duration_since(t) < WARN_INTERVAL) {
            return None;
        }
        *last = Some(now);
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_headroom_beyond_the_ordinary_bounds() {
        let limits = BacklogLimits {
            envelopes: 4,
            bytes: 100,
        };
        let message = limits.for_kind(EnvelopeKind::Message);
        assert!(message.reached(4, 0));
        assert!(message.reached(0, 100));
        assert!(!message.reached(3, 99));
        for kind in [EnvelopeKind::Undeliverable, EnvelopeKind::Error] {
            let answer = limits.for_kind(kind);
            assert!(!answer.reached(4 + ANSWER_HEADROOM - 1, 100));
            assert!(answer.reached(4 + ANSWER_HEADROOM, 0));
            assert!(answer.reached(0, 100 + ANSWER_HEADROOM_BYTES));
        }
        let huge = BacklogLimits {
            envelopes: usize::MAX,
            bytes: usize::MAX,
        };
        assert_eq!(huge.for_kind(EnvelopeKind::Error).envelopes, usize::MAX);
    }

    #[test]
    fn overflow_warnings_are_rate_limited_and_count_what_they_skipped() {
        let warnings = OverflowWarnings::default();
        let t0 = Instant::now();
        assert_eq!(warnings.record(t0), Some(1));
        for _ in 0..99 {
            assert_eq!(warnings.record(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(warnings.record(t0 + WARN_INTERVAL), Some(100));
        assert_eq!(warnings.record(t0 + WARN_INTERVAL), None);
    }
}
