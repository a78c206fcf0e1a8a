//! Jobs, worker pools, the coordinator, dispatch strategies, retries,
//! timeouts and statistics for jobmesh.
//!
//! # Guide
//!
//! A [`Job`] names a handler `kind`, carries opaque `data` (conventionally
//! JSON text), the tags a node must have, a per-attempt timeout (default
//! 30 s) and a maximum number of attempts (default 3). Its outcome is a
//! [`JobResult`]: `result` on success, `error` ([`JobFailure`] with a
//! [`FailureCause`] and whether it is retryable) otherwise. Both have a JSON
//! form for the edges and a bincode form between nodes (`docs/jobs.md`).
//!
//! **Workers.** Handlers are registered per kind in a [`HandlerRegistry`];
//! a handler is any async `Fn(JobContext) -> Result<String, HandlerError>`.
//! A [`WorkerEngine`] runs them on K supervised worker actors sharing one
//! bounded mailbox (an actor-core balancing pool). An unknown kind, bad
//! data, a handler error, an overrun timeout or a panic each become an error
//! result; the worker goes on.
//!
//! **Coordinator.** [`CoordinatorCore`] is a sans-IO state machine: feed it
//! submissions, results, membership changes and clock ticks; drain the
//! [`Action`]s it emits (`Dispatch`, `Complete`, `DeadLettered`;
//! `AttemptFailed` on request). [`CoordinatorCore::cancel`] ends a job. Before a
//! [`Strategy`] picks a node, eligibility is settled: the node is Up, has
//! every required tag and advertises the kind (`kind:<name>`, see
//! [`kind_tag`]). Failed attempts are retried with exponential backoff and
//! jitter on another node where one is eligible; attempts on a node that
//! goes Down are retried at once; permanent errors are not retried; jobs out
//! of attempts go to a dead-letter list that can be listed and resubmitted.
//! Each accepted job yields exactly one `Complete`; late results are dropped
//! and counted. [`StatsSnapshot`] gives per-node and per-kind figures.
//!
//! **Flow control.** The core keeps at most a window of attempts
//! outstanding per node (advertised by a pool as `capacity:<n>`, see
//! [`capacity_tag`]; else [`CoordinatorConfig::default_window`]); jobs
//! beyond every eligible node's window wait in a FIFO ready queue, bounded
//! by [`CoordinatorConfig::max_jobs`], and go out as results return credit.
//! A pool that refuses a job anyway ([`FailureCause::Refused`]: queue full,
//! e.g. shared by several coordinators, or draining) costs no attempt: the
//! job is placed again after a short backoff and the node's window shrinks.
//!
//! **Cluster-wide limits.** [`CoordinatorConfig::limits`] bounds a kind
//! across the cluster ([`KindLimit`]: at most N running, at most R starts
//! per second): the coordinators share each limit by leases granted by a
//! leader (the lowest-named node advertising it), messages between
//! `limits@<node>` actors that only nodes can address. A job without a
//! permit waits (queued, [`StatsSnapshot::waiting_for_limit`]); see
//! `docs/jobs.md`, "Cluster-wide limits".
//!
//! **On the cluster.** [`WorkerPool::start`] wraps a `WorkerEngine` as
//! `worker@<node>` on a `cluster_router::Router`, advertises `kind:<name>`
//! tags and gossips its load. [`Coordinator::start`] runs the core as the
//! actor `coordinator@<node>`: it follows membership (a Down node's attempts
//! are retried at once), sweeps deadlines on one shared tick, dispatches in
//! bincode, and answers each submission exactly once, through
//! [`PendingJob::result`] or, for submissions that arrived as envelopes
//! (other nodes, external JSON clients), as a reply in the request's format.
//! The hot path is batched: the coordinator drains its mailbox in runs,
//! sends one envelope of many jobs per node, never waits on a full link
//! (a per-node lane does), and pools answer with batches of results. The
//! pool of the coordinator's own node, in the same process, gets its jobs
//! and returns its results as typed values instead of envelopes (same
//! semantics, envelopes as the fallback; `WorkerPool::local_jobs`).
//! [`Coordinator::submit_with_progress`] forwards progress reports;
//! [`Coordinator::submit_many`] submits a batch in one trip, all or none;
//! [`Coordinator::drain`] and [`WorkerPool::drain`] finish what is held
//! while refusing new work.
//!
//! **Supervision.** The coordinator and the pool are actor-core actors, each
//! with one mailbox for envelopes, local calls, timers and events, under a
//! supervisor. A coordinator whose handler panics is restarted with its
//! callers, dead letters and counters, and resumes its unfinished jobs on a
//! rebuilt core (from the journal with a data directory); see
//! [`CoordinatorOptions::restart`] and `docs/architecture.md`.
//!
//! **The edge.** A coordinator keeps a [`JobRecord`] per job it owns
//! (state, attempts with node and cause, timestamps, result), the finished
//! ones for a retention window ([`CoordinatorOptions::retention`](CoordinatorOptions#structfield.retention),
//! [`CoordinatorOptions::retention_bytes`]). Submitting a known id is
//! idempotent (the caller waits for that job; [`Coordinator::rerun`] runs
//! it again on purpose). [`Coordinator::get`] and [`Coordinator::cancel`]
//! work cluster-wide (other coordinators are asked for ids this one does
//! not own). A cancelled job never starts if queued; a running handler
//! sees [`JobContext::cancelled`]. Dispatches carry the coordinator's
//! incarnation, so a pool drops the queued work of a coordinator that
//! restarted ([`WorkerPool::fenced`]). See `docs/jobs.md`, "The job's life
//! at the edge".
//!
//! **Durability.** With [`CoordinatorOptions::data_dir`], each job is
//! journaled (append-only file, group-committed fsync) before `submit`
//! returns; a coordinator started on the same directory resumes every
//! unfinished job ([`Coordinator::resumed`], [`Coordinator::attach`]) and
//! reads back the finished jobs' records (results and cancellations).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use job_queue::{Action, CoordinatorConfig, CoordinatorCore, FailureCause, Job, JobFailure,
//!                 JobResult, NodeInfo, StrategyKind};
//!
//! let config = CoordinatorConfig {
//!     node: "node-a".into(),
//!     strategy: StrategyKind::RoundRobin,
//!     seed: Some(7),
//!     ..CoordinatorConfig::default()
//! };
//! let mut core = CoordinatorCore::new(config);
//! let t0 = Instant::now();
//! core.update_node(NodeInfo::up("node-b", ["kind:resize"]), t0);
//! core.update_node(NodeInfo::up("node-c", ["kind:resize"]), t0);
//!
//! let id = core.submit(Job::new("resize", r#"{"w":64}"#), t0).unwrap();
//! let Some(Action::Dispatch { node, .. }) = core.poll_action() else { unreachable!() };
//! assert_eq!(node, "node-b");
//!
//! // The worker fails with a retryable error: after backoff, node-c gets attempt 2.
//! let failure = JobFailure::new(FailureCause::Handler, "disk full");
//! core.result_received(JobResult::failure(id.clone(), failure, "node-b", 1, Duration::ZERO), "node-b", t0);
//! core.tick(core.next_wakeup().unwrap());
//! let Some(Action::Dispatch { job, node }) = core.poll_action() else { unreachable!() };
//! assert_eq!((job.attempt, node.as_str()), (2, "node-c"));
//! ```

