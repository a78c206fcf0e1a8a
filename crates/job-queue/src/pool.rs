//! [`WorkerPool`]: the network shell of a node's [`WorkerEngine`], one
//! supervised actor registered as `worker@<node>`.
//!
//! Its one mailbox takes the router's envelopes (jobs), the engine's events
//! (results and progress, delivered straight into it) and its own load
//! timer. Results of batched requests are collected during a run of
//! messages and sent after it, one envelope per requester; nothing waits on
//! the network (sends that find a link full queue in a per-node lane).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actor_core::{
    Actor, ActorRef, BoxError, ChildEvent, Context, RestartPolicy, SpawnOptions, Supervisor,
    TrySendError,
};
use async_trait::async_trait;
use cluster_router::{ActorAddr, Envelope, EnvelopeKind, Load, MessageId, PayloadFormat, Router};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use tokio::sync::mpsc;

use crate::coordinator::{
    capacity_tag, concurrency_tag, CAPACITY_TAG_PREFIX, CONCURRENCY_TAG_PREFIX,
};
use crate::error::{JobError, TrySubmitError};
use crate::external::{Effect, ExternalLimits, ExternalWorkers, EXTERNAL};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::{HandlerRegistry, KIND_TAG_PREFIX};
use crate::job::JobResult;
use crate::job::{Job, JobId};
use crate::local::{LiveLoad, LocalCancel, LocalJobs, LocalPool, LocalReply, LocalStats};
use crate::protocol::{decode_request, encode_reply, WorkerReply, WorkerRequest};
use crate::reply_retry::{self, PendingReplies, RetryLimits};
use crate::service::outbox::Outbox;
use crate::worker::{EventSink, TaskControl, WorkerConfig, WorkerEngine, WorkerEvent, WorkerQueue};

/// The well-known name of a node's worker pool.
pub const WORKER: &str = "worker";

/// Settings of a [`WorkerPool`].
#[derive(Clone, Debug)]
pub struct WorkerPoolConfig {
    /// Concurrent worker loops (K).
    pub workers: usize,
    /// Capacity of the shared job queue. The pool advertises it as its
    /// dispatch window (tag `capacity:<n>`), so a coordinator keeps at most
    /// this many attempts outstanding on the node; a job arriving when the
    /// queue is full anyway (several coordinators share the pool) is
    /// answered at once with a `refused` failure, which a coordinator does
    /// not count as an attempt.
    pub queue_capacity: usize,
    /// How often the pool publishes its load through gossip.
    pub load_interval: Duration,
    /// How long [`WorkerPool::shutdown`] lets running jobs finish before it
    /// cancels them (they are then reported as retryable `node_down`).
    pub shutdown_grace: Duration,
    /// Whether clients of this node may register as external workers
    /// (`external@<node>`, docs/wire.md); when false every registration
    /// is refused with "external workers are disabled on this node".
    pub external_workers: bool,
    /// The only kinds external workers may register for; `None`: any kind
    /// the pool does not serve itself. A registration naming another kind
    /// is refused, saying which kinds are allowed.
    pub external_kinds: Option<Vec<String>>,
}

impl Default for WorkerPoolConfig {
    fn default() -> Self {
        let engine = WorkerConfig::default();
        WorkerPoolConfig {
            workers: engine.workers,
            queue_capacity: engine.queue_capacity,
            load_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(5),
            external_workers: true,
            external_kinds: None,
        }
    }
}

/// Where a job's replies go; shared by every job of one request.
#[derive(Debug)]
pub(crate) struct Ticket {
    reply_to: ActorAddr,
    me: ActorAddr,
    request: MessageId,
    format: PayloadFormat,
    /// The request was a batch: results go back in batches (tag `2`).
    batched: bool,
    /// The requesting coordinator's incarnation (fenced batches).
    incarnation: Option<u64>,
    /// The requester is the coordinator of this process: answers go into
    /// its mailbox as typed values (see `local.rs`).
    local: Option<ActorRef<LocalReply>>,
}

