//! [`Coordinator`]: the network shell around [`CoordinatorCore`], an
//! actor-core actor registered as `coordinator@<node>` on a [`Router`] and
//! run under a [`Supervisor`].
//!
//! One mailbox carries everything the actor reacts to: envelopes from the
//! router (through [`ActorRef::recipient`]), calls on the [`Coordinator`]
//! handle, membership events and send failures (streams forwarded by its
//! context), and the deadline-sweep and node-table timers (owned by its
//! context). A failed instance (a handler that panics or errs) is replaced
//! by a fresh one that resumes its jobs; see `restart.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actor_core::{ActorRef, AskError, RestartPolicy, SpawnOptions, Supervisor, TrySendError};
use cluster_router::{ActorAddr, Envelope, MemberEvent, PayloadFormat, Router};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::coordinator::{CoordinatorConfig, DeadLetter};
use crate::error::{JobError, SubmitError};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::limits::{KindLimit, LIMITS, LIMIT_TAG_PREFIX};
use crate::local::LocalReply;
use crate::record::{FinishedSample, JobPage, JobQuery, Retention};
use crate::stats::StatsSnapshot;

pub(crate) mod command;
mod fanout;
#[cfg(feature = "fault-injection")]
mod fault;
mod journal;
mod link_losses;
pub(crate) mod outbox;
mod recurring;
mod restart;
mod shell;

pub use command::MAX_BATCH_JOBS;
pub use fanout::{CancelReport, Lookup, MAX_IDS};
#[cfg(feature = "fault-injection")]
pub use fault::Fault;
use outbox::SendFailure;
pub use recurring::{RecurringError, RecurringJob, MAX_RECURRING};
use restart::Handover;
use shell::{Setup, Shell, BATCH};

/// The well-known name of a node's coordinator.
pub const COORDINATOR: &str = "coordinator";

/// Settings of a [`Coordinator`].
#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    /// The core's settings; `node` is replaced by the router's node name.
    pub core: CoordinatorConfig,
    /// Period of the shared deadline sweep (timeouts and retries fire with
    /// this granularity).
    pub tick: Duration,
    /// How often the node table (status, tags, gossiped load) is refreshed
    /// from the router, besides membership events.
    pub refresh: Duration,
    /// Payload format of dispatches to worker pools (Binary by default:
    /// many jobs per envelope; Json sends one job per envelope).
    pub dispatch_format: PayloadFormat,
    /// Capacity of the coordinator's mailbox.
    pub mailbox: usize,
    /// How long local API calls wait for room in the mailbox, and for the
    /// coordinator's answer (a submission without a data directory is
    /// answered as soon as it is handled and waits without a timer).
    pub ask_timeout: Duration,
    /// With a data directory, every accepted job is journaled there before
    /// it is acknowledged, and a coordinator started on the same directory
    /// resumes every unfinished job (see `docs/jobs.md`, "Durability").
    pub data_dir: Option<PathBuf>,
    /// How often the coordinator actor may be restarted after a failure (a
    /// handler that panics) before it is stopped for good. A restarted
    /// coordinator keeps its callers, dead letters and counters and
    /// resumes its unfinished jobs (from the journal with a data
    /// directory). Default: 3 restarts within 10 s.
    pub restart: RestartPolicy,
    /// How long the records of finished jobs are kept (default 24 h).
    pub retention: Duration,
    /// How many bytes of finished records are kept, oldest evicted first
    /// (default 256 MiB). Unfinished jobs are never evicted.
    pub retention_bytes: u64,
    /// How long a cluster-wide `get` or `cancel` waits for the other
    /// coordinators (default 2 s).
    pub fanout_timeout: Duration,
}

impl CoordinatorOptions {
    pub(crate) fn retention(&self) -> Retention {
        Retention {
            age: self.retention,
            bytes: self.retention_bytes,
        }
    }
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        CoordinatorOptions {
            core: CoordinatorConfig::default(),
            tick: Duration::from_millis(20),
            refresh: Duration::from_millis(250),
            dispatch_format: PayloadFormat::Binary,
            mailbox: 16_384,
            ask_timeout: Duration::from_secs(5),
            data_dir: None,
            restart: RestartPolicy::default(),
            retention: Duration::from_secs(24 * 3600),
            retention_bytes: 256 << 20,
            fanout_timeout: Duration::from_secs(2),
        }
    }
}

