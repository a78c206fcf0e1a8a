//! The coordinator task: drives [`CoordinatorCore`] from envelopes,
//! membership events, ticks and local calls, and carries out its actions.
//!
//! The hot path is batched and never waits on the network: the mailbox is
//! drained in runs of up to [`BATCH`] messages; after each run the core's
//! actions are carried out at once, dispatches grouped into one envelope per
//! node (up to [`MAX_JOBS_PER_ENVELOPE`] jobs) and handed to the
//! [`Outbox`], which only queues (in a per-node lane drained by its own
//! task) when a link is full.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, Member, MemberEvent, MemberStatus, MessageId,
    NodeId, PayloadFormat, Router,
};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};

use super::command::{self, Command};
use super::journal::{Ack, Batch, Journal, Record};
use super::outbox::{Outbox, SendFailure};
use super::{Accepted, AcceptedMany, CoordinatorOptions, Msg};
use crate::coordinator::{Action, CoordinatorCore, NodeInfo, NodeLoad, NodeStatus};
use crate::error::{JobError, SubmitError};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::pool::WORKER;
use crate::protocol::WorkerReply;
use crate::protocol::{decode_job, decode_reply, encode_job, encode_job_batch, encode_reply};

/// Most mailbox messages handled between two flushes.
const BATCH: usize = 512;
/// Most jobs per dispatch envelope.
const MAX_JOBS_PER_ENVELOPE: usize = 1024;
/// Most job bytes (approximate) per dispatch envelope.
const MAX_BYTES_PER_ENVELOPE: usize = 1 << 20;
/// Results of resumed jobs kept for [`Coordinator::attach`](super::Coordinator::attach).
const MAX_FINISHED: usize = 10_000;
/// How long resumed jobs wait for an eligible node before they are
/// submitted anyway (and fail with `no_eligible_node` if there is none).
const RESUME_GRACE: Duration = Duration::from_secs(10);

/// Who waits for a job's result.
enum Waiter {
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
    /// A job resumed from the journal: its result is kept in `finished`.
    Resumed,
}

/// Results of resumed jobs nobody attached to yet, newest kept.
#[derive(Default)]
struct Finished {
    order: VecDeque<JobId>,
    results: FxHashMap<JobId, JobResult>,
}

impl Finished {
    fn insert(&mut self, result: JobResult) {
        if self.order.len() >= MAX_FINISHED {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
        self.order.push_back(result.id.clone());
        self.results.insert(result.id.clone(), result);
    }

    fn take(&mut self, id: &JobId) -> Option<JobResult> {
        let result = self.results.remove(id)?;
        self.order.retain(|i| i != id);
        Some(result)
    }
}

pub(super) struct Shell {
    core: CoordinatorCore,
    router: Router,
    me: ActorAddr,
    worker: ActorName,
    format: PayloadFormat,
    waiters: FxHashMap<JobId, Waiter>,
    /// Dispatch envelopes whose jobs may still bounce: id -> where it went
    /// and its (job, attempt)s.
    batches: FxHashMap<MessageId, (ActorAddr, Vec<(JobId, u32)>)>,
    progress: FxHashMap<JobId, ProgressUpdate>,
    outbox: Outbox,
    failed: Option<mpsc::UnboundedReceiver<SendFailure>>,
    journal: Option<Journal>,
    journal_batch: Batch,
    deferred: Vec<Job>,
    resume_until: Instant,
    finished: Finished,
    per_node: FxHashMap<Arc<str>, Vec<(JobId, u32)>>,
    refresh: Duration,
    last_refresh: Option<Instant>,
    /// Callers of `drain` waiting for the last held job to finish.
    drained: Vec<oneshot::Sender<()>>,
}

impl Shell {
    /// The task's state; returns the ids of the jobs resumed from the
    /// journal.
    pub(super) fn new(
        mut core: CoordinatorCore,
        router: Router,
        me: ActorAddr,
        options: &CoordinatorOptions,
        mut journal: Option<Journal>,
    ) -> (Shell, Vec<JobId>) {
        let (outbox, failed) = Outbox::new(router.clone());
        let deferred = journal
            .as_mut()
            .map(|j| std::mem::take(&mut j.unfinished))
            .unwrap_or_default();
        let prefix = format!("{}-", router.node_id());
        let mut floor = journal.as_ref().map_or(0, |j| j.id_floor);
        for job in &deferred {
            let counter = job
                .id
                .as_str()
                .strip_prefix(&prefix)
                .and_then(|n| n.parse().ok());
            floor = floor.max(counter.unwrap_or(0));
        }
        core.skip_generated_ids(floor);
        let resumed: Vec<JobId> = deferred.iter().map(|j| j.id.clone()).collect();
        let waiters = resumed
            .iter()
            .map(|id| (id.clone(), Waiter::Resumed))
            .collect();
        let shell = Shell {
            core,
            router,
            me,
            worker: ActorName::new(WORKER).expect("a valid actor name"),
            format: options.dispatch_format,
            waiters,
            batches: FxHashMap::default(),
            progress: FxHashMap::default(),
            outbox,
            failed: Some(failed),
            journal,
            journal_batch: Batch::default(),
            deferred,
            resume_until: Instant::now() + RESUME_GRACE,
            finished: Finished::default(),
            per_node: FxHashMap::default(),
            refresh: options.refresh,
            last_refresh: None,
            drained: Vec::new(),
        };
        (shell, resumed)
    }

