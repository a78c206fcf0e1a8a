//! [`Coordinator`]: the network shell around [`CoordinatorCore`], registered
//! as `coordinator@<node>` on a [`Router`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, ActorRef, AskError, BoxError, Context, SpawnOptions};
use async_trait::async_trait;
use cluster_router::{ActorAddr, Envelope, MemberEvent, PayloadFormat, Router};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::coordinator::{CoordinatorConfig, CoordinatorCore, DeadLetter};
use crate::error::{JobError, SubmitError};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::stats::StatsSnapshot;

mod command;
mod journal;
mod outbox;
mod shell;

use shell::Shell;

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
        }
    }
}

type Accepted = Result<(JobId, oneshot::Receiver<JobResult>), SubmitError>;
type AcceptedMany = Result<Vec<(JobId, oneshot::Receiver<JobResult>)>, SubmitError>;

/// Capacity of a [`PendingJob`]'s progress channel; further reports are
/// dropped while it is full (the latest is still in
/// [`Coordinator::progress`]).
const PROGRESS_CAPACITY: usize = 16;

/// Messages of the coordinator task.
pub(crate) enum Msg {
    Envelope(Envelope),
    Member(MemberEvent),
    Tick,
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
    Stop,
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
#[derive(Clone)]
pub struct Coordinator {
    tx: mpsc::Sender<Msg>,
    inbox: ActorRef<Envelope>,
    addr: ActorAddr,
    router: Router,
    tasks: Arc<Vec<JoinHandle<()>>>,
    main: Arc<Mutex<Option<JoinHandle<()>>>>,
    resumed: Arc<Vec<JobId>>,
    ask_timeout: Duration,
    journaled: bool,
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
        let mut core_config = options.core.clone();
        core_config.node = router.node_id().to_string();
        let me = router.addr(COORDINATOR)?;
        let core = CoordinatorCore::new(core_config).with_dispatch_by_id();
        let journal = match &options.data_dir {
            Some(dir) => {
                let dir = dir.clone();
                let opened = tokio::task::spawn_blocking(move || journal::Journal::open(&dir))
                    .await
                    .map_err(|_| JobError::Stopped)?;
                Some(opened.map_err(JobError::Journal)?)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(options.mailbox.max(16));
        let (mut shell, resumed) = Shell::new(core, router.clone(), me.clone(), &options, journal);
        let inbox_opts = SpawnOptions::default().capacity(options.mailbox.max(16));
        let inbox = spawn_with(me.to_string(), Inbox(tx.clone()), inbox_opts)?;
        // External clients submit jobs and commands to the coordinator.
        if let Err(err) = router.register_client_facing(COORDINATOR, inbox.clone()) {
            inbox.stop();
            shell.close().await;
            return Err(err.into());
        }
        let main = tokio::spawn(shell.run(rx));
        let tasks = vec![
            tokio::spawn(tick_loop(tx.clone(), options.tick)),
            tokio::spawn(member_loop(tx.clone(), router.subscribe())),
        ];
        Ok(Coordinator {
            tx,
            inbox,
            addr: me,
            router: router.clone(),
            tasks: Arc::new(tasks),
            main: Arc::new(Mutex::new(Some(main))),
            resumed: Arc::new(resumed),
            ask_timeout: options.ask_timeout,
            journaled: options.data_dir.is_some(),
        })
    }

    /// The coordinator's address, `coordinator@<node>`.
    pub fn addr(&self) -> &ActorAddr {
        &self.addr
    }

    /// Sends a request to the coordinator task and waits for its answer,
    /// each step bounded by the ask timeout.
    async fn ask<R>(&self, msg: impl FnOnce(oneshot::Sender<R>) -> Msg) -> Result<R, JobError> {
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
        msg: impl FnOnce(oneshot::Sender<R>) -> Msg,
    ) -> Result<oneshot::Receiver<R>, JobError> {
        let (reply, rx) = oneshot::channel();
        let msg = match self.tx.try_send(msg(reply)) {
            Ok(()) => return Ok(rx),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(JobError::Ask(AskError::ActorGone))
            }
            Err(mpsc::error::TrySendError::Full(msg)) => msg,
        };
        match tokio::time::timeout(self.ask_timeout, self.tx.send(msg)).await {
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
        let make = |reply| Msg::Submit {
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
        let make = |reply| Msg::SubmitMany { jobs, reply };
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
        let rx = self.post(Msg::Drain).await?;
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
        let accepted = self.ask(|reply| Msg::Resubmit(id, reply)).await?;
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

    /// Waits for the result of a job resumed from the journal (see
    /// [`resumed`](Self::resumed)). Its result is kept once final (the
    /// newest 10,000), so this works before and after it finishes.
    ///
    /// # Errors
    ///
    /// [`JobError::UnknownJob`] if `id` is no resumed job (or its result
    /// was already handed out or evicted), [`JobError::Ask`] if the
    /// coordinator does not answer.
    pub async fn attach(&self, id: JobId) -> Result<PendingJob, JobError> {
        let rx = self.ask(|reply| Msg::Attach(id.clone(), reply)).await??;
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
        self.ask(Msg::Stats).await
    }

    /// The dead-letter list, oldest first.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, JobError> {
        self.ask(Msg::DeadLetters).await
    }

    /// The latest progress report of a job in progress.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn progress(&self, id: JobId) -> Result<Option<ProgressUpdate>, JobError> {
        self.ask(|reply| Msg::Progress(id, reply)).await
    }

    /// Unregisters and stops the coordinator; jobs in progress are
    /// abandoned (their [`PendingJob::result`] fails with
    /// [`JobError::Stopped`]). With a data directory, the journal is
    /// flushed and closed before this returns, and a coordinator started
    /// later on the same directory resumes the unfinished jobs.
    pub async fn shutdown(&self) {
        self.router.unregister(COORDINATOR);
        for task in self.tasks.iter() {
            task.abort();
        }
        self.inbox.stop();
        let main = self.main.lock().take();
        if let Some(main) = main {
            // The task may already have ended; a full mailbox just delays
            // the stop until it is drained.
            let _ = self.tx.send(Msg::Stop).await;
            let _ = main.await;
        }
    }
}

/// The router-facing mailbox: forwards envelopes to the coordinator task.
struct Inbox(mpsc::Sender<Msg>);

#[async_trait]
impl Actor for Inbox {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if self.0.send(Msg::Envelope(env)).await.is_err() {
            ctx.stop();
        }
        Ok(())
    }
}

/// The shared deadline sweep: one timer for the whole coordinator.
async fn tick_loop(actor: mpsc::Sender<Msg>, period: Duration) {
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match actor.try_send(Msg::Tick) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(_) => return,
        }
    }
}

async fn member_loop(actor: mpsc::Sender<Msg>, mut events: broadcast::Receiver<MemberEvent>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if actor.send(Msg::Member(event)).await.is_err() {
                    return;
                }
            }
            // Missed events are covered by the periodic refresh.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
