//! The worker execution engine: K supervised worker actors sharing one
//! bounded mailbox (an actor-core balancing pool, so a free worker takes the
//! next job) and emitting results as [`WorkerEvent`]s.
//!
//! The engine knows nothing about the network: the network shell submits
//! `(Job, ticket)` pairs (the ticket says where the result goes, e.g. the
//! coordinator's address) and receives the events, on a channel or (the
//! worker pool) straight in its own mailbox.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actor_core::{
    Actor, ActorRef, BoxError, ChildEvent, Context, RestartPolicy, SpawnOptions, StopWatch,
    Supervisor, TrySendError,
};
use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{EngineClosed, TrySubmitError};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::{HandlerRegistry, JobContext, ProgressFn, ProgressUpdate};
use crate::job::{Job, JobResult};

/// Settings of a [`WorkerEngine`].
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This node's name, written into every result's `worker_node`.
    pub node: String,
    /// Concurrent worker loops (K); at least 1.
    pub workers: usize,
    /// Capacity of the shared job queue; at least 1.
    pub queue_capacity: usize,
    /// Capacity of the event channel the engine returns.
    pub event_capacity: usize,
    /// Restart budget of each worker loop.
    pub restart_policy: RestartPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            node: "local".to_owned(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 1024,
            event_capacity: 1024,
            restart_policy: RestartPolicy {
                max_restarts: 10,
                within: Duration::from_secs(10),
            },
        }
    }
}

/// What the engine emits.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerEvent<T> {
    /// A job finished (successfully or not); exactly one per accepted job.
    Finished {
        /// The outcome.
        result: JobResult,
        /// The job's kind.
        kind: String,
        /// The ticket submitted with the job.
        ticket: T,
    },
    /// A running handler reported progress (best effort, may be dropped
    /// when the event channel is full).
    Progress {
        /// The report.
        update: ProgressUpdate,
        /// The ticket submitted with the job.
        ticket: T,
    },
}

#[derive(Debug, Default)]
struct Counters {
    in_flight: AtomicUsize,
    /// Jobs queued and not yet taken by a worker.
    queued: AtomicUsize,
    finished: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
    /// Set by `shutdown`: no more jobs are accepted.
    closed: AtomicBool,
}

impl Counters {
    /// Jobs queued or running.
    fn jobs(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed)
    }
}

/// Where the engine's events go.
pub(crate) enum EventSink<T> {
    /// A channel, returned by [`WorkerEngine::start`].
    Channel(mpsc::Sender<WorkerEvent<T>>),
    /// An actor's mailbox, set once that actor exists (before any job is
    /// submitted: the actor is the only submitter).
    Actor(Arc<OnceLock<ActorRef<WorkerEvent<T>>>>),
}

impl<T> Clone for EventSink<T> {
    fn clone(&self) -> Self {
        match self {
            EventSink::Channel(tx) => EventSink::Channel(tx.clone()),
            EventSink::Actor(cell) => EventSink::Actor(Arc::clone(cell)),
        }
    }
}

/// What a [`EventSink`] did with an event it was not to wait for.
enum Tried<E> {
    Delivered,
    /// Nobody listens: the event is dropped.
    Nobody,
    /// The sink is full: the event is handed back.
    Full(E),
}