type Accepted = Result<(JobId, oneshot::Receiver<JobResult>), SubmitError>;
type AcceptedMany = Result<Vec<(JobId, oneshot::Receiver<JobResult>)>, SubmitError>;

/// Capacity of a [`PendingJob`]'s progress channel; further reports are
/// dropped while it is full (the latest is still in
/// [`Coordinator::progress`]).
const PROGRESS_CAPACITY: usize = 16;

/// The coordinator actor's messages.
pub(crate) enum Msg {
    /// From the router: submissions, commands, worker replies, bounces.
    Envelope(Envelope),
    /// A call on the [`Coordinator`] handle.
    Call(Call),
    /// A membership change.
    Member(MemberUpdate),
    /// The shared deadline sweep.
    Tick,
    /// Time to reload the node table from the router.
    Refresh,
    /// A queued send failed after the actor handed it over.
    SendFailed(SendFailure),
    /// A reply of this node's worker pool, without an envelope (see
    /// `local.rs`).
    Local(LocalReply),
    /// A test fault to inject.
    #[cfg(feature = "fault-injection")]
    Fault(Fault),
}

impl From<Envelope> for Msg {
    fn from(env: Envelope) -> Msg {
        Msg::Envelope(env)
    }
}

impl From<LocalReply> for Msg {
    fn from(reply: LocalReply) -> Msg {
        Msg::Local(reply)
    }
}

/// A membership change, as the actor receives it.
pub(crate) enum MemberUpdate {
    Event(MemberEvent),
    /// Events were missed: reload the node table.
    Lagged,
}

/// The calls of the [`Coordinator`] handle, each with its reply channel.
pub(crate) enum Call {
    Submit {
        job: Job,
        progress: Option<mpsc::Sender<ProgressUpdate>>,
        reply: oneshot::Sender<Accepted>,
    },
    SubmitMany {
        jobs: Vec<Job>,
        reply: oneshot::Sender<AcceptedMany>,
    },
    Resubmit(JobId, oneshot::Sender<Accepted>),
    /// Start draining; answered once every job held is final.
    Drain(oneshot::Sender<()>),
    Attach(
        JobId,
        oneshot::Sender<Result<oneshot::Receiver<JobResult>, JobError>>,
    ),
    Stats(oneshot::Sender<StatsSnapshot>),
    DeadLetters(oneshot::Sender<Vec<DeadLetter>>),
    Progress(JobId, oneshot::Sender<Option<ProgressUpdate>>),
    /// This coordinator's records of `ids`.
    Get(Vec<JobId>, oneshot::Sender<Lookup>),
    /// Cancels `ids` among this coordinator's jobs.
    Cancel(Vec<JobId>, oneshot::Sender<CancelReport>),
    /// One page of this coordinator's records.
    Search(Box<JobQuery>, oneshot::Sender<JobPage>),
    /// The jobs finished within a window (unix ms), at most a number.
    FinishedBetween {
        after_ms: u64,
        until_ms: u64,
        limit: usize,
        reply: oneshot::Sender<Vec<FinishedSample>>,
    },
    /// Removes a dead letter.
    Discard(JobId, oneshot::Sender<bool>),
    /// A submission that re-runs a finished job under its id.
    Rerun(Job, oneshot::Sender<Accepted>),
    /// Adds or replaces a recurring job; answers its next fire time.
    AddRecurring(RecurringJob, oneshot::Sender<Result<u64, RecurringError>>),
    /// Removes a recurring job; answers whether it existed.
    RemoveRecurring(String, oneshot::Sender<Result<bool, RecurringError>>),
    /// The recurring jobs and their next fire times (unix ms).
    ListRecurring(oneshot::Sender<Vec<(RecurringJob, u64)>>),
}