/// A node's worker pool: receives jobs at `worker@<node>`, runs them on a
/// [`WorkerEngine`] and answers each with a [`JobResult`] (and progress
/// reports) in the request's payload format.
///
/// Starting a pool advertises `kind:<name>` tags for every registered kind
/// and its dispatch window as `capacity:<queue_capacity>` (keeping the
/// node's other tags), and publishes the pool's in-flight count, queue depth
/// and the node's CPU use through gossip.
///
/// The pool actor runs under a supervisor: if it fails, a fresh instance
/// takes over its mailbox (results it had collected but not sent are sent
/// by the failed instance on its way out).
pub struct WorkerPool {
    addr: ActorAddr,
    router: Router,
    actor: ActorRef<PoolMsg>,
    engine: WorkerEngine<Arc<Ticket>>,
    shutdown_grace: Duration,
    draining: Arc<AtomicBool>,
    /// Results kept for coordinators that could not be reached.
    undelivered: Arc<PendingReplies>,
    fenced: Arc<std::sync::atomic::AtomicU64>,
    /// Jobs queued for or running on external workers.
    external_busy: Arc<std::sync::atomic::AtomicUsize>,
    /// The typed entrance published on the router for this process's
    /// coordinator.
    local: Arc<LocalPool>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("addr", &self.addr)
            .field("engine", &self.engine)
            .finish()
    }
}

impl WorkerPool {
    /// Starts the pool on `router` and registers it as `worker@<node>`.
    ///
    /// # Errors
    ///
    /// [`JobError::Router`] if the name is taken, [`JobError::Actor`] if an
    /// actor cannot be spawned.
    pub async fn start(
        router: &Router,
        registry: HandlerRegistry,
        config: WorkerPoolConfig,
    ) -> Result<WorkerPool, JobError> {
        let node = router.node_id().to_string();
        let engine_config = WorkerConfig {
            node: node.clone(),
            workers: config.workers.max(1),
            queue_capacity: config.queue_capacity.max(1),
            ..WorkerConfig::default()
        };
        let mut kind_tags = registry.kind_tags();
        let window = u32::try_from(config.queue_capacity.max(1)).unwrap_or(u32::MAX);
        kind_tags.push(capacity_tag(window));
        let external = external_workers(router, &registry, &config)?;
        let workers = u32::try_from(config.workers.max(1)).unwrap_or(u32::MAX);
        kind_tags.push(concurrency_tag(workers));
        let draining = Arc::new(AtomicBool::new(false));
        let sink = Arc::new(OnceLock::new());
        let events = EventSink::Actor(Arc::clone(&sink));
        let local_kinds = Arc::new(registry.kinds().into_iter().map(str::to_owned).collect());
        let engine = WorkerEngine::start_with(engine_config, Arc::new(registry), events)?;
        let me = router.addr(WORKER)?;
        let parts = PoolParts {
            router: router.clone(),
            queue: engine.queue(),
            me: me.clone(),
            draining: draining.clone(),
            load_interval: config.load_interval,
            undelivered: PendingReplies::new(RetryLimits::default()),
            incarnations: Arc::default(),
            fenced: Arc::default(),
            kind_tags: Arc::new(kind_tags.clone()),
            local_kinds,
            external: Arc::new(parking_lot::Mutex::new(external)),
            external_busy: Arc::default(),
            external_tags: Arc::default(),
            local_stats: Arc::default(),
            live_load: Arc::default(),
        };
        let local_stats = Arc::clone(&parts.local_stats);
        let live_load = Arc::clone(&parts.live_load);
        let external_busy = Arc::clone(&parts.external_busy);
        let fenced = Arc::clone(&parts.fenced);
        let undelivered = Arc::clone(&parts.undelivered);
        let actor = spawn_pool_actor(parts, config.queue_capacity.max(16))?;
        // Before any job can arrive (the pool is not registered yet): the
        // engine's events go straight into the pool's mailbox.
        let _ = sink.set(actor.recipient());
        let addr = match router.register(WORKER, actor.recipient::<Envelope>()) {
            Ok(addr) => addr,
            Err(err) => {
                actor.stop();
                engine.shutdown_within(Duration::ZERO).await;
                return Err(err.into());
            }
        };
        if let Err(err) = router.register_client_facing(EXTERNAL, actor.recipient::<Envelope>()) {
            router.unregister(WORKER);
            actor.stop();
            engine.shutdown_within(Duration::ZERO).await;
            return Err(err.into());
        }
        tokio::spawn(forward_client_departures(
            router.subscribe_client_departures(),
            actor.clone(),
        ));
        advertise_kinds(router, kind_tags);
        // The coordinator of this process may now hand jobs over directly.
        let local = Arc::new(LocalPool {
            actor: actor.clone(),
            stats: local_stats,
            load: live_load,
        });
        router.set_local(Arc::clone(&local));
        // Retries results kept for unreachable coordinators; ends once the
        // pool (and every instance of its actor) is gone.
        tokio::spawn(reply_retry::retry_loop(
            router.clone(),
            Arc::downgrade(&undelivered),
        ));
        Ok(WorkerPool {
            addr,
            router: router.clone(),
            actor,
            engine,
            shutdown_grace: config.shutdown_grace,
            draining,
            undelivered,
            fenced,
            external_busy,
            local,
        })
    }