impl<T: Send + 'static> EventSink<T> {
    /// Delivers `event`, waiting for room; `false` if nobody listens.
    ///
    /// With room at once (the common case) nothing waits; the waiting send
    /// (a ~1 KB future) is boxed, so that it does not swell the future of
    /// every job's worker turn, which is built and copied once per job.
    async fn send(&self, event: WorkerEvent<T>) -> bool {
        match self.try_deliver(event) {
            Tried::Delivered => true,
            Tried::Nobody => false,
            Tried::Full(event) => Box::pin(self.send_waiting(event)).await,
        }
    }

    async fn send_waiting(&self, event: WorkerEvent<T>) -> bool {
        match self {
            EventSink::Channel(tx) => tx.send(event).await.is_ok(),
            EventSink::Actor(cell) => match cell.get() {
                Some(actor) => actor.tell(event).await.is_ok(),
                None => false,
            },
        }
    }

    /// Delivers `event` without waiting; hands it back if the sink is full
    /// (drops it if nobody listens).
    fn try_send(&self, event: WorkerEvent<T>) -> Option<WorkerEvent<T>> {
        match self.try_deliver(event) {
            Tried::Full(event) => Some(event),
            Tried::Delivered | Tried::Nobody => None,
        }
    }

    fn try_deliver(&self, event: WorkerEvent<T>) -> Tried<WorkerEvent<T>> {
        match self {
            EventSink::Channel(tx) => match tx.try_send(event) {
                Ok(()) => Tried::Delivered,
                Err(mpsc::error::TrySendError::Full(event)) => Tried::Full(event),
                Err(mpsc::error::TrySendError::Closed(_)) => Tried::Nobody,
            },
            EventSink::Actor(cell) => {
                let Some(actor) = cell.get() else {
                    return Tried::Nobody;
                };
                match actor.try_tell(event) {
                    Ok(()) => Tried::Delivered,
                    Err(TrySendError::Full(event)) => Tried::Full(event),
                    Err(TrySendError::Closed(_)) => Tried::Nobody,
                }
            }
        }
    }

    /// Delivers `event` from a context that must not wait or panic (a
    /// destructor): at once if there is room, else from a spawned task.
    fn send_detached(&self, event: WorkerEvent<T>) {
        if let Some(event) = self.try_send(event) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let sink = self.clone();
                runtime.spawn(async move {
                    sink.send(event).await;
                });
            }
        }
    }
}

/// How long a cancelled handler may go on to clean up (kill a child
/// process, remove a file) before its future is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// The controls of one queued or running job, shared by the worker running
/// it and whoever may stop it (the worker pool).
///
/// Its cancellation is lazy: a flag, and a [`CancellationToken`] made only
/// when something needs one (the handler asks its context for the token, or
/// the worker waits on it because the handler did not finish at its first
/// poll). Nearly no job is cancelled and most finish at their first poll,
/// and a token is an allocation, and a lock for each clone, drop, wait and
/// check: made for every job, it was ~8% of a worker node's samples.
#[derive(Debug, Default)]
pub(crate) struct TaskControl {
    /// Set by [`cancel`](Self::cancel): a queued job is not started.
    cancelled: AtomicBool,
    /// The running handler's token, made on first use
    /// ([`token`](Self::token)): it fires once the job is cancelled.
    token: OnceLock<CancellationToken>,
    /// Set on a job not started yet whose coordinator restarted (fencing):
    /// it is not run, and its result is not sent.
    pub(crate) fenced: AtomicBool,
    /// Set by the worker that takes the job, or by a draining pool that
    /// hands the job back unstarted (whichever sets it first answers).
    pub(crate) started: AtomicBool,
}

impl TaskControl {
    /// Cancels the job: a queued job is not started, a running handler sees
    /// [`JobContext::cancelled`] fire (its token, if it has one yet, is
    /// cancelled here; one made later is cancelled as it is made).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        // Cancel and `token` race as a store then a load on each side (the
        // flag here, the token's cell there): with a SeqCst fence between
        // each side's store and load, whichever side's fence comes second
        // sees the other's store. So either this sees the token and cancels
        // it, or `token` sees the flag and cancels the token it made (or
        // both, which is harmless): a token never stays live after a cancel.
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }

    /// Whether the job was cancelled: by [`cancel`](Self::cancel), or
    /// through its token (a handler may cancel its own). Makes no token.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || self
                .token
                .get()
                .is_some_and(CancellationToken::is_cancelled)
    }

    /// The job's token, made on first use; already cancelled if the job
    /// was.
    pub(crate) fn token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        // Pairs with the fence in `cancel` (see there).
        fence(Ordering::SeqCst);
        if self.cancelled.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }

    /// Whether the job's token was made.
    #[cfg(test)]
    pub(crate) fn has_token(&self) -> bool {
        self.token.get().is_some()
    }
}

/// A queued job. Dropped without being run (the engine shut down with it
/// still queued), it still answers: a retryable `node_down` failure.
struct Task<T: Send + 'static> {
    work: Option<(Job, T)>,
    shared: Arc<LoopShared<T>>,
    control: Option<Arc<TaskControl>>,
}

