//! What one instance of the coordinator actor hands to the next when the
//! supervisor restarts it after a failure.
//!
//! The failed instance's `stopped` hook settles what is already decided
//! (results the core has emitted reach their waiters, the journal gets its
//! last batch and is closed) and puts a [`Retained`] into the [`Handover`]
//! slot the actor's factory shares. The next instance takes it: it keeps
//! every waiter (so callers still get their results), the results of resumed
//! jobs, the dead letters and counters, and resubmits the unfinished jobs to
//! a fresh core, from the journal when there is a data directory, else from
//! the retained list. A panic can leave the scheduling state half-updated,
//! so that is rebuilt, never reused.

use std::collections::VecDeque;
use std::sync::Arc;

use cluster_router::{ActorAddr, MessageId, PayloadFormat};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::journal::Journal;
use crate::coordinator::Carryover;
use crate::handler::ProgressUpdate;
use crate::job::{IdMap, JobId, JobResult};

/// Results of resumed jobs kept for [`Coordinator::attach`](super::Coordinator::attach).
const MAX_FINISHED: usize = 10_000;

/// Who waits for a job's result.
pub(super) enum Waiter {
    Local {
        tx: oneshot::Sender<JobResult>,
        progress: Option<mpsc::Sender<ProgressUpdate>>,
    },
    Remote {
        to: ActorAddr,
        request: MessageId,
        format: PayloadFormat,
        progress: bool,
    },
    /// An entry of a `submit_batch`: its result joins the batch's next
    /// answer (one envelope per flush).
    Batch { to: ActorAddr, request: MessageId },
    /// A job resumed from the journal: its result is kept in [`Finished`].
    Resumed,
}

/// Results of resumed jobs nobody attached to yet, newest kept.
#[derive(Default)]
pub(super) struct Finished {
    order: VecDeque<JobId>,
    results: IdMap<JobResult>,
}

impl Finished {
    pub(super) fn insert(&mut self, result: JobResult) {
        if self.order.len() >= MAX_FINISHED {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
        self.order.push_back(result.id.clone());
        self.results.insert(result.id.clone(), result);
    }

    pub(super) fn take(&mut self, id: &JobId) -> Option<JobResult> {
        let result = self.results.remove(id)?;
        self.order.retain(|i| i != id);
        Some(result)
    }
}

/// The state a failed coordinator instance leaves to its successor.
pub(super) struct Retained {
    pub(super) waiters: IdMap<Waiter>,
    pub(super) finished: Finished,
    pub(super) progress: IdMap<ProgressUpdate>,
    /// Callers of `drain` still waiting.
    pub(super) drained: Vec<oneshot::Sender<()>>,
    /// Jobs not yet resumed when the instance failed (still waiting for an
    /// eligible node).
    pub(super) deferred: Vec<crate::job::Job>,
    /// Dead letters, counters, id counter, draining, unfinished jobs.
    pub(super) core: Carryover,
    /// The job records.
    pub(super) records: crate::record::Records<Waiter>,
    /// Further waiters of jobs (idempotent submissions, attachments).
    pub(super) extra: IdMap<Vec<Waiter>>,
    /// The recurring jobs.
    pub(super) recurring: super::recurring::Recurring,
}

/// What the actor's factory hands to the instance it builds.
#[derive(Default)]
pub(super) struct Handover {
    /// The journal opened by `Coordinator::start` (first instance only).
    pub(super) journal: Option<Journal>,
    /// The predecessor's state (restarted instances only).
    pub(super) retained: Option<Retained>,
}

/// The slot shared by the factory and every instance.
pub(super) type HandoverSlot = Arc<Mutex<Handover>>;