    /// Jobs this pool received from the coordinator of its own process
    /// without an envelope (see `docs/architecture.md`, "The local path").
    pub fn local_jobs(&self) -> u64 {
        self.local.stats.jobs()
    }

    /// Results this pool returned to the coordinator of its own process
    /// without an envelope.
    pub fn local_results(&self) -> u64 {
        self.local.stats.results()
    }

    /// Jobs of an older incarnation of a restarted coordinator that were
    /// dropped here before they started (fencing).
    pub fn fenced(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }

    /// The pool's address, `worker@<node>`.
    pub fn addr(&self) -> &ActorAddr {
        &self.addr
    }

    /// Jobs running now.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.engine.queue_depth()
    }

    /// Jobs finished since start.
    pub fn finished(&self) -> u64 {
        self.engine.finished()
    }

    /// Results kept for a coordinator that could not be reached yet (they
    /// are retried until it answers or is confirmed gone).
    pub fn undelivered(&self) -> usize {
        self.undelivered.len()
    }

    /// Drains the pool: stops advertising its kinds and window (so
    /// coordinators stop choosing this node once the gossip reaches them),
    /// answers jobs arriving meanwhile with a `refused` failure (not counted
    /// as an attempt: the coordinator places them elsewhere), and returns
    /// once every queued and running job has finished. The pool stays
    /// registered; [`shutdown`](Self::shutdown) it afterwards.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the pool keeps draining; call again to wait.
    pub async fn drain(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            advertise_kinds(&self.router, Vec::new());
            tracing::info!(pool = %self.addr, "worker pool draining");
            if self.actor.tell(PoolMsg::HandBack).await.is_err() {
                tracing::debug!(pool = %self.addr, "pool actor gone: nothing to hand back");
            }
        }
        let busy = self.engine.queue().busy_probe();
        while busy.is_busy() || self.external_busy.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Unregisters the pool, lets queued and running jobs finish for up to
    /// the configured grace period (then cancels them), sends their results
    /// and stops.
    pub async fn shutdown(self) {
        let WorkerPool {
            router,
            actor,
            engine,
            shutdown_grace,
            local,
            ..
        } = self;
        // Dispatches take the envelope path from now on (and bounce).
        router.remove_local(&local);
        router.unregister(WORKER);
        router.unregister(EXTERNAL);
        engine.shutdown_within(shutdown_grace).await;
        // Every result is in the pool's mailbox now, ahead of this.
        if actor.tell(PoolMsg::Finish).await.is_err() {
            actor.stop();
        }
        actor.wait_stopped().await;
    }
}

/// Replaces the node's `kind:*`, `capacity:*` and `workers:*` tags with `kind_tags`,
/// keeping the others.
fn advertise_kinds(router: &Router, kind_tags: Vec<String>) {
    let mut tags: Vec<String> = router
        .member(router.node_id())
        .map(|m| m.tags)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| {
            ![KIND_TAG_PREFIX, CAPACITY_TAG_PREFIX, CONCURRENCY_TAG_PREFIX]
                .iter()
                .any(|prefix| t.starts_with(prefix))
        })
        .collect();
    tags.extend(kind_tags);
    router.set_tags(tags);
}

/// The pool actor's messages.
pub(crate) enum PoolMsg {
    /// From the router: a job or a batch of jobs.
    Envelope(Envelope),
    /// From the coordinator of this process: a batch of jobs.
    LocalJobs(LocalJobs),
    /// From the coordinator of this process: attempts to cancel.
    LocalCancel(LocalCancel),
    /// From the engine: a result or a progress report.
    Event(WorkerEvent<Arc<Ticket>>),
    /// Time to publish the load.
    Load,
    /// Send what is collected and stop (the engine has stopped).
    Finish,
    /// Time to enforce the external workers' timeouts and heartbeats.
    ExternalTick,
    /// A client of this node disconnected.
    ClientGone(ActorAddr),
    /// The pool drains: answer every job not started yet with `refused`.
    HandBack,
}

impl From<Envelope> for PoolMsg {
    fn from(env: Envelope) -> Self {
        PoolMsg::Envelope(env)
    }
}

impl From<WorkerEvent<Arc<Ticket>>> for PoolMsg {
    fn from(event: WorkerEvent<Arc<Ticket>>) -> Self {
        PoolMsg::Event(event)
    }
}