/// A submitted job: its id, and its result once it is final.
#[derive(Debug)]
pub struct PendingJob {
    id: JobId,
    rx: oneshot::Receiver<JobResult>,
    progress: Option<mpsc::Receiver<ProgressUpdate>>,
}

impl PendingJob {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// Waits for the job's one and only result.
    ///
    /// # Errors
    ///
    /// [`JobError::Stopped`] if the coordinator stopped first.
    pub async fn result(self) -> Result<JobResult, JobError> {
        self.rx.await.map_err(|_| JobError::Stopped)
    }

    /// The next progress report of a job submitted with
    /// [`Coordinator::submit_with_progress`]; `None` once the job is final
    /// (or if it was submitted without progress). Reports are best effort:
    /// while the channel is full, newer ones are dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn next_progress(&mut self) -> Option<ProgressUpdate> {
        self.progress.as_mut()?.recv().await
    }
}

/// A running coordinator: accepts jobs (through this handle, or as
/// envelopes to `coordinator@<node>` from any node or external client),
/// dispatches them to `worker@<node>` pools and returns each job's result
/// exactly once.
///
/// Envelope submissions carry a [`Job`] (JSON or bincode); the answer is the
/// [`JobResult`] in the same format, as a reply to the submission. JSON
/// clients can also send `{"cmd":"stats"}`, `{"cmd":"dead_letters"}` and
/// `{"cmd":"resubmit","id":"..."}` (see `docs/jobs.md`).
///
/// The coordinator is an actor under a supervisor: if its handler panics
/// (an invariant broken in the core, a bug), the failure is logged with its
/// reason and a fresh instance takes over the same mailbox. It keeps every
/// caller waiting for a result, the dead letters and counters, and resumes
/// every unfinished job on a rebuilt core (from the journal with a data
/// directory), so pending callers get their results; only the message whose
/// handling failed is lost (a call in it fails with
/// [`AskError::NoReply`]/[`AskError::ActorGone`], results in it are
/// replaced by running those jobs again). See
/// [`CoordinatorOptions::restart`] and [`restarts`](Self::restarts).
#[derive(Clone)]
pub struct Coordinator {
    actor: ActorRef<Msg>,
    addr: ActorAddr,
    router: Router,
    resumed: Arc<Vec<JobId>>,
    ask_timeout: Duration,
    journaled: bool,
    restarts: Arc<AtomicU64>,
    fanout_timeout: Duration,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Coordinator {
    /// Starts a coordinator on `router`, registered as `coordinator@<node>`.
    ///
    /// With [`CoordinatorOptions::data_dir`], the journal there is replayed
    /// first and every unfinished job is resumed (see
    /// [`resumed`](Self::resumed) and [`attach`](Self::attach)).
    ///
    /// # Errors
    ///
    /// [`JobError::Router`] if the name is taken, [`JobError::Actor`] if an
    /// actor cannot be spawned, [`JobError::Journal`] if the data directory
    /// cannot be used.
    pub async fn start(
        router: &Router,
        options: CoordinatorOptions,
    ) -> Result<Coordinator, JobError> {
        let mut core = options.core.clone();
        core.node = router.node_id().to_string();
        let me = router.addr(COORDINATOR)?;
        let gate = journal::Gate::default();
        let journal = match &options.data_dir {
            Some(dir) => Some(
                gate.open(dir.clone(), options.retention())
                    .await
                    .map_err(JobError::Journal)?,
            ),
            None => None,
        };
        let resumed = journal
            .as_ref()
            .map(|j| j.unfinished.iter().map(|job| job.id.clone()).collect())
            .unwrap_or_default();
        let slot = Arc::new(Mutex::new(Handover {
            journal,
            retained: None,
        }));
        let registered = Arc::new(AtomicBool::new(false));
        let setup = Setup {
            core,
            router: router.clone(),
            me: me.clone(),
            options: options.clone(),
            gate,
            slot,
            registered: Arc::clone(&registered),
            fanouts: Arc::new(tokio::sync::Semaphore::new(fanout::MAX_FANOUTS)),
        };
        let restarts = Arc::new(AtomicU64::new(0));
        let actor = spawn_supervised(setup, &options, &restarts)?;
        // External clients submit jobs and commands to the coordinator;
        // the limits protocol is for nodes only (clients cannot address it).
        let registered_names = router
            .register_client_facing(COORDINATOR, actor.recipient::<Envelope>())
            .and_then(|_| router.register(LIMITS, actor.recipient::<Envelope>()));
        if let Err(err) = registered_names {
            router.unregister(COORDINATOR);
            actor.stop();
            actor.wait_stopped().await;
            return Err(err.into());
        }
        advertise_limits(router, &options.core.limits.kinds);
        // Replies to what the coordinator sends can reach it now: resume
        // the journal's jobs (at once, else on the next tick).
        registered.store(true, Ordering::Release);
        let _ = actor.try_tell(Msg::Refresh);
        Ok(Coordinator {
            actor,
            addr: me,
            router: router.clone(),
            resumed: Arc::new(resumed),
            ask_timeout: options.ask_timeout,
            journaled: options.data_dir.is_some(),
            restarts,
            fanout_timeout: options.fanout_timeout,
        })
    }

    /// The coordinator's address, `coordinator@<node>`.
    pub fn addr(&self) -> &ActorAddr {
        &self.addr
    }

    /// How often the coordinator actor was restarted after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Makes the coordinator actor fail on purpose, to test supervision
    /// (cargo feature `fault-injection`, off by default).
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator's mailbox stays full or it has
    /// stopped.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_fault(&self, fault: Fault) -> Result<(), JobError> {
        match tokio::time::timeout(self.ask_timeout, self.actor.tell(Msg::Fault(fault))).await {
            Err(_) => Err(JobError::Ask(AskError::Full)),
            Ok(Err(_)) => Err(JobError::Ask(AskError::ActorGone)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Sends a request to the coordinator actor and waits for its answer,
    /// each step bounded by the ask timeout.
    async fn ask<R>(&self, msg: impl FnOnce(oneshot::Sender<R>) -> Call) -> Result<R, JobError> {
        let rx = self.post(msg).await?;
        match tokio::time::timeout(self.ask_timeout, rx).await {
            Err(_) => Err(JobError::Ask(AskError::Timeout)),
            Ok(Err(_)) => Err(JobError::Ask(AskError::ActorGone)),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Puts a request in the mailbox: at once when there is room (no timer
    /// on this path), else waiting up to the ask timeout.
    async fn post<R>(
        &self,
        call: impl FnOnce(oneshot::Sender<R>) -> Call,
    ) -> Result<oneshot::Receiver<R>, JobError> {
        let (reply, rx) = oneshot::channel();
        let msg = match self.actor.try_tell(Msg::Call(call(reply))) {
            Ok(()) => return Ok(rx),
            Err(TrySendError::Closed(_)) => return Err(JobError::Ask(AskError::ActorGone)),
            Err(TrySendError::Full(msg)) => msg,
        };
        match tokio::time::timeout(self.ask_timeout, self.actor.tell(msg)).await {
            Err(_) => Err(JobError::Ask(AskError::Full)),
            Ok(Err(_)) => Err(JobError::Ask(AskError::ActorGone)),
            Ok(Ok(())) => Ok(rx),
        }
    }

    /// Submits a job; the returned [`PendingJob`] yields its result. With a
    /// data directory, this returns once the job is journaled.
    ///
    /// # Errors
    ///
    /// [`JobError::Submit`] if the job is refused (invalid, duplicate id,
    /// at capacity), [`JobError::Ask`] if the coordinator does not answer.
    pub async fn submit(&self, job: Job) -> Result<PendingJob, JobError> {
        self.submit_inner(job, None).await
    }

    /// Like [`submit`](Self::submit), and forwards the job's progress
    /// reports to [`PendingJob::next_progress`].
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub async fn submit_with_progress(&self, job: Job) -> Result<PendingJob, JobError> {
        let (tx, rx) = mpsc::channel(PROGRESS_CAPACITY);
        let mut pending = self.submit_inner(job, Some(tx)).await?;
        pending.progress = Some(rx);
        Ok(pending)
    }

    async fn submit_inner(
        &self,
        job: Job,
        progress: Option<mpsc::Sender<ProgressUpdate>>,
    ) -> Result<PendingJob, JobError> {
        let make = |reply| Call::Submit {
            job,
            progress,
            reply,
        };
        let accepted = if self.journaled {
            self.ask(make).await?
        } else {
            // Without a journal the coordinator answers a submission as soon
            // as it handles it: no per-job timer, just the answer (or the
            // coordinator's end).
            let rx = self.post(make).await?;
            rx.await.map_err(|_| JobError::Ask(AskError::ActorGone))?
        };
        let (id, rx) = accepted?;
        Ok(PendingJob {
            id,
            rx,
            progress: None,
        })
    }

    /// Submits a batch of jobs in one trip through the coordinator's
    /// mailbox, all or none: every job is checked before any is accepted.
    /// With a data directory the batch is journaled as one group (one
    /// fsync) before this returns. The [`PendingJob`]s are in batch order.
    ///
    /// # Errors
    ///
    /// [`JobError::Submit`] with [`SubmitError::InBatch`] naming the first
    /// refused job (invalid, duplicate id), [`SubmitError::AtCapacity`] if
    /// the whole batch does not fit, [`SubmitError::Draining`];
    /// [`JobError::Ask`] if the coordinator does not answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(coordinator: job_queue::Coordinator) -> Result<(), job_queue::JobError> {
    /// use job_queue::Job;
    /// let jobs = (0..1000).map(|i| Job::new("square", i.to_string())).collect();
    /// for pending in coordinator.submit_many(jobs).await? {
    ///     println!("{:?}", pending.result().await?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn submit_many(&self, jobs: Vec<Job>) -> Result<Vec<PendingJob>, JobError> {
        let make = |reply| Call::SubmitMany { jobs, reply };
        let accepted = if self.journaled {
            self.ask(make).await?
        } else {
            let rx = self.post(make).await?;
            rx.await.map_err(|_| JobError::Ask(AskError::ActorGone))?
        };
        Ok(accepted?
            .into_iter()
            .map(|(id, rx)| PendingJob {
                id,
                rx,
                progress: None,
            })
            .collect())
    }

    /// Drains the coordinator: from now on it refuses new submissions
    /// (library calls get [`SubmitError::Draining`]; envelope submissions
    /// and `resubmit` commands get an `Error` reply "coordinator on node X
    /// is draining"), while the jobs it holds (running, queued, waiting to
    /// retry, resumed from the journal) go on to their results. Returns
    /// once every one of them is final; the coordinator then still answers
    /// queries until [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator's mailbox stays full or the
    /// coordinator stops first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: draining goes on; call again to wait for it.
    pub async fn drain(&self) -> Result<(), JobError> {
        let rx = self.post(Call::Drain).await?;
        rx.await.map_err(|_| JobError::Ask(AskError::ActorGone))
    }

    /// Submits a job and waits for its result.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit) and [`PendingJob::result`].
    pub async fn run(&self, job: Job) -> Result<JobResult, JobError> {
        self.submit(job).await?.result().await
    }

    /// Resubmits a dead-lettered job with fresh attempts.
    ///
    /// # Errors
    ///
    /// [`SubmitError::NotDeadLettered`] and the errors of
    /// [`submit`](Self::submit).
    pub async fn resubmit(&self, id: JobId) -> Result<PendingJob, JobError> {
        let accepted = self.ask(|reply| Call::Resubmit(id, reply)).await?;
        let (id, rx) = accepted?;
        Ok(PendingJob {
            id,
            rx,
            progress: None,
        })
    }

    /// The jobs this coordinator resumed from its journal at start, in
    /// submission order (empty without a data directory).
    pub fn resumed(&self) -> &[JobId] {
        &self.resumed
    }

    /// Waits for the result of a job this coordinator owns: one resumed
    /// from the journal (see [`resumed`](Self::resumed); its result is kept
    /// once final, the newest 10,000), or any job it has a record of
    /// (unfinished, or finished within retention: answered at once).
    ///
    /// # Errors
    ///
    /// [`JobError::UnknownJob`] if `id` is not known here (or its record
    /// was evicted), [`JobError::Ask`] if the coordinator does not answer.
    pub async fn attach(&self, id: JobId) -> Result<PendingJob, JobError> {
        let rx = self.ask(|reply| Call::Attach(id.clone(), reply)).await??;
        Ok(PendingJob {
            id,
            rx,
            progress: None,
        })
    }

    /// Per-node and overall statistics.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn stats(&self) -> Result<StatsSnapshot, JobError> {
        self.ask(Call::Stats).await
    }

    /// The dead-letter list, oldest first.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, JobError> {
        self.ask(Call::DeadLetters).await
    }

    /// The latest progress report of a job in progress.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn progress(&self, id: JobId) -> Result<Option<ProgressUpdate>, JobError> {
        self.ask(|reply| Call::Progress(id, reply)).await
    }

    /// The records of `ids`, cluster-wide: this coordinator's first, then
    /// (for ids it does not know) every other Up coordinator's, asked at
    /// once and waited for up to [`CoordinatorOptions::fanout_timeout`].
    ///
    /// # Errors
    ///
    /// [`JobError::TooManyIds`] above [`MAX_IDS`] ids, [`JobError::Ask`] if
    /// the coordinator does not answer.
    pub async fn get(&self, ids: Vec<JobId>) -> Result<Lookup, JobError> {
        check_ids(&ids)?;
        let mut local = self.ask(|reply| Call::Get(ids, reply)).await?;
        if !local.unknown.is_empty() {
            let remote = fanout::get(&self.router, &local.unknown, self.fanout_timeout).await;
            local.merge(remote);
        }
        Ok(local)
    }

    /// One page of this coordinator's job records matching `query`,
    /// newest submission first (see [`JobQuery`] for the bounds). Only the
    /// jobs this coordinator owns; find another's with [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn search(&self, query: JobQuery) -> Result<JobPage, JobError> {
        self.ask(|reply| Call::Search(Box::new(query), reply)).await
    }

    /// The jobs this coordinator owns that finished after `after_ms` and
    /// at or before `until_ms` (unix ms), newest first, at most `limit`
    /// (itself at most [`MAX_SAMPLES`](crate::MAX_SAMPLES)): what live
    /// throughput and latency charts are drawn from. A window that ended
    /// before the call was made is complete: every job that finished in it
    /// is already recorded.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn finished_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<FinishedSample>, JobError> {
        self.ask(|reply| Call::FinishedBetween {
            after_ms,
            until_ms,
            limit,
            reply,
        })
        .await
    }

