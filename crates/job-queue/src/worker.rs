//! The worker execution engine: K supervised worker loops pulling jobs from
//! one shared bounded queue and emitting results on a channel.
//!
//! The engine knows nothing about the network: the network shell submits
//! `(Job, ticket)` pairs (the ticket says where the result goes, e.g. the
//! coordinator's address) and forwards the [`WorkerEvent`]s it receives.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_core::{
    Actor, ActorRef, BoxError, ChildEvent, Context, RestartPolicy, SpawnOptions, Supervisor,
};
use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch, Mutex};

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
    /// Jobs queued and not yet taken by a loop.
    queued: AtomicUsize,
    finished: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
}

struct Task<T> {
    job: Job,
    ticket: T,
}

struct LoopShared<T> {
    node: Arc<str>,
    registry: Arc<HandlerRegistry>,
    events: mpsc::Sender<WorkerEvent<T>>,
    counters: Arc<Counters>,
    cancel: watch::Sender<bool>,
}

/// Runs jobs on K worker loops, each a child of an actor-core
/// [`Supervisor`].
///
/// Every accepted job yields exactly one [`WorkerEvent::Finished`]: an
/// unknown kind, undecodable data, a handler error, a handler that overruns
/// the job's timeout, and a handler panic all become error results with the
/// matching [`FailureCause`], and the loop goes on with the next job.
///
/// `catch_unwind` around each handler call covers panics while the handler
/// runs; the supervisor covers the rest. A panic outside that catch (for
/// instance in the destructor of a handler's future, which runs when a
/// handler that overran its timeout is cancelled) ends the loop: the job it
/// was running still yields its one `Finished` event (a retryable
/// [`FailureCause::Panic`] failure, sent by a guard as the loop unwinds),
/// and the supervisor rebuilds the loop on the same queue, within its
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
pub struct WorkerEngine<T> {
    queue: WorkerQueue<T>,
    loops: Vec<ActorRef<Pull>>,
    cancel: watch::Sender<bool>,
}

/// A cloneable handle that queues jobs on a [`WorkerEngine`] and reads its
/// load. The queue closes once the engine and every handle are dropped.
pub struct WorkerQueue<T> {
    tx: mpsc::Sender<Task<T>>,
    counters: Arc<Counters>,
}

impl<T> Clone for WorkerQueue<T> {
    fn clone(&self) -> Self {
        WorkerQueue {
            tx: self.tx.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<T> std::fmt::Debug for WorkerQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerQueue")
            .field("in_flight", &self.in_flight())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl<T> std::fmt::Debug for WorkerEngine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerEngine")
            .field("workers", &self.loops.len())
            .field("in_flight", &self.in_flight())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("job", &self.job.id).finish()
    }
}

impl<T: Clone + Send + Sync + 'static> WorkerEngine<T> {
    /// Starts K worker loops on the current Tokio runtime; returns the engine
    /// and the receiver of its events.
    ///
    /// # Errors
    ///
    /// [`actor_core::ActorError`] if a loop cannot be spawned (no runtime).
    pub fn start(
        config: WorkerConfig,
        registry: Arc<HandlerRegistry>,
    ) -> Result<(Self, mpsc::Receiver<WorkerEvent<T>>), actor_core::ActorError> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (events, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(LoopShared {
            node: Arc::from(config.node.as_str()),
            registry,
            events,
            counters: counters.clone(),
            cancel: watch::channel(false).0,
        });
        let rx = Arc::new(Mutex::new(rx));
        let (supervisor, child_events) = Supervisor::new(config.restart_policy);
        let mut loops = Vec::with_capacity(config.workers.max(1));
        for i in 0..config.workers.max(1) {
            let (rx, shared) = (rx.clone(), shared.clone());
            let factory = move || WorkerLoop {
                rx: rx.clone(),
                shared: shared.clone(),
            };
            let name = format!("{}/worker-{i}", config.node);
            loops.push(supervisor.spawn_child(
                name,
                factory,
                SpawnOptions::default().capacity(4),
            )?);
        }
        tokio::spawn(watch_children(child_events, counters.clone()));
        let cancel = shared.cancel.clone();
        let queue = WorkerQueue { tx, counters };
        Ok((
            WorkerEngine {
                queue,
                loops,
                cancel,
            },
            events_rx,
        ))
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
    pub fn try_submit(&self, job: Job, ticket: T) -> Result<(), TrySubmitError<(Job, T)>> {
        self.queue.try_submit(job, ticket)
    }

    /// Stops accepting jobs through this engine, lets the loops finish every
    /// queued job, and waits for them to stop (which happens once every
    /// [`WorkerQueue`] handle is dropped too).
    pub async fn shutdown(self) {
        let WorkerEngine { queue, loops, .. } = self;
        drop(queue);
        for worker in &loops {
            worker.wait_stopped().await;
        }
    }

    /// Like [`shutdown`](Self::shutdown), but after `grace` the handlers
    /// still running (and any job still queued) are cancelled: each yields a
    /// retryable [`FailureCause::NodeDown`] result ("worker shutting down"),
    /// so a coordinator retries it elsewhere. Returns whether everything
    /// finished within `grace`.
    pub async fn shutdown_within(self, grace: Duration) -> bool {
        let WorkerEngine {
            queue,
            loops,
            cancel,
        } = self;
        drop(queue);
        let drained = tokio::time::timeout(grace, async {
            for worker in &loops {
                worker.wait_stopped().await;
            }
        })
        .await
        .is_ok();
        if !drained {
            cancel.send_replace(true);
            for worker in &loops {
                worker.wait_stopped().await;
            }
        }
        drained
    }
}

impl<T> WorkerEngine<T> {
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