/// What every instance of the pool actor is built from.
#[derive(Clone)]
struct PoolParts {
    router: Router,
    queue: WorkerQueue<Arc<Ticket>>,
    me: ActorAddr,
    draining: Arc<AtomicBool>,
    load_interval: Duration,
    /// Results kept for coordinators that could not be reached (shared
    /// by every instance of the actor and by the retry task).
    undelivered: Arc<PendingReplies>,
    /// The newest incarnation seen per coordinator address.
    incarnations: Arc<parking_lot::Mutex<std::collections::HashMap<ActorAddr, u64>>>,
    /// Jobs of older coordinator incarnations dropped before they started.
    fenced: Arc<std::sync::atomic::AtomicU64>,
    /// The kinds of the registry (run by the engine); any other kind is
    /// for external workers.
    local_kinds: Arc<rustc_hash::FxHashSet<String>>,
    /// The tags of the built-in kinds and the dispatch window.
    kind_tags: Arc<Vec<String>>,
    /// External workers (shared so that they survive a restart of the actor).
    external: Arc<parking_lot::Mutex<ExternalWorkers<Arc<Ticket>>>>,
    /// Their queued and running jobs, for `drain`.
    external_busy: Arc<std::sync::atomic::AtomicUsize>,
    /// The plain tags advertised for external workers (not the node's own).
    external_tags: Arc<parking_lot::Mutex<Vec<String>>>,
    /// Counters of the typed path to this process's coordinator.
    local_stats: Arc<LocalStats>,
    /// The load now, for this process's coordinator.
    live_load: Arc<LiveLoad>,
}

/// Spawns the pool actor under its own supervisor (restarts logged by it).
fn spawn_pool_actor(parts: PoolParts, capacity: usize) -> Result<ActorRef<PoolMsg>, JobError> {
    let (supervisor, events) = Supervisor::new(RestartPolicy {
        max_restarts: 10,
        within: Duration::from_secs(60),
    });
    tokio::spawn(log_gave_up(events));
    let name = parts.me.to_string();
    let factory = move || PoolActor::new(parts.clone());
    let opts = SpawnOptions::default()
        .capacity(capacity)
        .batch(FORWARD_BATCH);
    Ok(supervisor.spawn_child(name, factory, opts)?)
}

/// The supervisor logs every restart; a pool that gives up stops serving
/// its node, which deserves an error of its own.
async fn log_gave_up(mut events: mpsc::UnboundedReceiver<ChildEvent>) {
    while let Some(event) = events.recv().await {
        if let ChildEvent::GaveUp { name, cause } = event {
            tracing::error!(%name, %cause, "worker pool stopped: too many failures");
        }
    }
}

/// Most messages (jobs envelopes, results) handled between two flushes.
const FORWARD_BATCH: usize = 512;

/// The controls of a job queued or running here, by (requester, id).
struct Controlled {
    ticket: Arc<Ticket>,
    attempt: u32,
    incarnation: Option<u64>,
    control: Arc<TaskControl>,
}

/// Most coordinators whose incarnation a pool remembers (addresses come
/// from the network); past it the table starts over.
const MAX_COORDINATORS: usize = 4096;

struct PoolActor {
    parts: PoolParts,
    /// Jobs queued or running, for cancellation and fencing. Fast unkeyed
    /// hashing: the key's job id hashes as its keyed hash (`JobId`), which
    /// nobody outside the process can predict, so collisions cannot be
    /// aimed through the ids, and the addresses are coordinators' (their
    /// nodes authenticated by the router).
    controls: FxHashMap<(ActorAddr, JobId), Controlled>,
    outbox: Outbox,
    cpu: CpuSampler,
    /// Results of batched requests collected in this run, per requester.
    results: Vec<(Arc<Ticket>, Vec<JobResult>)>,
}

impl PoolActor {
    fn new(parts: PoolParts) -> Self {
        // Late send failures are only logged (by the outbox); the
        // coordinator's timeout covers a lost reply.
        let (outbox, _failures) = Outbox::new(parts.router.clone());
        PoolActor {
            parts,
            controls: FxHashMap::default(),
            outbox,
            cpu: CpuSampler::default(),
            results: Vec::new(),
        }
    }

    fn on_envelope(&mut self, env: Envelope) {
        if env.to.actor().as_str() == EXTERNAL {
            if env.kind == EnvelopeKind::Message {
                self.with_external(|ext, now| ext.on_message(&env, now));
            }
            return;
        }
        if env.kind != EnvelopeKind::Message {
            tracing::debug!(from = %env.from, kind = ?env.kind, "worker pool ignores a non-message envelope");
            return;
        }
        match decode_request(&env.payload, env.format) {
            Ok(WorkerRequest::Jobs {
                jobs,
                incarnation,
                batched,
            }) => {
                let ticket = Arc::new(Ticket {
                    reply_to: env.from.clone(),
                    me: self.parts.me.clone(),
                    request: env.id,
                    format: env.format,
                    batched,
                    incarnation,
                    local: None,
                });
                self.on_jobs(ticket, jobs);
            }
            Ok(WorkerRequest::Cancel {
                incarnation,
                attempts,
            }) => self.on_cancel(&env.from, incarnation, &attempts),
            Err(err) => {
                tracing::warn!(from = %env.from, %err, "undecodable job");
                let reply = env.error_reply(&format!("cannot decode job: {err}"));
                self.send(reply);
            }
        }
    }