impl<T: Send + 'static> Task<T> {
    /// Takes the job out, disarming the guard.
    fn take(mut self) -> Option<(Job, T, Option<Arc<TaskControl>>)> {
        self.shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
        let (job, ticket) = self.work.take()?;
        Some((job, ticket, self.control.take()))
    }
}

impl<T: Send + 'static> Drop for Task<T> {
    fn drop(&mut self) {
        let Some((job, ticket)) = self.work.take() else {
            return;
        };
        let shared = &self.shared;
        shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
        shared.counters.finished.fetch_add(1, Ordering::Relaxed);
        let failure = JobFailure::new(
            FailureCause::NodeDown,
            format!("worker on {} shut down before running the job", shared.node),
        );
        let result =
            JobResult::failure(job.id, failure, &*shared.node, job.attempt, Duration::ZERO);
        shared.events.send_detached(WorkerEvent::Finished {
            result,
            kind: job.kind,
            ticket,
        });
    }
}

/// A worker's mailbox message.
enum Work<T: Send + 'static> {
    Run(Task<T>),
    /// Sent once per worker by `shutdown`, behind every queued job.
    Stop,
}

struct LoopShared<T> {
    node: Arc<str>,
    registry: Arc<HandlerRegistry>,
    events: EventSink<T>,
    counters: Arc<Counters>,
    cancel: watch::Sender<bool>,
}

/// Runs jobs on K worker actors, the members of one actor-core balancing
/// pool ([`Supervisor::spawn_pool`]): they share the bounded job queue as
/// their mailbox, and each is supervised on its own.
///
/// Every accepted job yields exactly one [`WorkerEvent::Finished`]: an
/// unknown kind, undecodable data, a handler error, a handler that overruns
/// the job's timeout, and a handler panic all become error results with the
/// matching [`FailureCause`], and the loop goes on with the next job.
///
/// `catch_unwind` around each handler call covers panics while the handler
/// runs; the supervisor covers the rest. A panic outside that catch (for
/// instance in the destructor of a handler's future, which runs when a
/// handler that overran its timeout is cancelled) fails the worker: the job
/// it was running still yields its one `Finished` event (a retryable
/// [`FailureCause::Panic`] failure, sent by a guard as the worker unwinds),
/// and the supervisor rebuilds the worker on the same queue, within its
/// restart budget ([`WorkerConfig::restart_policy`]; see
/// [`restarts`](Self::restarts)).
///
/// ```
/// use std::sync::Arc;
/// use job_queue::{HandlerError, HandlerRegistry, Job, JobContext, WorkerConfig, WorkerEngine, WorkerEvent};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut registry = HandlerRegistry::new();
/// registry.register("upper", |ctx: JobContext| async move {
///     Ok::<_, HandlerError>(ctx.data().to_uppercase())
/// });
/// let config = WorkerConfig { node: "node-a".into(), workers: 2, ..WorkerConfig::default() };
/// let (engine, mut events) = WorkerEngine::start(config, Arc::new(registry)).unwrap();
/// engine.submit(Job::new("upper", "hi"), ()).await.unwrap();
/// match events.recv().await.unwrap() {
///     WorkerEvent::Finished { result, .. } => assert_eq!(result.result.as_deref(), Some("HI")),
///     other => panic!("unexpected {other:?}"),
/// }
/// engine.shutdown().await;
/// # }
/// ```
pub struct WorkerEngine<T: Send + 'static> {
    queue: WorkerQueue<T>,
    workers: usize,
    stopped: StopWatch,
    cancel: watch::Sender<bool>,
}

/// A cloneable handle that queues jobs on a [`WorkerEngine`] and reads its
/// load. Jobs are refused once the engine is shut down.
pub struct WorkerQueue<T: Send + 'static> {
    /// The pool's mailbox, as seen by submitters (who send only jobs).
    tx: ActorRef<Task<T>>,
    /// The pool's own handle (jobs and stops).
    pool: ActorRef<Work<T>>,
    shared: Arc<LoopShared<T>>,
    counters: Arc<Counters>,
}