mod coordinator;
mod external;
mod failure;
mod handler;
mod histogram;
mod job;
mod limits;
mod local;
mod pool;
mod protocol;
mod record;
mod reply_retry;
mod service;
mod stats;
mod strategy;
mod wire;
mod worker;

// The sans-IO coordinator and its vocabulary.
pub use coordinator::{
    accept_tag, capacity_tag, concurrency_tag, Action, AttemptFailure, Backoff, Cancelled,
    CoordinatorConfig, CoordinatorCore, DeadLetter, JobStatus, KindSelectors, NodeInfo, NodeLoad,
    NodeStatus, ResultDisposition, Selector, SpeculationConfig, ACCEPT_TAG_PREFIX,
    CAPACITY_TAG_PREFIX, CONCURRENCY_TAG_PREFIX,
};
// Failures and the errors of every operation.
pub use error::{
    DecodeError, EngineClosed, InvalidJob, JobError, ParseJobIdError, SubmitError, TrySubmitError,
};
pub use failure::{BoxError, FailureCause, HandlerError, JobFailure};
// Handlers and the worker side.
pub use external::EXTERNAL;
pub use handler::{
    kind_tag, Handler, HandlerRegistry, JobContext, ProgressUpdate, KIND_TAG_PREFIX,
};
pub use pool::{WorkerPool, WorkerPoolConfig, WORKER};
#[cfg(feature = "fault-injection")]
pub use service::Fault;
pub use worker::{WorkerConfig, WorkerEngine, WorkerEvent, WorkerQueue};
// Jobs, results and the coordinator actor.
pub use job::{Job, JobId, JobResult};
pub use limits::{
    KindLimit, LimitSnapshot, LimitsConfig, ParseLimitError, LIMITS, LIMIT_TAG_PREFIX,
};
pub use record::{
    AttemptRecord, FinishedSample, JobPage, JobQuery, JobRecord, JobState, ProgressRecord,
    MAX_SAMPLES,
};
pub use service::{
    CancelReport, Coordinator, CoordinatorOptions, Lookup, PendingJob, RecurringError,
    RecurringJob, COORDINATOR, MAX_BATCH_JOBS, MAX_IDS, MAX_RECURRING,
};
pub use stats::{KindStatsSnapshot, NodeStatsSnapshot, StatsSnapshot, TimingSnapshot};
pub use wire::MAX_BINCODE_BYTES;
// Load-balancing strategies.
pub use strategy::{
    Candidate, EarliestFinish, LeastCpu, LeastInFlight, LowestLatency, ParseStrategyError, Random,
    RoundRobin, Strategy, StrategyKind,
};

pub mod error;
pub mod mapreduce;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

// The crate's README, tested as doctests (it does not replace the guide above).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