    /// Jobs from the coordinator of this process, handled like a fenced
    /// batch envelope from its address.
    fn on_local_jobs(&mut self, request: LocalJobs) {
        let LocalJobs {
            from,
            incarnation,
            jobs,
            reply,
        } = request;
        let ticket = Arc::new(Ticket {
            reply_to: from,
            me: self.parts.me.clone(),
            // Only seen if an answer falls back to an envelope.
            request: MessageId::next(),
            format: PayloadFormat::Binary,
            batched: true,
            incarnation: Some(incarnation),
            local: Some(reply),
        });
        self.on_jobs(ticket, jobs);
    }

    fn on_jobs(&mut self, ticket: Arc<Ticket>, jobs: Vec<Job>) {
        let from = &ticket.reply_to;
        let incarnation = ticket.incarnation;
        if let Some(incarnation) = incarnation {
            self.fence_older(from, incarnation);
        }
        let me = self.parts.me.clone();
        let draining = self.parts.draining.load(Ordering::Acquire);
        for job in jobs {
            let (job, cause, reason) = if draining {
                (job, FailureCause::Refused, "is draining")
            } else if !self.parts.local_kinds.contains(&job.kind) {
                // Not a built-in kind: an external worker's (or nobody's
                // any more: refused, and placed again elsewhere).
                let (from, ticket) = (from.clone(), ticket.clone());
                self.with_external(|ext, now| ext.submit(job, from, ticket, now));
                continue;
            } else {
                let control = Arc::new(TaskControl::default());
                let key = (from.clone(), job.id.clone());
                let entry = Controlled {
                    ticket: ticket.clone(),
                    attempt: job.attempt,
                    incarnation,
                    control: Arc::clone(&control),
                };
                match self
                    .parts
                    .queue
                    .try_submit_controlled(job, ticket.clone(), control)
                {
                    Ok(()) => {
                        self.controls.insert(key, entry);
                        continue;
                    }
                    Err(TrySubmitError::Full((job, _))) => (job, FailureCause::Refused, "is full"),
                    Err(err) => (
                        err.into_inner().0,
                        FailureCause::Undeliverable,
                        "is shutting down",
                    ),
                }
            };
            let failure = JobFailure::new(cause, format!("worker pool on {} {reason}", me.node()));
            let node = me.node().to_string();
            let refused = JobResult::failure(job.id, failure, node, job.attempt, Duration::ZERO);
            self.on_result(refused, ticket.clone());
        }
    }

    /// A newer incarnation of the coordinator at `from` dispatched: the
    /// jobs its older incarnations queued here and that have not started
    /// are dropped (not run, no result sent: that coordinator is gone and
    /// its successor runs them again).
    fn fence_older(&mut self, from: &ActorAddr, incarnation: u64) {
        let known = self.parts.incarnations.lock().get(from).copied();
        if known.is_some_and(|k| k >= incarnation) {
            return;
        }
        {
            let mut table = self.parts.incarnations.lock();
            if table.len() >= MAX_COORDINATORS && !table.contains_key(from) {
                table.clear();
            }
            table.insert(from.clone(), incarnation);
        }
        if known.is_none() {
            return;
        }
        let mut fenced = 0u64;
        for ((addr, _), entry) in &self.controls {
            let older = entry.incarnation.is_some_and(|i| i < incarnation);
            if addr == from && older && !entry.control.started.load(Ordering::Acquire) {
                entry.control.fenced.store(true, Ordering::Release);
                fenced += 1;
            }
        }
        if self.parts.external_busy.load(Ordering::Acquire) > 0 {
            // Jobs waiting for an external worker: dropped here (the local
            // ones are counted when a worker skips them).
            let stale = |t: &Arc<Ticket>| t.incarnation.is_some_and(|i| i < incarnation);
            let mut dropped = 0;
            self.with_external(|ext, _| dropped = ext.fence(from, stale));
            self.parts
                .fenced
                .fetch_add(dropped as u64, Ordering::Relaxed);
            fenced += dropped as u64;
        }
        if fenced > 0 {
            tracing::info!(coordinator = %from, fenced, "coordinator restarted: its queued jobs of the previous incarnation are dropped");
        }
    }