    /// Cancels `ids`, cluster-wide (as [`get`](Self::get) finds them): a
    /// queued job never starts, a running one's handler is told to stop;
    /// each ends with a [`FailureCause::Cancelled`](crate::FailureCause::Cancelled)
    /// result, delivered to its waiters once. Journaled with a data
    /// directory.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn cancel(&self, ids: Vec<JobId>) -> Result<CancelReport, JobError> {
        check_ids(&ids)?;
        let mut local = self.ask(|reply| Call::Cancel(ids, reply)).await?;
        if !local.unknown.is_empty() {
            let remote = fanout::cancel(&self.router, &local.unknown, self.fanout_timeout).await;
            local.merge(remote);
        }
        Ok(local)
    }

    /// Removes a dead letter without running it; returns whether there was
    /// one.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn discard(&self, id: JobId) -> Result<bool, JobError> {
        self.ask(|reply| Call::Discard(id, reply)).await
    }

    /// Adds (or replaces, by name) a recurring job: each time its cron
    /// expression fires (seconds resolution, UTC), a job built from the
    /// template is submitted with the id `<name>-<fire unix ms>`. Durable
    /// with a data directory. Returns the first fire time (unix ms).
    ///
    /// # Errors
    ///
    /// [`JobError::Recurring`] for a bad name, expression or template, too
    /// many recurring jobs, or a journal that cannot be written (the answer
    /// waits for the journal's fsync); [`JobError::Ask`] if the coordinator
    /// does not answer.
    pub async fn add_recurring(&self, spec: RecurringJob) -> Result<u64, JobError> {
        Ok(self.ask(|reply| Call::AddRecurring(spec, reply)).await??)
    }

    /// Removes a recurring job; whether it existed. Jobs it already fired
    /// go on.
    ///
    /// # Errors
    ///
    /// [`JobError::Recurring`] if the removal cannot be journaled (the
    /// answer waits for the journal's fsync); [`JobError::Ask`] if the
    /// coordinator does not answer.
    pub async fn remove_recurring(&self, name: &str) -> Result<bool, JobError> {
        let name = name.to_owned();
        Ok(self
            .ask(|reply| Call::RemoveRecurring(name, reply))
            .await??)
    }

    /// The recurring jobs, by name, each with its next fire time (unix ms).
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn recurring(&self) -> Result<Vec<(RecurringJob, u64)>, JobError> {
        self.ask(Call::ListRecurring).await
    }

    /// Runs a job again under an id whose earlier run is final (its record
    /// is replaced; a dead letter of it is removed). A job not known yet is
    /// simply submitted.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Duplicate`] if the id is still in progress, and the
    /// errors of [`submit`](Self::submit).
    pub async fn rerun(&self, job: Job) -> Result<PendingJob, JobError> {
        let (id, rx) = self.ask(|reply| Call::Rerun(job, reply)).await??;
        Ok(PendingJob {
            id,
            rx,
            progress: None,
        })
    }

    /// Unregisters and stops the coordinator; jobs in progress are
    /// abandoned (their [`PendingJob::result`] fails with
    /// [`JobError::Stopped`]). With a data directory, the journal is
    /// flushed and closed before this returns, and a coordinator started
    /// later on the same directory resumes the unfinished jobs.
    pub async fn shutdown(&self) {
        self.router.unregister(COORDINATOR);
        self.router.unregister(LIMITS);
        self.actor.stop();
        self.actor.wait_stopped().await;
    }
}

