//! [`WorkerPool`]: the network shell of a node's [`WorkerEngine`],
//! registered as `worker@<node>`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, ActorRef, BoxError, Context, SpawnOptions};
use async_trait::async_trait;
use cluster_router::{ActorAddr, Envelope, EnvelopeKind, Load, MessageId, PayloadFormat, Router};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::coordinator::{capacity_tag, CAPACITY_TAG_PREFIX};
use crate::error::{JobError, TrySubmitError};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::{HandlerRegistry, KIND_TAG_PREFIX};
use crate::job::JobResult;
use crate::protocol::{decode_jobs, encode_reply, WorkerReply, JOB_BATCH};
use crate::reply_retry::{self, PendingReplies, RetryLimits};
use crate::worker::{BusyProbe, WorkerConfig, WorkerEngine, WorkerEvent, WorkerQueue};

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
}

impl Default for WorkerPoolConfig {
    fn default() -> Self {
        let engine = WorkerConfig::default();
        WorkerPoolConfig {
            workers: engine.workers,
            queue_capacity: engine.queue_capacity,
            load_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Where a job's replies go; shared by every job of one request.
#[derive(Debug)]
struct Ticket {
    reply_to: ActorAddr,
    me: ActorAddr,
    request: MessageId,
    format: PayloadFormat,
    /// The request was a batch: results go back in batches (tag `2`).
    batched: bool,
}

/// A node's worker pool: receives jobs at `worker@<node>`, runs them on a
/// [`WorkerEngine`] and answers each with a [`JobResult`] (and progress
/// reports) in the request's payload format.
///
/// Starting a pool advertises `kind:<name>` tags for every registered kind
/// and its dispatch window as `capacity:<queue_capacity>` (keeping the
/// node's other tags), and publishes the pool's in-flight count, queue depth
/// and the node's CPU use through gossip.
pub struct WorkerPool {
    addr: ActorAddr,
    router: Router,
    inbox: ActorRef<Envelope>,
    engine: WorkerEngine<Arc<Ticket>>,
    load_task: JoinHandle<()>,
    shutdown_grace: Duration,
    draining: Arc<AtomicBool>,
    /// Results kept for coordinators that could not be reached.
    undelivered: Arc<PendingReplies>,
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
        let draining = Arc::new(AtomicBool::new(false));
        let (engine, events) = WorkerEngine::start(engine_config, Arc::new(registry))?;
        let me = router.addr(WORKER)?;
        let inbox_actor = PoolInbox {
            router: router.clone(),
            queue: engine.queue(),
            me: me.clone(),
            draining: draining.clone(),
        };
        let opts = SpawnOptions::default().capacity(config.queue_capacity.max(16));
        let inbox = spawn_with(format!("{WORKER}@{node}"), inbox_actor, opts)?;
        let addr = match router.register(WORKER, inbox.clone()) {
            Ok(addr) => addr,
            Err(err) => {
                inbox.stop();
                return Err(err.into());
            }
        };
        advertise_kinds(router, kind_tags);
        let undelivered = PendingReplies::new(RetryLimits::default());
        // The forwarder ends by itself once the engine is shut down; the
        // retry task once the forwarder and the pool are gone.
        tokio::spawn(forward_events(
            router.clone(),
            events,
            engine.queue().busy_probe(),
            undelivered.clone(),
        ));
        tokio::spawn(reply_retry::retry_loop(
            router.clone(),
            Arc::downgrade(&undelivered),
        ));
        let load_task = tokio::spawn(report_load(
            router.clone(),
            engine.queue(),
            config.load_interval,
        ));
        Ok(WorkerPool {
            addr,
            router: router.clone(),
            inbox,
            engine,
            load_task,
            shutdown_grace: config.shutdown_grace,
            draining,
            undelivered,
        })
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
        }
        let busy = self.engine.queue().busy_probe();
        while busy.is_busy() {
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
            inbox,
            engine,
            load_task,
            shutdown_grace,
            ..
        } = self;
        router.unregister(WORKER);
        inbox.stop();
        inbox.wait_stopped().await;
        drop(inbox);
        load_task.abort();
        let _ = load_task.await;
        engine.shutdown_within(shutdown_grace).await;
    }
}

/// Replaces the node's `kind:*` and `capacity:*` tags with `kind_tags`,
/// keeping the others.
fn advertise_kinds(router: &Router, kind_tags: Vec<String>) {
    let mut tags: Vec<String> = router
        .member(router.node_id())
        .map(|m| m.tags)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.starts_with(KIND_TAG_PREFIX) && !t.starts_with(CAPACITY_TAG_PREFIX))
        .collect();
    tags.extend(kind_tags);
    router.set_tags(tags);
}

struct PoolInbox {
    router: Router,
    queue: WorkerQueue<Arc<Ticket>>,
    me: ActorAddr,
    draining: Arc<AtomicBool>,
}