    /// The pool drains: every job queued here and not started yet is
    /// answered at once with a `refused` failure (not an attempt; its
    /// coordinator places it elsewhere), so a drain lasts about as long as
    /// the running jobs, not the queue. A worker that takes such a job
    /// later skips it (see `TaskControl::started`).
    fn hand_back(&mut self) {
        let node = self.parts.me.node().to_string();
        let mut handed = Vec::new();
        self.controls.retain(|(_, id), entry| {
            let claimed = entry
                .control
                .started
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if claimed {
                handed.push((id.clone(), entry.attempt, Arc::clone(&entry.ticket)));
            }
            !claimed
        });
        if !handed.is_empty() {
            tracing::info!(pool = %self.parts.me, jobs = handed.len(), "draining: unstarted jobs handed back");
        }
        for (id, attempt, ticket) in handed {
            let failure = JobFailure::new(
                FailureCause::Refused,
                format!("worker pool on {node} is draining; handed back unstarted"),
            );
            let result = JobResult::failure(id, failure, node.clone(), attempt, Duration::ZERO);
            self.on_result(result, ticket);
        }
    }

    /// Cancels the listed attempts that `from` dispatched here.
    fn on_cancel(&mut self, from: &ActorAddr, incarnation: u64, attempts: &[(JobId, u32)]) {
        if self.parts.external_busy.load(Ordering::Acquire) > 0 {
            self.with_external(|ext, now| {
                for (id, attempt) in attempts {
                    ext.cancel(from, id, *attempt, now);
                }
            });
        }
        for (id, attempt) in attempts {
            let key = (from.clone(), id.clone());
            if let Some(entry) = self.controls.get(&key) {
                if entry.attempt == *attempt && entry.incarnation.is_none_or(|i| i == incarnation) {
                    entry.control.cancel();
                }
            }
        }
    }

