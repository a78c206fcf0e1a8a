//! [`Coordinator`]: the network shell around [`CoordinatorCore`], registered
//! as `coordinator@<node>` on a [`Router`].

use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, ActorRef, BoxError, Context, ReplyTo, SpawnOptions};
use async_trait::async_trait;
use cluster_router::{ActorAddr, Envelope, MemberEvent, PayloadFormat, Router};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::coordinator::{CoordinatorConfig, CoordinatorCore, DeadLetter};
use crate::error::{JobError, SubmitError};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::stats::StatsSnapshot;

mod actor;
mod command;

use actor::CoordinatorActor;

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
    /// Payload format of dispatches to worker pools (Binary by default).
    pub dispatch_format: PayloadFormat,
    /// Capacity of the coordinator's mailbox.
    pub mailbox: usize,
    /// How long local API calls wait for the coordinator to answer.
    pub ask_timeout: Duration,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        CoordinatorOptions {
            core: CoordinatorConfig::default(),
            tick: Duration::from_millis(20),
            refresh: Duration::from_millis(250),
            dispatch_format: PayloadFormat::Binary,
            mailbox: 4096,
            ask_timeout: Duration::from_secs(5),
        }
    }
}

type Accepted = Result<(JobId, oneshot::Receiver<JobResult>), SubmitError>;

/// Messages of the coordinator actor.
pub(crate) enum Msg {
    Envelope(Envelope),
    Member(MemberEvent),
    Tick,
    Submit(Job, ReplyTo<Accepted>),
    Resubmit(JobId, ReplyTo<Accepted>),
    Stats(ReplyTo<StatsSnapshot>),
    DeadLetters(ReplyTo<Vec<DeadLetter>>),
    Progress(JobId, ReplyTo<Option<ProgressUpdate>>),
}

/// A submitted job: its id, and its result once it is final.
#[derive(Debug)]
pub struct PendingJob {
    id: JobId,
    rx: oneshot::Receiver<JobResult>,
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
    actor: ActorRef<Msg>,
    inbox: ActorRef<Envelope>,
    addr: ActorAddr,
    router: Router,
    tasks: Arc<Vec<JoinHandle<()>>>,
    ask_timeout: Duration,
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
    /// # Errors
    ///
    /// [`JobError::Router`] if the name is taken, [`JobError::Actor`] if an
    /// actor cannot be spawned.
    pub async fn start(
        router: &Router,
        options: CoordinatorOptions,
    ) -> Result<Coordinator, JobError> {
        let mut core_config = options.core.clone();
        core_config.node = router.node_id().to_string();
        let me = router.addr(COORDINATOR)?;
        let state = CoordinatorActor::new(
            CoordinatorCore::new(core_config),
            router.clone(),
            me.clone(),
            &options,
        );
        let opts = SpawnOptions::default().capacity(options.mailbox.max(16));
        let actor = spawn_with(
            format!("{COORDINATOR}-core@{}", router.node_id()),
            state,
            opts,
        )?;
        let inbox_opts = SpawnOptions::default().capacity(options.mailbox.max(16));
        let inbox = spawn_with(me.to_string(), Inbox(actor.clone()), inbox_opts)?;
        if let Err(err) = router.register(COORDINATOR, inbox.clone()) {
            inbox.stop();
            actor.stop();
            return Err(err.into());
        }
        let tasks = vec![
            tokio::spawn(tick_loop(actor.clone(), options.tick)),
            tokio::spawn(member_loop(actor.clone(), router.subscribe())),
        ];
        Ok(Coordinator {
            actor,
            inbox,
            addr: me,
            router: router.clone(),
            tasks: Arc::new(tasks),
            ask_timeout: options.ask_timeout,
        })
    }

    /// The coordinator's address, `coordinator@<node>`.
    pub fn addr(&self) -> &ActorAddr {
        &self.addr
    }

    /// Submits a job; the returned [`PendingJob`] yields its result.
    ///
    /// # Errors
    ///
    /// [`JobError::Submit`] if the job is refused (invalid, duplicate id,
    /// at capacity), [`JobError::Ask`] if the coordinator does not answer.
    pub async fn submit(&self, job: Job) -> Result<PendingJob, JobError> {
        let accepted = self
            .actor
            .ask(|reply| Msg::Submit(job, reply), self.ask_timeout)
            .await?;
        let (id, rx) = accepted?;
        Ok(PendingJob { id, rx })
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
        let accepted = self
            .actor
            .ask(|reply| Msg::Resubmit(id, reply), self.ask_timeout)
            .await?;
        let (id, rx) = accepted?;
        Ok(PendingJob { id, rx })
    }

    /// Per-node and overall statistics.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn stats(&self) -> Result<StatsSnapshot, JobError> {
        Ok(self.actor.ask(Msg::Stats, self.ask_timeout).await?)
    }

    /// The dead-letter list, oldest first.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, JobError> {
        Ok(self.actor.ask(Msg::DeadLetters, self.ask_timeout).await?)
    }

    /// The latest progress report of a job in progress.
    ///
    /// # Errors
    ///
    /// [`JobError::Ask`] if the coordinator does not answer.
    pub async fn progress(&self, id: JobId) -> Result<Option<ProgressUpdate>, JobError> {
        Ok(self
            .actor
            .ask(|reply| Msg::Progress(id, reply), self.ask_timeout)
            .await?)
    }

    /// Unregisters and stops the coordinator; jobs in progress are
    /// abandoned (their [`PendingJob::result`] fails with
    /// [`JobError::Stopped`]).
    pub async fn shutdown(&self) {
        self.router.unregister(COORDINATOR);
        for task in self.tasks.iter() {
            task.abort();
        }
        self.inbox.stop();
        self.actor.stop();
        self.actor.wait_stopped().await;
    }
}

/// The router-facing mailbox: forwards envelopes to the coordinator actor.
struct Inbox(ActorRef<Msg>);

#[async_trait]
impl Actor for Inbox {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if self.0.tell(Msg::Envelope(env)).await.is_err() {
            ctx.stop();
        }
        Ok(())
    }
}

/// The shared deadline sweep: one timer for the whole coordinator.
async fn tick_loop(actor: ActorRef<Msg>, period: Duration) {
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match actor.try_tell(Msg::Tick) {
            Ok(()) | Err(actor_core::TrySendError::Full(_)) => {}
            Err(_) => return,
        }
    }
}

async fn member_loop(actor: ActorRef<Msg>, mut events: broadcast::Receiver<MemberEvent>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if actor.tell(Msg::Member(event)).await.is_err() {
                    return;
                }
            }
            // Missed events are covered by the periodic refresh.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