    /// Runs until [`Msg::Stop`] or until every sender is gone.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let Some(mut failed) = self.failed.take() else {
            return;
        };
        let now = Instant::now();
        self.refresh_nodes(now);
        self.resume_deferred(now);
        self.flush(now);
        let mut buf = Vec::with_capacity(BATCH);
        let mut stop = false;
        while !stop {
            tokio::select! {
                biased;
                Some(failure) = failed.recv() => self.on_send_failed(failure, Instant::now()),
                n = rx.recv_many(&mut buf, BATCH) => {
                    stop = n == 0;
                    if !stop && self.core.in_progress() > 0 {
                        // Under load, give senders a moment so that one flush
                        // carries many dispatches (one envelope per node).
                        tokio::task::yield_now().await;
                        while buf.len() < BATCH {
                            match rx.try_recv() {
                                Ok(msg) => buf.push(msg),
                                Err(_) => break,
                            }
                        }
                    }
                    let now = Instant::now();
                    for msg in buf.drain(..) {
                        if matches!(msg, Msg::Stop) {
                            stop = true;
                            break;
                        }
                        self.handle(msg, now);
                    }
                }
            }
            self.flush(Instant::now());
        }
        self.close().await;
    }

    /// Flushes and closes the journal.
    pub(super) async fn close(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.close().await;
        }
    }

    fn handle(&mut self, msg: Msg, now: Instant) {
        match msg {
            Msg::Envelope(env) => self.on_envelope(env, now),
            Msg::Member(event) => self.on_member(event, now),
            Msg::Tick => self.on_tick(now),
            Msg::Submit {
                job,
                progress,
                reply,
            } => match self.submit_fresh(job, now) {
                Ok(id) => self.accepted(id, progress, reply),
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Msg::SubmitMany { jobs, reply } => match self.submit_batch_fresh(jobs, now) {
                Ok(ids) => self.accepted_many(ids, reply),
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Msg::Drain(reply) => {
                if !self.core.is_draining() {
                    tracing::info!(coordinator = %self.me, held = self.core.in_progress(), "draining");
                }
                self.core.set_draining(true);
                self.drained.push(reply);
            }
            Msg::Resubmit(id, reply) => match self.core.resubmit_dead_letter(&id, now) {
                Ok(id) => self.accepted(id, None, reply),
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Msg::Attach(id, reply) => {
                let _ = reply.send(self.attach(id));
            }
            Msg::Stats(reply) => {
                let _ = reply.send(self.core.stats());
            }
            Msg::DeadLetters(reply) => {
                let _ = reply.send(self.core.dead_letters().into_iter().cloned().collect());
            }
            Msg::Progress(id, reply) => {
                let _ = reply.send(self.progress.get(&id).cloned());
            }
            Msg::Stop => {}
        }
    }

    /// Registers a local waiter and acknowledges, through the journal when
    /// there is one (the acknowledgement then waits for the fsync).
    fn accepted(
        &mut self,
        id: JobId,
        progress: Option<mpsc::Sender<ProgressUpdate>>,
        reply: oneshot::Sender<Accepted>,
    ) {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .insert(id.clone(), Waiter::Local { tx, progress });
        self.journal_submit(&id);
        let accepted = Ok((id, rx));
        if self.journal.is_some() {
            self.journal_batch.acks.push(Ack::One(reply, accepted));
        } else {
            let _ = reply.send(accepted);
        }
    }

    /// Like [`accepted`](Self::accepted) for a batch, acknowledged once.
    fn accepted_many(&mut self, ids: Vec<JobId>, reply: oneshot::Sender<AcceptedMany>) {
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            let (tx, rx) = oneshot::channel();
            self.waiters
                .insert(id.clone(), Waiter::Local { tx, progress: None });
            self.journal_submit(&id);
            pending.push((id, rx));
        }
        if self.journal.is_some() {
            self.journal_batch.acks.push(Ack::Many(reply, Ok(pending)));
        } else {
            let _ = reply.send(Ok(pending));
        }
    }

    fn journal_submit(&mut self, id: &JobId) {
        if self.journal.is_some() {
            if let Some(job) = self.core.job(id) {
                // A job still in the ready queue has made no attempt yet;
                // its journaled form is numbered from 1 like any job.
                let body = if job.attempt == 0 {
                    let mut first = job.clone();
                    first.attempt = 1;
                    first.to_bincode()
                } else {
                    job.to_bincode()
                };
                self.journal_batch
                    .records
                    .push(Record::Submit(id.clone(), body));
            }
        }
    }

    fn attach(&mut self, id: JobId) -> Result<oneshot::Receiver<JobResult>, JobError> {
        let (tx, rx) = oneshot::channel();
        if let Some(result) = self.finished.take(&id) {
            let _ = tx.send(result);
            return Ok(rx);
        }
        match self.waiters.get_mut(&id) {
            Some(waiter @ Waiter::Resumed) => {
                *waiter = Waiter::Local { tx, progress: None };
                Ok(rx)
            }
            _ => Err(JobError::UnknownJob(id)),
        }
    }

    /// Submits the resumed jobs that have an eligible node (all of them once
    /// the grace period is over).
    fn resume_deferred(&mut self, now: Instant) {
        if self.deferred.is_empty() {
            return;
        }
        let give_up = now >= self.resume_until;
        for job in std::mem::take(&mut self.deferred) {
            if !give_up && !self.core.has_eligible_node(&job) {
                self.deferred.push(job);
                continue;
            }
            let id = job.id.clone();
            if let Err(err) = self.core.submit_held(job, now) {
                // Not resumable (e.g. invalid): drop it from the journal too.
                tracing::warn!(%id, %err, "resumed job refused");
                self.waiters.remove(&id);
                self.journal_batch.records.push(Record::Complete(id));
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.core.tick(now);
        let due = self
            .last_refresh
            .is_none_or(|last| now.saturating_duration_since(last) >= self.refresh);
        if due {
            self.refresh_nodes(now);
            self.prune_batches();
        }
        self.resume_deferred(now);
    }

    /// Submits `job`, first reloading the node table from the router when
    /// the table has no eligible node for it: membership events reach this
    /// task through its mailbox and the periodic refresh, so a node the
    /// router already sees serving the kind may not be in the table yet, and
    /// the job must not fail with `no_eligible_node` for that lag.
    fn submit_fresh(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        if !self.core.has_eligible_node(&job) {
            self.refresh_nodes(now);
        }
        self.core.submit(job, now)
    }

    /// [`submit_fresh`](Self::submit_fresh) for a batch (one reload at most).
    fn submit_batch_fresh(
        &mut self,
        jobs: Vec<Job>,
        now: Instant,
    ) -> Result<Vec<JobId>, SubmitError> {
        if jobs.iter().any(|job| !self.core.has_eligible_node(job)) {
            self.refresh_nodes(now);
        }
        self.core.submit_batch(jobs, now)
    }

    /// Reloads the node table from the router (status, tags, load).
    fn refresh_nodes(&mut self, now: Instant) {
        let infos = self.router.members().iter().map(node_info).collect();
        self.core.set_nodes(infos, now);
        self.last_refresh = Some(now);
    }

    /// Forgets dispatch envelopes none of whose attempts still runs.
    fn prune_batches(&mut self) {
        if self.batches.len() > 64 {
            let core = &self.core;
            self.batches
                .retain(|_, (_, jobs)| jobs.iter().any(|(id, a)| core.is_running(id, *a)));
        }
    }

    fn on_member(&mut self, event: MemberEvent, now: Instant) {
        match &event {
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                tracing::info!(node = %m.node, "member gone: retrying its jobs");
                self.core.member_down(m.node.as_str(), now);
            }
            other => self.core.update_node(node_info(other.member()), now),
        }
        self.resume_deferred(now);
    }

    fn on_envelope(&mut self, env: Envelope, now: Instant) {
        match env.kind {
            EnvelopeKind::Message => {
                let from_worker = env.from.actor().as_str() == WORKER;
                if from_worker && env.correlation_id.is_some() {
                    self.on_worker_reply(&env, now);
                } else {
                    self.on_request(env, now);
                }
            }
            _ => self.on_bounce(&env, now),
        }
    }

    /// An Undeliverable or Error answer to one of our dispatches: taken
    /// only from the address the dispatch went to (the router guarantees a
    /// remote sender's node; nobody else can fail another's batch).
    fn on_bounce(&mut self, env: &Envelope, now: Instant) {
        let Some(id) = env.correlation_id else {
            tracing::debug!(from = %env.from, kind = ?env.kind, "uncorrelated bounce ignored");
            return;
        };
        match self.batches.get(&id) {
            Some((to, _)) if *to == env.from => {}
            Some((to, _)) => {
                tracing::warn!(from = %env.from, %to, kind = ?env.kind, "bounce from another address than the dispatch's ignored");
                return;
            }
            None => {
                tracing::debug!(from = %env.from, kind = ?env.kind, "unmatched bounce ignored");
                return;
            }
        }
        let Some((_, jobs)) = self.batches.remove(&id) else {
            return;
        };
        let reason = env.payload_str().unwrap_or("").trim_matches('"');
        let message = format!("{} did not take the job: {reason}", env.from);
        self.fail_dispatched(jobs, &message, now);
    }

    fn on_send_failed(&mut self, failure: SendFailure, now: Instant) {
        if let Some((_, jobs)) = self.batches.remove(&failure.id) {
            let message = format!("cannot send to {WORKER}: {}", failure.reason);
            self.fail_dispatched(jobs, &message, now);
        }
    }

    fn fail_dispatched(&mut self, jobs: Vec<(JobId, u32)>, message: &str, now: Instant) {
        for (id, attempt) in jobs {
            let failure = JobFailure::new(FailureCause::Undeliverable, message);
            self.core.attempt_failed(&id, attempt, failure, now);
        }
    }

    fn on_worker_reply(&mut self, env: &Envelope, now: Instant) {
        let node = env.from.node().as_str();
        match decode_reply(&env.payload, env.format) {
            Ok(WorkerReply::Result(result)) => {
                self.core.result_received(result, node, now);
            }
            Ok(WorkerReply::Results(results)) => {
                for result in results {
                    self.core.result_received(result, node, now);
                }
            }
            Ok(WorkerReply::Progress(update)) => {
                if self.core.is_running(&update.job_id, update.attempt) {
                    self.forward_progress(&update);
                    self.progress.insert(update.job_id.clone(), update);
                }
            }
            Err(err) => tracing::warn!(from = %env.from, %err, "undecodable worker reply"),
        }
    }

    /// Hands a progress report to a submitter that asked for them.
    fn forward_progress(&mut self, update: &ProgressUpdate) {
        match self.waiters.get(&update.job_id) {
            Some(Waiter::Local {
                progress: Some(tx), ..
            }) => {
                let _ = tx.try_send(update.clone());
            }
            Some(Waiter::Remote {
                to,
                request,
                format,
                progress: true,
            }) => {
                let payload = encode_reply(&WorkerReply::Progress(update.clone()), *format);
                let mut env = Envelope::new(to.clone(), self.me.clone(), *format, payload);
                env.correlation_id = Some(*request);
                self.send(env);
            }
            _ => {}
        }
    }

    /// A submission or a command from a node or an external client.
    fn on_request(&mut self, env: Envelope, now: Instant) {
        if env.format == PayloadFormat::Json {
            if let Some(cmd) = command::parse(&env.payload) {
                self.on_command(env, cmd, now);
                return;
            }
        }
        let job =
            decode_job(&env.payload, env.format).map_err(|e| format!("cannot decode job: {e}"));
        self.submit_remote(job, &env, false, now);
    }

    fn submit_remote(
        &mut self,
        job: Result<Job, String>,
        env: &Envelope,
        progress: bool,
        now: Instant,
    ) {
        let submitted = job.and_then(|job| self.submit_fresh(job, now).map_err(|e| e.to_string()));
        match submitted {
            Ok(id) => {
                self.journal_submit(&id);
                self.wait_remote(id, env, progress);
            }
            Err(reason) => self.send(env.error_reply(&reason)),
        }
    }

    fn on_command(&mut self, env: Envelope, cmd: Result<Command, String>, now: Instant) {
        let reply = match cmd {
            Ok(Command::Stats) => match serde_json::to_vec(&self.core.stats()) {
                Ok(json) => env.reply(Bytes::from(json)),
                Err(err) => env.error_reply(&format!("cannot encode stats: {err}")),
            },
            Ok(Command::DeadLetters) => env.reply(Bytes::from(command::dead_letters_json(
                &self.core.dead_letters(),
            ))),
            Ok(Command::Resubmit { id }) => {
                let resubmitted = JobId::new(&id).map_err(|e| e.to_string()).and_then(|id| {
                    self.core
                        .resubmit_dead_letter(&id, now)
                        .map_err(|e| e.to_string())
                });
                match resubmitted {
                    Ok(id) => return self.wait_remote(id, &env, false),
                    Err(reason) => env.error_reply(&reason),
                }
            }
            Ok(Command::Submit { job, progress }) => {
                let job =
                    Job::from_json(&job.to_string()).map_err(|e| format!("cannot decode job: {e}"));
                return self.submit_remote(job, &env, progress, now);
            }
            Err(reason) => env.error_reply(&reason),
        };
        self.send(reply);
    }

    fn wait_remote(&mut self, id: JobId, env: &Envelope, progress: bool) {
        let waiter = Waiter::Remote {
            to: env.from.clone(),
            request: env.id,
            format: env.format,
            progress,
        };
        self.waiters.insert(id, waiter);
    }

    /// Carries out every pending action of the core: completions at once,
    /// dispatches grouped per node; then hands the journal its batch.
    fn flush(&mut self, now: Instant) {
        // Failed sends can make the core emit more actions; a few rounds
        // settle them (the rest goes out with the next run).
        for _ in 0..4 {
            let mut any = false;
            while let Some(action) = self.core.poll_action() {
                any = true;
                match action {
                    Action::DispatchId { id, attempt, node } => {
                        self.per_node.entry(node).or_default().push((id, attempt));
                    }
                    Action::Dispatch { job, node } => {
                        let entry = self.per_node.entry(Arc::from(node.as_str()));
                        entry.or_default().push((job.id, job.attempt));
                    }
                    Action::Complete(result) => self.complete(result),
                    Action::DeadLettered {
                        id,
                        attempts,
                        cause,
                    } => tracing::warn!(%id, attempts, %cause, "job dead-lettered"),
                }
            }
            let groups: Vec<_> = self.per_node.drain().collect();
            for (node, jobs) in groups {
                self.dispatch(&node, jobs, now);
            }
            if !any {
                break;
            }
        }
        if !self.drained.is_empty() && self.core.in_progress() == 0 && self.deferred.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
        if let Some(journal) = &self.journal {
            if !self.journal_batch.is_empty() {
                self.journal_batch.id_floor = self.core.generated_ids();
                journal.write(std::mem::take(&mut self.journal_batch));
            }
        }
    }

    /// Sends the attempts in `jobs` to `worker@<node>`, many per envelope.
    fn dispatch(&mut self, node: &str, jobs: Vec<(JobId, u32)>, now: Instant) {
        let Ok(node_id) = NodeId::new(node) else {
            self.fail_dispatched(jobs, &format!("bad node name {node:?}"), now);
            return;
        };
        let to = ActorAddr::new(self.worker.clone(), node_id);
        let mut rest = jobs.as_slice();
        while !rest.is_empty() {
            let (count, payload) = self.encode_dispatch(rest);
            let (chunk, tail) = rest.split_at(count);
            rest = tail;
            let Some(payload) = payload else { continue };
            let env = Envelope::new(to.clone(), self.me.clone(), self.format, payload);
            let msg_id = env.id;
            self.batches.insert(msg_id, (to.clone(), chunk.to_vec()));
            if let Err(reason) = self.outbox.send(env) {
                self.batches.remove(&msg_id);
                let message = format!("cannot send to {WORKER}@{node}: {reason}");
                self.fail_dispatched(chunk.to_vec(), &message, now);
            }
        }
    }

    /// Encodes the first attempts of `jobs` that fit one envelope; returns
    /// how many were taken and the payload (`None` if all were stale).
    fn encode_dispatch(&self, jobs: &[(JobId, u32)]) -> (usize, Option<Bytes>) {
        if self.format == PayloadFormat::Json {
            let job = self.core.running_job(&jobs[0].0, jobs[0].1);
            return (1, job.map(|job| encode_job(job, PayloadFormat::Json)));
        }
        let mut taken = 0;
        let mut bytes = 0;
        let mut live: Vec<&Job> = Vec::with_capacity(jobs.len().min(MAX_JOBS_PER_ENVELOPE));
        for (id, attempt) in jobs {
            if taken == MAX_JOBS_PER_ENVELOPE || (taken > 0 && bytes >= MAX_BYTES_PER_ENVELOPE) {
                break;
            }
            taken += 1;
            // A stale action (the attempt already ended) is skipped.
            if let Some(job) = self.core.running_job(id, *attempt) {
                bytes += job.heap_bytes() + 32;
                live.push(job);
            }
        }
        let payload = (!live.is_empty()).then(|| encode_job_batch(live));
        (taken, payload)
    }

    fn complete(&mut self, result: JobResult) {
        self.progress.remove(&result.id);
        if self.journal.is_some() {
            self.journal_batch
                .records
                .push(Record::Complete(result.id.clone()));
        }
        match self.waiters.remove(&result.id) {
            Some(Waiter::Local { tx, .. }) => {
                let _ = tx.send(result);
            }
            Some(Waiter::Remote {
                to,
                request,
                format,
                ..
            }) => {
                let payload = match format {
                    PayloadFormat::Json => Bytes::from(result.to_json()),
                    _ => Bytes::from(result.to_bincode()),
                };
                let mut env = Envelope::new(to, self.me.clone(), format, payload);
                env.correlation_id = Some(request);
                self.send(env);
            }
            Some(Waiter::Resumed) => self.finished.insert(result),
            None => tracing::debug!(id = %result.id, "result without a waiter"),
        }
    }

    /// Sends a reply without waiting.
    fn send(&mut self, env: Envelope) {
        let to = env.to.clone();
        if let Err(err) = self.outbox.send(env) {
            tracing::warn!(%to, %err, "cannot deliver a coordinator reply");
        }
    }
}

fn node_info(member: &Member) -> NodeInfo {
    let status = match member.status {
        MemberStatus::Up => NodeStatus::Up,
        MemberStatus::Suspect | MemberStatus::Leaving => NodeStatus::Suspect,
        _ => NodeStatus::Down,
    };
    NodeInfo {
        name: member.node.to_string(),
        status,
        tags: member.tags.clone(),
        load: NodeLoad {
            cpu: Some(member.load.cpu_percent),
            in_flight: member.load.in_flight,
            queue_depth: member.load.queue_depth,
        },
    }
}