impl<T: Send + 'static> Clone for WorkerQueue<T> {
    fn clone(&self) -> Self {
        WorkerQueue {
            tx: self.tx.clone(),
            pool: self.pool.clone(),
            shared: self.shared.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for WorkerQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerQueue")
            .field("in_flight", &self.in_flight())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl<T: Send + 'static> std::fmt::Debug for WorkerEngine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerEngine")
            .field("workers", &self.workers)
            .field("in_flight", &self.in_flight())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> WorkerEngine<T> {
    /// Starts K worker actors on the current Tokio runtime; returns the
    /// engine and the receiver of its events.
    ///
    /// # Errors
    ///
    /// [`actor_core::ActorError`] if the workers cannot be spawned (no
    /// runtime).
    pub fn start(
        config: WorkerConfig,
        registry: Arc<HandlerRegistry>,
    ) -> Result<(Self, mpsc::Receiver<WorkerEvent<T>>), actor_core::ActorError> {
        let (events, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let engine = Self::start_with(config, registry, EventSink::Channel(events))?;
        Ok((engine, events_rx))
    }

    /// Starts the engine with its events going to `events`.
    pub(crate) fn start_with(
        config: WorkerConfig,
        registry: Arc<HandlerRegistry>,
        events: EventSink<T>,
    ) -> Result<Self, actor_core::ActorError> {
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(LoopShared {
            node: Arc::from(config.node.as_str()),
            registry,
            events,
            counters: counters.clone(),
            cancel: watch::channel(false).0,
        });
        let (supervisor, child_events) = Supervisor::new(config.restart_policy);
        let workers = config.workers.max(1);
        let factory_shared = shared.clone();
        let factory = move |_| WorkerLoop {
            shared: factory_shared.clone(),
        };
        let opts = SpawnOptions::default().capacity(config.queue_capacity.max(1));
        let name = format!("{}/worker", config.node);
        let pool = supervisor.spawn_pool(name, workers, factory, opts)?;
        tokio::spawn(watch_children(child_events, counters.clone()));
        let cancel = shared.cancel.clone();
        let stopped = pool.stop_watch();
        let queue = WorkerQueue {
            tx: pool.recipient(),
            pool,
            shared,
            counters,
        };
        Ok(WorkerEngine {
            queue,
            workers,
            stopped,
            cancel,
        })
    }

    /// Queues a job, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`EngineClosed`] with the job and ticket if the engine has shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the job was not queued.
    pub async fn submit(&self, job: Job, ticket: T) -> Result<(), EngineClosed<(Job, T)>> {
        self.queue.submit(job, ticket).await
    }

    /// Queues a job without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], handing the
    /// job and ticket back.
    // The error hands the job back (as tokio's `TrySendError` does): it is
    // as large as a job, by design.
    #[allow(clippy::result_large_err)]
    pub fn try_submit(&self, job: Job, ticket: T) -> Result<(), TrySubmitError<(Job, T)>> {
        self.queue.try_submit(job, ticket)
    }

    /// Stops accepting jobs (through this engine and every [`WorkerQueue`]),
    /// lets the workers finish every queued job, and waits for them to stop.
    pub async fn shutdown(self) {
        self.close();
        self.stop_workers().await;
        self.stopped.wait().await;
    }

    /// Like [`shutdown`](Self::shutdown), but after `grace` the handlers
    /// still running (and any job still queued) are cancelled: each yields a
    /// retryable [`FailureCause::NodeDown`] result ("worker shutting down"),
    /// so a coordinator retries it elsewhere. Returns whether everything
    /// finished within `grace`.
    pub async fn shutdown_within(self, grace: Duration) -> bool {
        self.close();
        let drained = tokio::time::timeout(grace, async {
            self.stop_workers().await;
            self.stopped.wait().await;
        })
        .await
        .is_ok();
        if !drained {
            self.cancel.send_replace(true);
            // The queue now empties fast; stops that did not fit before go
            // in now (a surplus one is dropped with the mailbox).
            self.stop_workers().await;
            self.stopped.wait().await;
        }
        drained
    }

    /// Refuses new jobs from now on.
    fn close(&self) {
        self.queue.counters.closed.store(true, Ordering::Release);
    }

    /// Queues one stop per worker behind the jobs already queued.
    async fn stop_workers(&self) {
        for _ in 0..self.workers {
            if self.queue.pool.tell(Work::Stop).await.is_err() {
                break;
            }
        }
    }
}

impl<T: Send + 'static> WorkerEngine<T> {
    /// A cloneable handle to queue jobs and read the load.
    pub fn queue(&self) -> WorkerQueue<T> {
        self.queue.clone()
    }

    /// Jobs being run right now.
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.queue_depth()
    }

    /// Jobs finished since start (any outcome).
    pub fn finished(&self) -> u64 {
        self.queue.counters.finished.load(Ordering::Relaxed)
    }

    /// Handler panics caught since start.
    pub fn panics(&self) -> u64 {
        self.queue.counters.panics.load(Ordering::Relaxed)
    }

    /// Worker-loop restarts by the supervisor since start.
    pub fn restarts(&self) -> u64 {
        self.queue.counters.restarts.load(Ordering::Relaxed)
    }

    /// The number of worker actors (K).
    pub fn workers(&self) -> usize {
        self.workers
    }
}

impl<T: Send + 'static> WorkerQueue<T> {
    /// Queues a job, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`EngineClosed`] with the job and ticket if the engine has shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the job was not queued.
    pub async fn submit(&self, job: Job, ticket: T) -> Result<(), EngineClosed<(Job, T)>> {
        if self.counters.closed.load(Ordering::Acquire) {
            return Err(EngineClosed((job, ticket)));
        }
        let sent = self.tx.tell(self.task(job, ticket)).await;
        sent.map_err(|err| EngineClosed(untask(err.into_inner())))
    }

    /// Queues a job without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], handing the
    /// job and ticket back.
    // The error hands the job back (as tokio's `TrySendError` does): it is
    // as large as a job, by design.
    #[allow(clippy::result_large_err)]
    pub fn try_submit(&self, job: Job, ticket: T) -> Result<(), TrySubmitError<(Job, T)>> {
        if self.counters.closed.load(Ordering::Acquire) {
            return Err(TrySubmitError::Closed((job, ticket)));
        }
        self.tx
            .try_tell(self.task(job, ticket))
            .map_err(|err| match err {
                TrySendError::Full(task) => TrySubmitError::Full(untask(task)),
                TrySendError::Closed(task) => TrySubmitError::Closed(untask(task)),
            })
    }

    /// [`try_submit`](Self::try_submit) with controls the caller keeps to
    /// cancel or fence the job.
    #[allow(clippy::result_large_err)] // hands the job back, as `try_submit`
    pub(crate) fn try_submit_controlled(
        &self,
        job: Job,
        ticket: T,
        control: Arc<TaskControl>,
    ) -> Result<(), TrySubmitError<(Job, T)>> {
        if self.counters.closed.load(Ordering::Acquire) {
            return Err(TrySubmitError::Closed((job, ticket)));
        }
        let mut task = self.task(job, ticket);
        task.control = Some(control);
        self.tx.try_tell(task).map_err(|err| match err {
            TrySendError::Full(task) => TrySubmitError::Full(untask(task)),
            TrySendError::Closed(task) => TrySubmitError::Closed(untask(task)),
        })
    }

    fn task(&self, job: Job, ticket: T) -> Task<T> {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        Task {
            work: Some((job, ticket)),
            shared: self.shared.clone(),
            control: None,
        }
    }

    /// Jobs being run right now.
    pub fn in_flight(&self) -> usize {
        self.counters.in_flight.load(Ordering::Relaxed)
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.free_capacity()
    }

    /// Jobs queued or running in the engine.
    pub(crate) fn jobs(&self) -> usize {
        self.counters.jobs()
    }

    /// A view of the running-job count that does not keep the queue open.
    pub(crate) fn busy_probe(&self) -> BusyProbe {
        BusyProbe(self.counters.clone())
    }
}