    /// The number of worker loops (K).
    pub fn workers(&self) -> usize {
        self.loops.len()
    }
}

impl<T> WorkerQueue<T> {
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
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self.tx.send(Task { job, ticket }).await;
        sent.map_err(|e| {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            EngineClosed((e.0.job, e.0.ticket))
        })
    }

    /// Queues a job without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], handing the
    /// job and ticket back.
    pub fn try_submit(&self, job: Job, ticket: T) -> Result<(), TrySubmitError<(Job, T)>> {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.tx
            .try_send(Task { job, ticket })
            .inspect_err(|_| {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(t) => TrySubmitError::Full((t.job, t.ticket)),
                mpsc::error::TrySendError::Closed(t) => TrySubmitError::Closed((t.job, t.ticket)),
            })
    }

    /// Jobs being run right now.
    pub fn in_flight(&self) -> usize {
        self.counters.in_flight.load(Ordering::Relaxed)
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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
        self.0.in_flight.load(Ordering::Relaxed) > 0 || self.0.queued.load(Ordering::Relaxed) > 0
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

/// The one message a worker loop handles: "pull jobs until the queue closes".
#[derive(Debug)]
pub(crate) struct Pull;

struct WorkerLoop<T> {
    rx: Arc<Mutex<mpsc::Receiver<Task<T>>>>,
    shared: Arc<LoopShared<T>>,
}

#[async_trait]
impl<T: Clone + Send + Sync + 'static> Actor for WorkerLoop<T> {
    type Message = Pull;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        // Every instance, first or restarted, kicks itself into pulling.
        let _ = ctx.myself().try_tell(Pull);
        Ok(())
    }

    async fn handle(&mut self, _msg: Pull, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        loop {
            let next = {
                let mut rx = self.rx.lock().await;
                rx.recv().await
            };
            match next {
                Some(task) => {
                    self.shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    run_task(&self.shared, task).await
                }
                None => {
                    ctx.stop();
                    return Ok(());
                }
            }
        }
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
        // Never panic here: this may run while the loop unwinds.
        if let Err(mpsc::error::TrySendError::Full(event)) = self.shared.events.try_send(event) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let events = self.shared.events.clone();
                runtime.spawn(async move {
                    let _ = events.send(event).await;
                });
            }
        }
    }
}

async fn run_task<T: Clone + Send + Sync + 'static>(shared: &LoopShared<T>, task: Task<T>) {
    let Task { job, ticket } = task;
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
    let outcome = execute(shared, job, &ticket).await;
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
    if shared.events.send(event).await.is_err() {
        tracing::debug!("worker event receiver dropped; result discarded");
    }
}

async fn execute<T: Clone + Send + Sync + 'static>(
    shared: &LoopShared<T>,
    job: Job,
    ticket: &T,
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
        let _ = events.try_send(WorkerEvent::Progress {
            update,
            ticket: ticket.clone(),
        });
    });
    let ctx = JobContext::with_progress(job, shared.node.clone(), Some(progress));
    let run = AssertUnwindSafe(async move { handler.handle(ctx).await }).catch_unwind();
    // One timer per *running* job (at most K per node), so a stuck handler
    // cannot hold a worker loop forever.
    let mut cancelled = shared.cancel.subscribe();
    let outcome = tokio::select! {
        biased;
        _ = cancelled.wait_for(|c| *c) => {
            return Err(JobFailure::new(
                FailureCause::NodeDown,
                format!("worker on {} is shutting down", shared.node),
            ));
        }
        outcome = tokio::time::timeout(timeout, run) => outcome,
    };
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