/// Replaces this node's `limit:*` tags with those of `limits` (keeping the
/// others), so that every coordinator sees them.
fn advertise_limits(router: &Router, limits: &[KindLimit]) {
    let current = router
        .member(router.node_id())
        .map(|m| m.tags)
        .unwrap_or_default();
    let had_limits = current.iter().any(|t| t.starts_with(LIMIT_TAG_PREFIX));
    if limits.is_empty() && !had_limits {
        return;
    }
    let mut tags: Vec<String> = current
        .into_iter()
        .filter(|t| !t.starts_with(LIMIT_TAG_PREFIX))
        .collect();
    tags.extend(limits.iter().map(KindLimit::tag));
    router.set_tags(tags);
}

fn check_ids(ids: &[JobId]) -> Result<(), JobError> {
    if ids.len() > MAX_IDS {
        return Err(JobError::TooManyIds {
            got: ids.len(),
            max: MAX_IDS,
        });
    }
    Ok(())
}

/// This coordinator's incarnation: the start time in microseconds, so a
/// restarted coordinator's is higher (see `docs/jobs.md`, "Fencing").
pub(super) fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Spawns the coordinator actor under its own supervisor. The factory
/// builds each instance from `setup` (and what the previous one left in
/// the handover slot) and counts the restarts.
fn spawn_supervised(
    setup: Setup,
    options: &CoordinatorOptions,
    restarts: &Arc<AtomicU64>,
) -> Result<ActorRef<Msg>, JobError> {
    // The supervisor logs each failure with its cause (and a restart budget
    // running out); its event stream is not needed here.
    let (supervisor, _events) = Supervisor::new(options.restart);
    let name = setup.me.to_string();
    let counter = Arc::clone(restarts);
    let mut built = 0u64;
    let factory = move || {
        if built > 0 {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        built += 1;
        Shell::new(&setup)
    };
    let opts = SpawnOptions::default()
        .capacity(options.mailbox.max(16))
        .batch(BATCH);
    Ok(supervisor.spawn_child(name, factory, opts)?)
}