/// Tells whether a worker engine is running jobs, without holding its queue.
#[derive(Debug, Clone)]
pub(crate) struct BusyProbe(Arc<Counters>);

impl BusyProbe {
    pub(crate) fn is_busy(&self) -> bool {
        self.0.jobs() > 0
    }
}

async fn watch_children(mut events: mpsc::UnboundedReceiver<ChildEvent>, counters: Arc<Counters>) {
    while let Some(event) = events.recv().await {
        match event {
            ChildEvent::Restarted { name, cause } => {
                counters.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%name, %cause, "worker loop restarted");
            }
            ChildEvent::GaveUp { name, cause } => {
                tracing::error!(%name, %cause, "worker loop gave up after too many restarts");
            }
            _ => {}
        }
    }
}

impl<T: Send + 'static> From<Task<T>> for Work<T> {
    fn from(task: Task<T>) -> Self {
        Work::Run(task)
    }
}

/// The job of a task that was not queued, handed back to its submitter.
fn untask<T: Send + 'static>(mut task: Task<T>) -> (Job, T) {
    task.shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
    task.work
        .take()
        .expect("a task is only emptied by the worker that runs it")
}

/// One worker: a member of the engine's balancing pool.
struct WorkerLoop<T> {
    shared: Arc<LoopShared<T>>,
}