    fn on_event(&mut self, event: WorkerEvent<Arc<Ticket>>) {
        match event {
            WorkerEvent::Finished { result, ticket, .. } => {
                let key = (ticket.reply_to.clone(), result.id.clone());
                if let Entry::Occupied(entry) = self.controls.entry(key) {
                    let control = entry.get();
                    if control.attempt == result.attempt
                        && control.incarnation == ticket.incarnation
                    {
                        entry.remove();
                    }
                }
                // A job of an older incarnation that ended cancelled was
                // fenced before it started (a newer incarnation cannot
                // cancel an older one's jobs): its coordinator is gone.
                let cancelled = result
                    .error
                    .as_ref()
                    .is_some_and(|e| e.cause == FailureCause::Cancelled);
                if cancelled && self.is_stale(&ticket) {
                    self.parts.fenced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.on_result(result, ticket);
            }
            WorkerEvent::Progress { update, ticket } => {
                self.reply(&ticket, WorkerReply::Progress(update));
            }
        }
    }

    /// Whether a newer incarnation of the ticket's coordinator dispatched
    /// here since.
    fn is_stale(&self, ticket: &Ticket) -> bool {
        let newest = self
            .parts
            .incarnations
            .lock()
            .get(&ticket.reply_to)
            .copied();
        ticket
            .incarnation
            .zip(newest)
            .is_some_and(|(mine, newest)| mine < newest)
    }

    /// Collects a result of a batched request; answers any other at once.
    fn on_result(&mut self, result: JobResult, ticket: Arc<Ticket>) {
        if !ticket.batched {
            return self.reply(&ticket, WorkerReply::Result(result));
        }
        let same = self
            .results
            .iter_mut()
            .find(|(t, _)| t.reply_to == ticket.reply_to && t.incarnation == ticket.incarnation);
        match same {
            Some((_, results)) => results.push(result),
            None => self.results.push((ticket, vec![result])),
        }
    }

    /// Sends the collected results, one envelope per requester.
    fn flush(&mut self) {
        for (ticket, results) in std::mem::take(&mut self.results) {
            let reply = match ticket.incarnation {
                Some(incarnation) => WorkerReply::Fenced(incarnation, results),
                None => WorkerReply::Results(results),
            };
            self.reply(&ticket, reply);
        }
    }

    /// Stores the load as it is now for this process's coordinator
    /// (external workers' jobs, running or queued, count as queued).
    fn store_live_load(&self) {
        let queue = &self.parts.queue;
        let external = self.parts.external_busy.load(Ordering::Relaxed);
        self.parts
            .live_load
            .set(queue.in_flight(), queue.queue_depth() + external);
    }

    fn publish_load(&mut self) {
        self.store_live_load();
        let queue = &self.parts.queue;
        let (ext_running, ext_queued) = {
            let ext = self.parts.external.lock();
            (ext.in_flight(), ext.queued())
        };
        self.parts.router.set_load(Load {
            cpu_percent: self.cpu.sample(),
            in_flight: u32::try_from(queue.in_flight() + ext_running).unwrap_or(u32::MAX),
            queue_depth: u32::try_from(queue.queue_depth() + ext_queued).unwrap_or(u32::MAX),
        });
    }

    /// Sends a reply to its coordinator without waiting. A result (not a
    /// progress report) for a coordinator whose node is not Up, or behind
    /// earlier undelivered results, or whose send fails at once, is kept and
    /// retried (see `reply_retry`); the coordinator drops duplicates.
    fn reply(&mut self, ticket: &Ticket, reply: WorkerReply) {
        let reply = match &ticket.local {
            Some(coordinator) => match self.reply_local(coordinator, reply) {
                Some(reply) => reply,
                None => return,
            },
            None => reply,
        };
        let reply = &reply;
        let env = reply_envelope(ticket, reply);
        if matches!(reply, WorkerReply::Progress(_)) {
            return self.send(env);
        }
        let undelivered = &self.parts.undelivered;
        let node = ticket.reply_to.node();
        if undelivered.has_pending(node) || !reply_retry::deliverable_now(&self.parts.router, node)
        {
            undelivered.keep(env);
            return;
        }
        if let Err(err) = self.outbox.send(env.clone()) {
            tracing::info!(to = %ticket.reply_to, %err, "worker result kept for a retry");
            undelivered.keep(env);
        }
    }

    /// Hands a reply to the coordinator of this process without an
    /// envelope; gives it back when that cannot be done at once (its
    /// mailbox is full or it stopped) or while earlier replies to it wait
    /// in the outbox or for a retry (they keep their order).
    fn reply_local(
        &mut self,
        coordinator: &ActorRef<LocalReply>,
        reply: WorkerReply,
    ) -> Option<WorkerReply> {
        let node = self.parts.me.node();
        if self.outbox.is_queued(node) || self.parts.undelivered.has_pending(node) {
            return Some(reply);
        }
        let count = reply.result_count();
        let local = LocalReply {
            from: self.parts.me.clone(),
            reply,
        };
        self.parts.local_stats.add_results(count);
        match coordinator.try_tell(local) {
            Ok(()) => None,
            Err(TrySendError::Full(local) | TrySendError::Closed(local)) => {
                self.parts.local_stats.undo_results(count);
                Some(local.reply)
            }
        }
    }

    fn send(&mut self, env: Envelope) {
        let to = env.to.clone();
        if let Err(err) = self.outbox.send(env) {
            tracing::debug!(%to, %err, "cannot deliver a worker reply");
        }
    }
}

#[async_trait]
impl Actor for PoolActor {
    type Message = PoolMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let period = self.parts.load_interval.max(Duration::from_millis(10));
        ctx.run_interval(period, || PoolMsg::Load);
        ctx.run_interval(EXTERNAL_TICK, || PoolMsg::ExternalTick);
        Ok(())
    }

    async fn handle(&mut self, msg: PoolMsg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            PoolMsg::Envelope(env) => self.on_envelope(env),
            PoolMsg::LocalJobs(jobs) => self.on_local_jobs(jobs),
            PoolMsg::LocalCancel(cancel) => {
                self.on_cancel(&cancel.from, cancel.incarnation, &cancel.attempts);
            }
            PoolMsg::Event(event) => self.on_event(event),
            PoolMsg::Load => self.publish_load(),
            PoolMsg::ExternalTick => self.with_external(|ext, now| ext.tick(now)),
            PoolMsg::ClientGone(client) => {
                self.with_external(|ext, now| ext.on_client_gone(&client, now));
            }
            PoolMsg::HandBack => self.hand_back(),
            PoolMsg::Finish => {
                self.with_external(|ext, now| ext.shutdown(now));
                self.flush();
                ctx.stop();
                return Ok(());
            }
        }
        if self.parts.queue.jobs() > 1 {
            // Under load, let the workers finish a few more jobs so that
            // one envelope carries many results. With one job (or none) in
            // the engine nothing else can join: answer at once (lingering
            // costs a yield, and tokio polls the socket driver with a
            // syscall before it resumes the yielded task).
            ctx.linger();
        }
        Ok(())
    }

    async fn drained(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.flush();
        self.store_live_load();
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // A failed instance still sends what it collected.
        self.flush();
    }
}

/// How often the external workers' timeouts and heartbeats are checked.
const EXTERNAL_TICK: Duration = Duration::from_millis(100);

