//! The in-process path between a coordinator and the worker pool of its
//! own node, when both run in the same process (the usual `job-node`).
//!
//! Under load nearly every job runs on the node that accepted it. Through
//! envelopes, each dispatch would be bincode-encoded, looked up and
//! delivered by the router to `worker@<this node>`, and decoded again, and
//! its results would take the same way back. Here the coordinator hands
//! the jobs to the pool actor's mailbox as typed values ([`LocalJobs`]),
//! and the pool answers with typed batches ([`LocalReply`]) into the
//! coordinator's mailbox.
//!
//! What stays the same: the pool handles a [`LocalJobs`] exactly like a
//! fenced batch envelope from `coordinator@<this node>` (same ticket, same
//! controls for cancels, incarnation fencing, drain, external workers,
//! load), and the coordinator handles a [`LocalReply`] exactly like a
//! worker reply envelope (fenced results of an earlier incarnation are
//! dropped and counted as late).
//!
//! The envelope path stays for remote nodes and is the fallback: the pool
//! publishes its [`LocalPool`] on the router ([`Router::set_local`]) once
//! registered and withdraws it on shutdown; the coordinator looks it up at
//! each flush and sends envelopes when there is none, when its actor is
//! gone, when its mailbox is full (the router's backlog and the outbox's
//! lane then queue, as for any envelope), or while earlier envelopes to
//! this node are still queued in the outbox (so that a cancel never
//! overtakes its job). The pool's answers fall back the same way.
//!
//! [`Router::set_local`]: cluster_router::Router::set_local

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use actor_core::ActorRef;
use cluster_router::ActorAddr;

use crate::job::{Job, JobId};
use crate::pool::PoolMsg;
use crate::protocol::WorkerReply;

/// A worker pool's typed entrance, published on its node's router for the
/// coordinator of the same process.
pub(crate) struct LocalPool {
    /// The pool actor (the same mailbox across supervisor restarts).
    pub(crate) actor: ActorRef<PoolMsg>,
    /// What went through the typed path.
    pub(crate) stats: Arc<LocalStats>,
    /// The pool's load as it is now.
    pub(crate) load: Arc<LiveLoad>,
}

/// A pool's load as it is now, for the coordinator of the same process:
/// the pool stores it each time its mailbox is drained (and with each
/// report), the coordinator reads it before each message. The load a
/// node reports through the membership is up to a report interval plus
/// the coordinator's refresh old.
#[derive(Debug, Default)]
pub(crate) struct LiveLoad {
    in_flight: AtomicU32,
    queue_depth: AtomicU32,
}

impl LiveLoad {
    pub(crate) fn set(&self, in_flight: usize, queue_depth: usize) {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.in_flight.store(clamp(in_flight), Ordering::Relaxed);
        self.queue_depth
            .store(clamp(queue_depth), Ordering::Relaxed);
    }

    /// Running and queued jobs.
    pub(crate) fn get(&self) -> (u32, u32) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.queue_depth.load(Ordering::Relaxed),
        )
    }
}

/// Counters of the typed path (read through [`crate::WorkerPool`]).
#[derive(Debug, Default)]
pub(crate) struct LocalStats {
    /// Jobs handed to the pool without an envelope.
    jobs: AtomicU64,
    /// Results returned to a coordinator without an envelope.
    results: AtomicU64,
}

impl LocalStats {
    /// Counts `count` jobs before they are handed over (whoever sees them
    /// run sees them counted); `undo_jobs` takes them back when the hand-over
    /// fails.
    pub(crate) fn add_jobs(&self, count: usize) {
        self.jobs.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn undo_jobs(&self, count: usize) {
        self.jobs.fetch_sub(count as u64, Ordering::Relaxed);
    }

    /// Counts `count` results before they are handed over (whoever sees a
    /// result sees it counted); `undo_results` takes them back when the
    /// hand-over fails.
    pub(crate) fn add_results(&self, count: usize) {
        self.results.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn undo_results(&self, count: usize) {
        self.results.fetch_sub(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    pub(crate) fn results(&self) -> u64 {
        self.results.load(Ordering::Relaxed)
    }
}

/// Attempts a coordinator hands to its own node's pool (the typed form of
/// a fenced batch envelope).
pub(crate) struct LocalJobs {
    /// The coordinator's address (the pool keys controls and fencing by it).
    pub(crate) from: ActorAddr,
    /// The coordinator's incarnation.
    pub(crate) incarnation: u64,
    pub(crate) jobs: Vec<Job>,
    /// Where the pool's typed answers go.
    pub(crate) reply: ActorRef<LocalReply>,
}

/// Attempts a coordinator cancels on its own node's pool.
pub(crate) struct LocalCancel {
    pub(crate) from: ActorAddr,
    pub(crate) incarnation: u64,
    pub(crate) attempts: Vec<(JobId, u32)>,
}

/// A pool's answer to [`LocalJobs`] (the typed form of a worker reply
/// envelope).
pub(crate) struct LocalReply {
    /// The pool's address, `worker@<node>`.
    pub(crate) from: ActorAddr,
    pub(crate) reply: WorkerReply,
}

impl WorkerReply {
    /// How many results the reply carries.
    pub(crate) fn result_count(&self) -> usize {
        match self {
            WorkerReply::Result(_) => 1,
            WorkerReply::Results(results) | WorkerReply::Fenced(_, results) => results.len(),
            WorkerReply::Progress(_) => 0,
        }
    }
}