#[async_trait]
impl<T: Clone + Send + Sync + 'static> Actor for WorkerLoop<T> {
    type Message = Work<T>;

    async fn handle(&mut self, work: Work<T>, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match work {
            Work::Run(task) => {
                if let Some((job, ticket, control)) = task.take() {
                    run_task(&self.shared, job, ticket, control).await;
                }
            }
            Work::Stop => ctx.stop(),
        }
        Ok(())
    }
}

/// Decrements `in_flight` even if the task is torn down by a panic.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters) -> Self {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers for a job whose worker loop died before it could (a panic
/// outside the handler's catch): on drop, unless disarmed, it emits the
/// job's one `Finished` event as a retryable panic failure.
struct Unfinished<'a, T: Send + 'static> {
    shared: &'a LoopShared<T>,
    id: crate::job::JobId,
    attempt: u32,
    started: Instant,
    /// The job's kind and ticket, until the job is answered.
    pending: Option<(String, T)>,
}

impl<T: Send + 'static> Unfinished<'_, T> {
    /// Disarms the guard, handing the kind and ticket back.
    fn finish(mut self) -> Option<(String, T)> {
        self.pending.take()
    }
}

impl<T: Send + 'static> Drop for Unfinished<'_, T> {
    fn drop(&mut self) {
        let Some((kind, ticket)) = self.pending.take() else {
            return;
        };
        let node = &*self.shared.node;
        let failure = JobFailure::new(
            FailureCause::Panic,
            format!("the worker loop on {node} crashed while running the job"),
        );
        let elapsed = self.started.elapsed();
        let result = JobResult::failure(self.id.clone(), failure, node, self.attempt, elapsed);
        self.shared
            .counters
            .finished
            .fetch_add(1, Ordering::Relaxed);
        let event = WorkerEvent::Finished {
            result,
            kind,
            ticket,
        };
        // Never panic or wait here: this may run while the worker unwinds.
        self.shared.events.send_detached(event);
    }
}

async fn run_task<T: Clone + Send + Sync + 'static>(
    shared: &LoopShared<T>,
    job: Job,
    ticket: T,
    control: Option<Arc<TaskControl>>,
) {
    let guard = InFlight::enter(&shared.counters);
    let started = Instant::now();
    let (id, attempt) = (job.id.clone(), job.attempt);
    let unfinished = Unfinished {
        shared,
        id: id.clone(),
        attempt,
        started,
        pending: Some((job.kind.clone(), ticket.clone())),
    };
    let outcome = match &control {
        Some(c) if c.fenced.load(Ordering::Acquire) || c.is_cancelled() => {
            Err(cancelled_failure(shared, "before it started"))
        }
        // Taking the job and handing it back (a draining pool) race on
        // `started`: whoever sets it first owns the job's one answer.
        Some(c) if c.started.swap(true, Ordering::AcqRel) => {
            let _ = unfinished.finish();
            return;
        }
        _ => execute(shared, job, &ticket, control, started).await,
    };
    let Some((kind, _)) = unfinished.finish() else {
        return;
    };
    let elapsed = started.elapsed();
    let node = &*shared.node;
    let result = match outcome {
        Ok(output) => JobResult::success(id, output, node, attempt, elapsed),
        Err(failure) => JobResult::failure(id, failure, node, attempt, elapsed),
    };
    drop(guard);
    shared.counters.finished.fetch_add(1, Ordering::Relaxed);
    let event = WorkerEvent::Finished {
        result,
        kind,
        ticket,
    };
    if !shared.events.send(event).await {
        tracing::debug!("worker event receiver dropped; result discarded");
    }
}