impl PoolActor {
    /// Runs `op` on the external workers, then carries out its effects.
    fn with_external(&mut self, op: impl FnOnce(&mut ExternalWorkers<Arc<Ticket>>, Instant)) {
        let (effects, busy, advertised) = {
            let mut ext = self.parts.external.lock();
            op(&mut ext, Instant::now());
            let effects = ext.take_effects();
            let busy = ext.in_flight() + ext.queued();
            let advertise = effects.iter().any(|e| matches!(e, Effect::Advertise));
            (effects, busy, advertise.then(|| ext.advertised()))
        };
        self.parts.external_busy.store(busy, Ordering::Release);
        for effect in effects {
            match effect {
                Effect::Send(env) => self.send(env),
                Effect::Finished(result, ticket) => self.on_result(result, ticket),
                Effect::Progress(update, ticket) => {
                    self.reply(&ticket, WorkerReply::Progress(update));
                }
                Effect::Advertise => {}
            }
        }
        if let Some(advertised) = advertised {
            self.advertise_external(advertised);
        }
    }

    /// Advertises the built-in kinds, the window and what the external
    /// workers serve (unless the pool drains).
    fn advertise_external(&mut self, advertised: Vec<String>) {
        if self.parts.draining.load(Ordering::Acquire) {
            return;
        }
        let router = &self.parts.router;
        let mut previous = self.parts.external_tags.lock();
        let mut tags: Vec<String> = router
            .member(router.node_id())
            .map(|m| m.tags)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !t.starts_with(KIND_TAG_PREFIX) && !t.starts_with(CAPACITY_TAG_PREFIX))
            .filter(|t| !previous.contains(t))
            .collect();
        let mut added = Vec::new();
        for tag in self.parts.kind_tags.iter().chain(&advertised) {
            if !tags.contains(tag) {
                if !tag.starts_with(KIND_TAG_PREFIX) && !tag.starts_with(CAPACITY_TAG_PREFIX) {
                    added.push(tag.clone());
                }
                tags.push(tag.clone());
            }
        }
        *previous = added;
        router.set_tags(tags);
    }
}

/// The external workers of the node `router` runs, which may not take
/// over the kinds of `registry`.
fn external_workers(
    router: &Router,
    registry: &HandlerRegistry,
    config: &WorkerPoolConfig,
) -> Result<ExternalWorkers<Arc<Ticket>>, JobError> {
    let me = router.addr(EXTERNAL)?;
    let node_tags = router
        .member(router.node_id())
        .map(|m| m.tags)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.starts_with(KIND_TAG_PREFIX) && !t.starts_with(CAPACITY_TAG_PREFIX))
        .collect();
    let local_kinds = registry.kinds().into_iter().map(str::to_owned).collect();
    Ok(ExternalWorkers::new(
        me,
        node_tags,
        local_kinds,
        ExternalLimits {
            enabled: config.external_workers,
            allowed_kinds: config.external_kinds.clone(),
            ..ExternalLimits::new(config.queue_capacity)
        },
    ))
}

/// Tells the pool actor about every client of the node that disconnects.
async fn forward_client_departures(
    mut departures: tokio::sync::broadcast::Receiver<ActorAddr>,
    pool: ActorRef<PoolMsg>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match departures.recv().await {
            Ok(client) => {
                if pool.tell(PoolMsg::ClientGone(client)).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                // Their workers are dropped by the heartbeat check instead.
                tracing::warn!(missed, "worker pool lagged behind client departures");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn reply_envelope(ticket: &Ticket, reply: &WorkerReply) -> Envelope {
    let mut env = Envelope::new(
        ticket.reply_to.clone(),
        ticket.me.clone(),
        ticket.format,
        encode_reply(reply, ticket.format),
    );
    env.correlation_id = Some(ticket.request);
    env
}

/// Machine CPU use from `/proc/stat` deltas, in percent summed over cores
/// (0 where `/proc/stat` is not available).
#[derive(Debug, Default)]
struct CpuSampler {
    last: Option<(u64, u64)>,
}

impl CpuSampler {
    fn sample(&mut self) -> f32 {
        let Some((busy, total)) = read_proc_stat() else {
            return 0.0;
        };
        let percent = match self.last {
            Some((last_busy, last_total)) if total > last_total => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let share = busy.saturating_sub(last_busy) as f64 / (total - last_total) as f64;
                (share * 100.0 * cores as f64) as f32
            }
            _ => 0.0,
        };
        self.last = Some((busy, total));
        percent
    }
}

fn read_proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_sampler_is_bounded() {
        let mut cpu = CpuSampler::default();
        let first = cpu.sample();
        let second = cpu.sample();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
        assert_eq!(first, 0.0, "the first sample has no delta");
        assert!((0.0..=100.0 * cores).contains(&second), "{second}");
    }
}