#[async_trait]
impl Actor for PoolInbox {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.kind != EnvelopeKind::Message {
            tracing::debug!(from = %env.from, kind = ?env.kind, "worker pool ignores a non-message envelope");
            return Ok(());
        }
        let jobs = match decode_jobs(&env.payload, env.format) {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(from = %env.from, %err, "undecodable job");
                let reply = env.error_reply(&format!("cannot decode job: {err}"));
                let _ = self.router.send(reply).await;
                return Ok(());
            }
        };
        let ticket = Arc::new(Ticket {
            reply_to: env.from.clone(),
            me: self.me.clone(),
            request: env.id,
            format: env.format,
            batched: env.format == PayloadFormat::Binary && env.payload.first() == Some(&JOB_BATCH),
        });
        let draining = self.draining.load(Ordering::Acquire);
        let mut refused = Vec::new();
        for job in jobs {
            let (job, cause, reason) = if draining {
                (job, FailureCause::Refused, "is draining")
            } else {
                match self.queue.try_submit(job, ticket.clone()) {
                    Ok(()) => continue,
                    Err(TrySubmitError::Full((job, _))) => (job, FailureCause::Refused, "is full"),
                    Err(err) => (
                        err.into_inner().0,
                        FailureCause::Undeliverable,
                        "is shutting down",
                    ),
                }
            };
            let failure =
                JobFailure::new(cause, format!("worker pool on {} {reason}", self.me.node()));
            let node = self.me.node().to_string();
            refused.push(JobResult::failure(
                job.id,
                failure,
                node,
                job.attempt,
                Duration::ZERO,
            ));
        }
        if !refused.is_empty() {
            self.reply_refused(refused, &ticket).await;
        }
        Ok(())
    }
}

impl PoolInbox {
    async fn reply_refused(&self, refused: Vec<JobResult>, ticket: &Ticket) {
        let replies = if ticket.batched {
            vec![WorkerReply::Results(refused)]
        } else {
            refused.into_iter().map(WorkerReply::Result).collect()
        };
        for reply in replies {
            if let Err(err) = self.router.send(reply_envelope(ticket, &reply)).await {
                tracing::warn!(%err, "cannot answer a refused job");
            }
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

/// Most events forwarded in one go (and results per batch reply).
const FORWARD_BATCH: usize = 512;
/// Most yields spent collecting more events while more are coming.
const COALESCE_ROUNDS: usize = 8;

/// Sends the engine's results and progress reports to their requesters:
/// results of batched requests go back in batches, one envelope per
/// requester for every run of events drained at once.
async fn forward_events(
    router: Router,
    mut events: mpsc::Receiver<WorkerEvent<Arc<Ticket>>>,
    busy: BusyProbe,
    undelivered: Arc<PendingReplies>,
) {
    let mut buf = Vec::with_capacity(FORWARD_BATCH);
    let mut batches: Vec<(Arc<Ticket>, Vec<JobResult>)> = Vec::new();
    while events.recv_many(&mut buf, FORWARD_BATCH).await > 0 {
        // Under load, let the worker loops finish a few more jobs so that
        // one envelope carries many results; an idle pool sends at once.
        let mut rounds = 0;
        while buf.len() < FORWARD_BATCH && rounds < COALESCE_ROUNDS && busy.is_busy() {
            tokio::task::yield_now().await;
            while buf.len() < FORWARD_BATCH {
                match events.try_recv() {
                    Ok(event) => buf.push(event),
                    Err(_) => break,
                }
            }
            rounds += 1;
        }
        for event in buf.drain(..) {
            let (reply, ticket) = match event {
                WorkerEvent::Finished { result, ticket, .. } if ticket.batched => {
                    let same = batches
                        .iter_mut()
                        .find(|(t, _)| t.reply_to == ticket.reply_to);
                    match same {
                        Some((_, results)) => results.push(result),
                        None => batches.push((ticket, vec![result])),
                    }
                    continue;
                }
                WorkerEvent::Finished { result, ticket, .. } => {
                    (WorkerReply::Result(result), ticket)
                }
                WorkerEvent::Progress { update, ticket } => (WorkerReply::Progress(update), ticket),
            };
            send_reply(&router, &ticket, &reply, &undelivered).await;
        }
        for (ticket, results) in batches.drain(..) {
            let reply = WorkerReply::Results(results);
            send_reply(&router, &ticket, &reply, &undelivered).await;
        }
    }
}

/// Sends a reply to its coordinator. A result (not a progress report) for
/// a coordinator that is not Up, or behind earlier undelivered results, or
/// whose send fails, is kept and retried (see `reply_retry`).
async fn send_reply(
    router: &Router,
    ticket: &Ticket,
    reply: &WorkerReply,
    undelivered: &PendingReplies,
) {
    let env = reply_envelope(ticket, reply);
    let is_result = !matches!(reply, WorkerReply::Progress(_));
    let node = ticket.reply_to.node();
    if is_result && (undelivered.has_pending(node) || !reply_retry::deliverable_now(router, node)) {
        undelivered.keep(env);
        return;
    }
    let kept = is_result.then(|| env.clone());
    if let Err(err) = router.send(env).await {
        match kept {
            Some(env) => {
                tracing::info!(to = %ticket.reply_to, %err, "worker result kept for a retry");
                undelivered.keep(env);
            }
            None => tracing::debug!(to = %ticket.reply_to, %err, "progress report dropped"),
        }
    }
}

/// Publishes in-flight, queue depth and CPU use every `interval`.
async fn report_load(router: Router, engine: WorkerQueue<Arc<Ticket>>, interval: Duration) {
    let mut cpu = CpuSampler::default();
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        router.set_load(Load {
            cpu_percent: cpu.sample(),
            in_flight: u32::try_from(engine.in_flight()).unwrap_or(u32::MAX),
            queue_depth: u32::try_from(engine.queue_depth()).unwrap_or(u32::MAX),
        });
    }
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