fn cancelled_failure<T>(shared: &LoopShared<T>, when: &str) -> JobFailure {
    JobFailure::new(
        FailureCause::Cancelled,
        format!("cancelled on {} {when}", shared.node),
    )
}

async fn execute<T: Clone + Send + Sync + 'static>(
    shared: &LoopShared<T>,
    job: Job,
    ticket: &T,
    control: Option<Arc<TaskControl>>,
    started: Instant,
) -> Result<String, JobFailure> {
    let Some(handler) = shared.registry.get(&job.kind) else {
        return Err(JobFailure::new(
            FailureCause::UnknownKind,
            format!(
                "node {} has no handler for kind {:?}",
                shared.node, job.kind
            ),
        ));
    };
    let timeout = job.timeout;
    let events = shared.events.clone();
    let ticket = ticket.clone();
    let progress: ProgressFn = Arc::new(move |update| {
        // Best effort: a report that finds the sink full is dropped.
        let _ = events.try_send(WorkerEvent::Progress {
            update,
            ticket: ticket.clone(),
        });
    });
    // The context shares the job's controls (a reference count, no token:
    // one is made only if the handler asks for it). Without controls (the
    // engine used on its own) nobody can cancel the job: the handler's
    // token, if it makes one, is its own and the worker does not watch it.
    let ctx = JobContext::for_attempt(
        job,
        shared.node.clone(),
        Some(progress),
        control.clone(),
        started,
    );
    let run = AssertUnwindSafe(async move { handler.handle(ctx).await }).catch_unwind();
    // One timer per *running* job (at most K per node), so a stuck handler
    // cannot hold a worker loop forever.
    let mut shutting_down = shared.cancel.subscribe();
    // From the attempt's start (no second clock read); a timeout too long
    // to add is as good as none.
    let deadline = started
        .checked_add(timeout)
        .map(tokio::time::Instant::from_std);
    let mut run = std::pin::pin!(match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, run),
        None => tokio::time::timeout(timeout, run),
    });
    // A handler done at its first poll (most short jobs) ends here, before
    // the shutdown and cancel waits register (each a lock to register and
    // one to deregister), and without a cancellation token unless the
    // handler made one. Not started while the worker shuts down; and a
    // cancel that came while it ran wins, as it would in the select.
    let first = if *shutting_down.borrow() {
        None
    } else {
        (&mut run).now_or_never()
    };
    if let Some(outcome) = first {
        if control.as_deref().is_some_and(TaskControl::is_cancelled) {
            return Err(cancelled_failure(shared, "while running"));
        }
        return settle(shared, outcome, timeout);
    }
    // The handler waits: only now is the job's token needed (made, or
    // taken from the handler that made it, at the select's first poll).
    let cancelled = async {
        match &control {
            Some(control) => control.token().cancelled().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        biased;
        _ = shutting_down.wait_for(|c| *c) => {
            return Err(JobFailure::new(
                FailureCause::NodeDown,
                format!("worker on {} is shutting down", shared.node),
            ));
        }
        () = cancelled => None,
        outcome = &mut run => Some(outcome),
    };
    let Some(outcome) = outcome else {
        // The handler sees the cancellation too: give it a moment to clean
        // up (kill its child), then drop it.
        let _ = tokio::time::timeout(CANCEL_GRACE, &mut run).await;
        return Err(cancelled_failure(shared, "while running"));
    };
    settle(shared, outcome, timeout)
}

/// What a handler's run came to: its output, or the failure its timeout,
/// panic or error makes.
fn settle<T>(
    shared: &LoopShared<T>,
    outcome: Result<
        std::thread::Result<Result<String, crate::HandlerError>>,
        tokio::time::error::Elapsed,
    >,
    timeout: Duration,
) -> Result<String, JobFailure> {
    match outcome {
        Err(_) => Err(JobFailure::new(
            FailureCause::Timeout,
            format!("handler did not finish within {} ms", timeout.as_millis()),
        )),
        Ok(Err(panic)) => {
            shared.counters.panics.fetch_add(1, Ordering::Relaxed);
            Err(JobFailure::new(
                FailureCause::Panic,
                format!("handler panicked: {}", panic_message(panic.as_ref())),
            ))
        }
        Ok(Ok(Err(err))) => Err(JobFailure::from_handler_error(&err)),
        Ok(Ok(Ok(output))) => Ok(output),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
