//! The coordinator actor: drives [`CoordinatorCore`] from its one mailbox
//! (envelopes, membership updates, timer ticks, send failures and local
//! calls) and carries out the core's actions.
//!
//! The hot path is batched and never waits on the network: the run loop
//! hands over the mailbox in runs of up to [`BATCH`] messages (lingering
//! once under load so a run is fuller); after each run, the
//! [`drained`](Actor::drained) hook carries out the core's actions at once,
//! dispatches grouped into one envelope per node (up to
//! [`MAX_JOBS_PER_ENVELOPE`] jobs) and handed to the [`Outbox`], which only
//! queues (in a per-node lane drained by its own task) when a link is full.
//!
//! The actor runs under a supervisor; see [`super::restart`] for what a
//! restarted instance keeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_core::{Actor, ActorRef, BoxError, Context};
use async_trait::async_trait;
use bytes::Bytes;
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, Member, MemberEvent, MemberStatus, MessageId,
    NodeId, PayloadFormat, Router,
};
use futures_util::Stream;
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::journal::{Ack, Batch, Gate, Journal, Record};
use super::link_losses::LinkLosses;
use super::outbox::{Outbox, SendFailure};
use super::recurring::Recurring;
use super::restart::{Finished, Handover, HandoverSlot, Retained, Waiter};
use super::{Accepted, Call, CoordinatorOptions, MemberUpdate, Msg};
use crate::coordinator::{
    Action, CoordinatorConfig, CoordinatorCore, NodeInfo, NodeLoad, NodeStatus,
};
use crate::error::{JobError, SubmitError};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{IdMap, IdSet, Job, JobId, JobResult};
use crate::limits::{LimitMsg, LIMITS};
use crate::local::{LocalCancel, LocalJobs, LocalPool, LocalReply};
use crate::pool::{PoolMsg, WORKER};
use crate::protocol::{encode_cancel, encode_fenced_batch, encode_job, MAX_CANCEL_IDS};
use crate::record::{now_ms, Records};

mod batch;
mod edge;
mod recurring_ops;
mod remote;

pub(super) use recurring_ops::RecurringCommand;

/// Most mailbox messages handled between two flushes.
pub(super) const BATCH: usize = 512;
/// Most jobs per dispatch envelope.
const MAX_JOBS_PER_ENVELOPE: usize = 1024;
/// Most job bytes (approximate) per dispatch envelope.
const MAX_BYTES_PER_ENVELOPE: usize = 1 << 20;
/// How long resumed jobs wait for an eligible node before they are
/// submitted anyway (and fail with `no_eligible_node` if there is none).
const RESUME_GRACE: Duration = Duration::from_secs(10);

/// What every instance of the coordinator actor is built from.
#[derive(Clone)]
pub(super) struct Setup {
    pub(super) core: CoordinatorConfig,
    pub(super) router: Router,
    pub(super) me: ActorAddr,
    pub(super) options: CoordinatorOptions,
    pub(super) gate: Gate,
    pub(super) slot: HandoverSlot,
    /// Set once the router delivers to the actor: no job is resumed (sent
    /// to a worker, whose reply must find the coordinator) before.
    pub(super) registered: Arc<AtomicBool>,
    /// Cluster-wide queries running (shared by every instance).
    pub(super) fanouts: Arc<tokio::sync::Semaphore>,
}

/// One instance of the coordinator actor.
pub(super) struct Shell {
    core: CoordinatorCore,
    router: Router,
    me: ActorAddr,
    setup: Setup,
    worker: ActorName,
    limits_name: ActorName,
    format: PayloadFormat,
    /// Waiters of jobs without a live record (none in the normal course:
    /// a job's waiter is kept in its record, see [`Shell::wait_for`]).
    waiters: IdMap<Waiter>,
    /// Dispatch envelopes whose jobs may still bounce: id -> where it went
    /// and its (job, attempt)s.
    batches: FxHashMap<MessageId, (ActorAddr, Vec<(JobId, u32)>)>,
    progress: IdMap<ProgressUpdate>,
    outbox: Outbox,
    failed: Option<mpsc::UnboundedReceiver<SendFailure>>,
    journal: Option<Journal>,
    journal_batch: Batch,
    deferred: Vec<Job>,
    /// Whether resuming a deferred job counts it as submitted (true for a
    /// fresh start, false after a restart: the counters were kept).
    count_resumed: bool,
    resume_until: Instant,
    finished: Finished,
    per_node: FxHashMap<Arc<str>, Vec<(JobId, u32)>>,
    /// Callers of `drain` waiting for the last held job to finish.
    drained: Vec<oneshot::Sender<()>>,
    /// A restarted instance's inheritance, consumed by `started`.
    retained: Option<Retained>,
    /// Every job's record (unfinished, and finished within retention),
    /// and an unfinished job's waiter.
    records: Records<Waiter>,
    /// Further waiters per job (idempotent submissions, `attach`).
    extra: IdMap<Vec<Waiter>>,
    /// How many further waiters are held (bounded).
    extra_count: usize,
    /// Attempts to cancel, per worker node, sent at the next flush.
    cancels: HashMap<Arc<str>, Vec<(JobId, u32)>>,
    /// Recurring jobs (cron), fired by the deadline sweep.
    recurring: Recurring,
    /// This instance's incarnation (fencing): dispatches carry it, and
    /// results of another incarnation are dropped.
    incarnation: u64,
    /// The link losses acted on, per node.
    link_losses: LinkLosses,
    /// Answers to `submit_batch` commands gathered during a run.
    batch_replies: batch::BatchReplies,
    /// This actor's own handle while a flush runs (a strong handle held
    /// for longer would keep the actor from stopping on its own): where
    /// this node's pool answers jobs handed over without an envelope.
    myself: Option<ActorRef<Msg>>,
    #[cfg(feature = "fault-injection")]
    fault_armed: bool,
}

impl Shell {
    /// Builds an instance from `setup` and what the factory's slot holds
    /// (the journal opened at start, or a failed predecessor's state).
    pub(super) fn new(setup: &Setup) -> Shell {
        let handover = std::mem::take(&mut *setup.slot.lock());
        let Handover { journal, retained } = handover;
        let core = CoordinatorCore::new(setup.core.clone())
            .with_dispatch_by_id()
            .with_attempt_events();
        let (outbox, failed) = Outbox::new(setup.router.clone());
        Shell {
            core,
            router: setup.router.clone(),
            me: setup.me.clone(),
            worker: ActorName::new(WORKER).expect("a valid actor name"),
            limits_name: ActorName::new(LIMITS).expect("a valid actor name"),
            format: setup.options.dispatch_format,
            waiters: IdMap::default(),
            batches: FxHashMap::default(),
            progress: IdMap::default(),
            outbox,
            failed: Some(failed),
            journal,
            journal_batch: Batch::default(),
            deferred: Vec::new(),
            count_resumed: retained.is_none(),
            resume_until: Instant::now() + RESUME_GRACE,
            finished: Finished::default(),
            per_node: FxHashMap::default(),
            drained: Vec::new(),
            retained,
            records: Records::with_waiters(
                setup.router.node_id().to_string(),
                setup.options.retention(),
            ),
            extra: IdMap::default(),
            extra_count: 0,
            cancels: HashMap::new(),
            recurring: Recurring::default(),
            incarnation: super::incarnation(),
            link_losses: LinkLosses::default(),
            batch_replies: batch::BatchReplies::default(),
            myself: None,
            setup: setup.clone(),
            #[cfg(feature = "fault-injection")]
            fault_armed: false,
        }
    }

    /// Loads the jobs to resume: the journal's unfinished jobs (opening it
    /// if a predecessor closed it), else a predecessor's unfinished jobs;
    /// takes over a predecessor's waiters and kept results.
    async fn recover(&mut self) -> Result<(), BoxError> {
        if self.journal.is_none() {
            if let Some(dir) = &self.setup.options.data_dir {
                let retention = self.setup.options.retention();
                self.journal = Some(self.setup.gate.open(dir.clone(), retention).await?);
            }
        }
        let retained = self.retained.take();
        let mut resume = match &mut self.journal {
            Some(journal) => std::mem::take(&mut journal.unfinished),
            None => Vec::new(),
        };
        if let Some(journal) = &self.journal {
            self.core.skip_generated_ids(journal.id_floor);
        }
        skip_resumed_ids(&mut self.core, &self.router, &resume);
        let Some(retained) = retained else {
            let now_ms = now_ms();
            if let Some(journal) = &mut self.journal {
                for record in std::mem::take(&mut journal.finished) {
                    record.restore(&mut self.records, now_ms);
                }
                let letters = std::mem::take(&mut journal.dead);
                for gone in self.core.restore_dead_letters(letters) {
                    self.journal_batch.records.push(Record::Undead(gone));
                }
                for spec in std::mem::take(&mut journal.recurring) {
                    let name = spec.name.clone();
                    if let Err(err) = self.recurring.insert(spec, now_ms) {
                        tracing::warn!(%name, %err, "journal: recurring job not restored");
                    }
                }
            }
            for job in &resume {
                self.records.submitted(job, now_ms);
                self.wait_for(job.id.clone(), Waiter::Resumed);
            }
            self.deferred = resume;
            return Ok(());
        };
        // The predecessor's records are newer than the journal's.
        if let Some(journal) = &mut self.journal {
            journal.finished = Vec::new();
            journal.dead = Vec::new();
        }
        self.records = retained.records;
        self.extra = retained.extra;
        self.recurring = retained.recurring;
        self.extra_count = self.extra.values().map(Vec::len).sum();
        let mut unfinished = self.core.restore(retained.core);
        unfinished.extend(retained.deferred);
        if self.journal.is_none() {
            resume = unfinished;
        }
        self.finished = retained.finished;
        self.progress = retained.progress;
        self.drained = retained.drained;
        self.adopt_waiters(retained.waiters, &resume);
        self.deferred = resume;
        Ok(())
    }

    /// Keeps the predecessor's waiters of the jobs being resumed; answers
    /// the others (their job was lost, which only happens when the journal
    /// did not get their submission) with an error.
    fn adopt_waiters(&mut self, mut waiters: IdMap<Waiter>, resume: &[Job]) {
        let resumed: IdSet = resume.iter().map(|job| job.id.clone()).collect();
        // The waiters kept in the records of jobs not resumed: lost.
        let mut lost = self.records.take_waiters(|id| !resumed.contains(id));
        for job in resume {
            match waiters.remove(&job.id) {
                Some(waiter) => self.wait_for(job.id.clone(), waiter),
                None if self.waiter(&job.id).is_none() => {
                    self.wait_for(job.id.clone(), Waiter::Resumed);
                }
                None => {}
            }
        }
        lost.extend(waiters);
        for (id, waiter) in lost {
            tracing::warn!(%id, "job lost in a coordinator restart");
            if let Waiter::Remote { to, request, .. } = waiter {
                let mut env = Envelope::new(
                    to,
                    self.me.clone(),
                    PayloadFormat::Json,
                    Bytes::from_static(b"\"coordinator restarted and lost the job\""),
                );
                env.kind = EnvelopeKind::Error;
                env.correlation_id = Some(request);
                self.send(env);
            } else if let Waiter::Batch { to, request } = waiter {
                self.lost_in_batch(&to, request, &id);
            }
            // A local waiter's channel closes: `PendingJob::result` fails.
        }
    }

    /// Answers what is already decided before this instance goes: results
    /// the core emitted reach their waiters, the journal gets its last batch
    /// and is closed. Returns what a successor keeps.
    async fn settle(&mut self) -> Retained {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Complete(result) => self.complete(result),
                Action::DeadLettered { id, evicted, .. } => {
                    tracing::warn!(%id, "job dead-lettered");
                    self.journal_dead(&id, evicted);
                }
                // Dispatches are moot: the successor resubmits the job.
                _ => {}
            }
        }
        self.send_batch_replies();
        if let Some(mut journal) = self.journal.take() {
            if !self.journal_batch.is_empty() {
                self.journal_batch.id_floor = self.core.generated_ids();
                journal.write(std::mem::take(&mut self.journal_batch));
            }
            journal.close().await;
        }
        Retained {
            waiters: std::mem::take(&mut self.waiters),
            finished: std::mem::take(&mut self.finished),
            progress: std::mem::take(&mut self.progress),
            drained: std::mem::take(&mut self.drained),
            deferred: std::mem::take(&mut self.deferred),
            core: self.core.carry_over(),
            records: std::mem::replace(
                &mut self.records,
                Records::with_waiters(String::new(), self.setup.options.retention()),
            ),
            extra: std::mem::take(&mut self.extra),
            recurring: std::mem::take(&mut self.recurring),
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
        self.wait_for(id.clone(), Waiter::Local { tx, progress });
        self.journal_submit(&id);
        let accepted = Ok((id, rx));
        if self.journal.is_some() {
            self.journal_batch.acks.push(Ack::One(reply, accepted));
        } else {
            let _ = reply.send(accepted);
        }
    }

    /// Journals a new dead letter (with its job, so that it can be
    /// resubmitted after a restart) and the ones it evicted.
    fn journal_dead(&mut self, id: &JobId, evicted: Vec<JobId>) {
        if self.journal.is_none() {
            return;
        }
        if let Some(letter) = self.core.dead_letter(id) {
            let body = super::journal::encode_dead_letter(letter);
            self.journal_batch
                .records
                .push(Record::Dead(id.clone(), body));
        }
        for gone in evicted {
            self.journal_batch.records.push(Record::Undead(gone));
        }
    }

    /// Removes a dead letter (discarded, or run again), in the journal too;
    /// whether there was one.
    pub(super) fn discard_dead(&mut self, id: &JobId) -> bool {
        let found = self.core.discard_dead_letter(id).is_some();
        if found && self.journal.is_some() {
            self.journal_batch.records.push(Record::Undead(id.clone()));
        }
        found
    }

    fn journal_submit(&mut self, id: &JobId) {
        if self.journal.is_some() {
            if let Some(job) = self.core.job(id) {
                self.journal_batch.records.submit(job);
            }
        }
    }

    fn attach(&mut self, id: JobId) -> Result<oneshot::Receiver<JobResult>, JobError> {
        let (tx, rx) = oneshot::channel();
        if let Some(result) = self.finished.take(&id) {
            let _ = tx.send(result);
            return Ok(rx);
        }
        if let Some(waiter @ Waiter::Resumed) = self.waiter_mut(&id) {
            *waiter = Waiter::Local { tx, progress: None };
            return Ok(rx);
        }
        // Any other job this coordinator knows: one more waiter.
        let waiter = Waiter::Local { tx, progress: None };
        if self.records.contains(&id) && self.add_waiter(&id, waiter) {
            Ok(rx)
        } else {
            Err(JobError::UnknownJob(id))
        }
    }

    /// Submits the resumed jobs that have an eligible node (all of them once
    /// the grace period is over).
    fn resume_deferred(&mut self, now: Instant) {
        if self.deferred.is_empty() || !self.setup.registered.load(Ordering::Acquire) {
            return;
        }
        let give_up = now >= self.resume_until;
        for job in std::mem::take(&mut self.deferred) {
            if !give_up && !self.core.has_eligible_node(&job) {
                self.deferred.push(job);
                continue;
            }
            let id = job.id.clone();
            let resumed = if self.count_resumed {
                self.core.submit_held(job, now)
            } else {
                self.core.resume_held(job, now)
            };
            if let Err(err) = resumed {
                // Not resumable (e.g. invalid): drop it from the journal too.
                tracing::warn!(%id, %err, "resumed job refused");
                self.waiters.remove(&id);
                self.records.forget_live(&id);
                self.journal_batch.records.push(Record::Complete(id));
            }
        }
    }

    /// Submits `job`, first reloading the node table from the router when
    /// the table has no eligible node for it: membership events reach this
    /// actor through its mailbox and the periodic refresh, so a node the
    /// router already sees serving the kind may not be in the table yet, and
    /// the job must not fail with `no_eligible_node` for that lag.
    fn submit_fresh(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        if !self.core.has_eligible_node(&job) {
            self.refresh_nodes(now);
        }
        let (kind, max_attempts) = (self.records.intern(&job.kind), job.max_attempts);
        let id = self.core.submit(job, now)?;
        self.records
            .submitted_parts(id.clone(), kind, max_attempts, now_ms());
        Ok(id)
    }

    /// [`submit_fresh`](Self::submit_fresh) for a batch (one reload at most).
    fn submit_batch_fresh(
        &mut self,
        jobs: Vec<Job>,
        now: Instant,
    ) -> Result<Vec<JobId>, SubmitError> {
        if !self.core.all_have_eligible_nodes(&jobs) {
            self.refresh_nodes(now);
        }
        let mut parts: Vec<(Arc<str>, u32)> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let kind = match parts.last() {
                Some((last, _)) if **last == *job.kind => Arc::clone(last),
                _ => self.records.intern(&job.kind),
            };
            parts.push((kind, job.max_attempts));
        }
        let ids = self.core.submit_batch(jobs, now)?;
        let now_ms = now_ms();
        for (id, (kind, max_attempts)) in ids.iter().zip(parts) {
            self.records
                .submitted_parts(id.clone(), kind, max_attempts, now_ms);
        }
        Ok(ids)
    }

    /// Reloads the node table from the router (status, tags, load), and
    /// acts on link losses whose events this instance missed.
    fn refresh_nodes(&mut self, now: Instant) {
        let members = self.router.members();
        self.core
            .set_nodes(members.iter().map(node_info).collect(), now);
        for member in &members {
            self.on_link_losses(&member.node, now);
        }
        self.link_losses
            .retain(|node| members.iter().any(|m| &m.node == node));
    }

    /// The link to `node` dropped since this instance last acted on it:
    /// what was in the link may be lost, so its attempts go again (one
    /// action covers every loss so far).
    fn on_link_losses(&mut self, node: &NodeId, now: Instant) {
        let count = self.router.link_losses(node);
        if self.link_losses.take_new(node, count) {
            self.core.link_lost(node.as_str(), now);
        }
    }

    /// Forgets dispatch envelopes none of whose attempts still runs.
    fn prune_batches(&mut self) {
        if self.batches.len() > 64 {
            let core = &self.core;
            self.batches
                .retain(|_, (_, jobs)| jobs.iter().any(|(id, a)| core.is_running(id, *a)));
        }
    }

    fn on_member(&mut self, update: MemberUpdate, now: Instant) {
        match update {
            MemberUpdate::Event(MemberEvent::Down(m) | MemberEvent::Left(m)) => {
                tracing::info!(node = %m.node, "member gone: retrying its jobs");
                self.core.member_down(m.node.as_str(), now);
            }
            // What was in the link may be lost: its attempts go again.
            MemberUpdate::Event(MemberEvent::LinkLost(m)) => self.on_link_losses(&m.node, now),
            MemberUpdate::Event(other) => self.core.update_node(node_info(other.member()), now),
            // Missed events: reload the whole table.
            MemberUpdate::Lagged => self.refresh_nodes(now),
        }
        self.resume_deferred(now);
    }

    fn on_envelope(&mut self, env: Envelope, now: Instant) {
        if env.to.actor().as_str() == LIMITS {
            self.on_limits(&env, now);
            return;
        }
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

    /// A message of the limits protocol: only from another node's
    /// `limits` actor (the router vouches for the node, and no external
    /// client can address `limits`); bounces are ignored (the protocol
    /// retries on its own).
    fn on_limits(&mut self, env: &Envelope, now: Instant) {
        let from_limits = env.from.actor().as_str() == LIMITS;
        if env.kind != EnvelopeKind::Message || !from_limits || env.format != PayloadFormat::Binary
        {
            tracing::debug!(from = %env.from, kind = ?env.kind, "limits: envelope ignored");
            return;
        }
        match LimitMsg::decode(&env.payload) {
            Ok(msg) => self.core.limit_received(env.from.node().as_str(), msg, now),
            Err(err) => tracing::warn!(from = %env.from, %err, "limits: malformed message dropped"),
        }
    }

    /// Sends the limits protocol's messages (best effort: a lost one is
    /// made up by the next report or grant).
    fn send_limit_messages(&mut self) {
        for (node, msg) in self.core.take_limit_messages() {
            let Ok(node) = NodeId::new(&node) else {
                continue;
            };
            let to = ActorAddr::new(self.limits_name.clone(), node);
            let from = ActorAddr::new(self.limits_name.clone(), self.me.node().clone());
            let env = Envelope::new(to, from, PayloadFormat::Binary, msg.encode());
            if let Err(err) = self.outbox.send(env) {
                tracing::debug!(%err, "limits: message not sent");
            }
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

    /// Carries out every pending action of the core: completions at once,
    /// dispatches grouped per node; then hands the journal its batch.
    fn flush(&mut self, now: Instant) {
        // Wall-clock time for the records, read once per 64 completions,
        // not twice per job: a run's completions are microseconds apart,
        // and the records keep milliseconds.
        let mut now_ms = now_ms();
        let mut completions = 0u32;
        // Failed sends can make the core emit more actions; a few rounds
        // settle them (the rest goes out with the next run).
        for _ in 0..4 {
            let mut any = false;
            while let Some(action) = self.core.poll_action() {
                any = true;
                match action {
                    Action::DispatchId { id, attempt, node } => {
                        self.records.attempt_started(&id, attempt, &node, now_ms);
                        self.per_node.entry(node).or_default().push((id, attempt));
                    }
                    Action::AttemptFailed {
                        id,
                        attempt,
                        node,
                        cause,
                    } => {
                        let node = node.as_deref();
                        self.records
                            .attempt_failed(&id, attempt, node, cause, now_ms);
                    }
                    Action::Dispatch { job, node } => {
                        let entry = self.per_node.entry(Arc::from(node.as_str()));
                        entry.or_default().push((job.id, job.attempt));
                    }
                    Action::CancelAttempt { id, attempt, node } => {
                        self.cancels.entry(node).or_default().push((id, attempt));
                    }
                    Action::Complete(result) => {
                        completions += 1;
                        if completions % 64 == 0 {
                            // Never earlier: a dispatch the completions made
                            // room for is recorded as starting after they
                            // ended.
                            now_ms = now_ms.max(crate::record::now_ms());
                        }
                        self.complete_at(result, now_ms);
                    }
                    Action::DeadLettered {
                        id,
                        attempts,
                        cause,
                        evicted,
                    } => {
                        tracing::warn!(%id, attempts, %cause, "job dead-lettered");
                        self.journal_dead(&id, evicted);
                    }
                }
            }
            let groups: Vec<_> = self.per_node.drain().collect();
            for (node, jobs) in groups {
                self.dispatch(&node, jobs, now);
            }
            self.send_cancels();
            self.send_limit_messages();
            self.send_batch_replies();
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

    /// Sends the attempts in `jobs` to `worker@<node>`: to this node's
    /// pool without an envelope when it can take them, else many per
    /// envelope.
    fn dispatch(&mut self, node: &str, jobs: Vec<(JobId, u32)>, now: Instant) {
        let jobs = if node == self.me.node().as_str() {
            match self.dispatch_local(jobs) {
                Some(jobs) => jobs,
                None => return,
            }
        } else {
            jobs
        };
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

    /// Hands the attempts in `jobs` to this node's pool as one typed batch
    /// (see `local.rs`); gives them back when they must take the envelope
    /// path (no pool in this process, its mailbox full or gone, earlier
    /// envelopes to it still queued).
    fn dispatch_local(&mut self, jobs: Vec<(JobId, u32)>) -> Option<Vec<(JobId, u32)>> {
        let Some(pool) = self.local_pool() else {
            return Some(jobs);
        };
        let Some(reply) = self.myself.as_ref().map(ActorRef::recipient) else {
            return Some(jobs);
        };
        let live: Vec<Job> = jobs
            .iter()
            .filter_map(|(id, attempt)| self.core.running_job(id, *attempt))
            .cloned()
            .collect();
        if live.is_empty() {
            // Every action was stale (the attempts already ended).
            return None;
        }
        let count = live.len();
        let batch = LocalJobs {
            from: self.me.clone(),
            incarnation: self.incarnation,
            jobs: live,
            reply,
        };
        pool.stats.add_jobs(count);
        match pool.actor.try_tell(PoolMsg::LocalJobs(batch)) {
            Ok(()) => None,
            Err(_) => {
                pool.stats.undo_jobs(count);
                Some(jobs)
            }
        }
    }

    /// Gives the core this node's pool load as it is now (when the pool
    /// runs in this process), for the placements this message makes.
    fn read_local_load(&mut self) {
        let load = self.running_local_pool().map(|pool| pool.load.get());
        self.core.set_local_live_load(load);
    }

    /// This node's pool, when it runs in this process.
    fn running_local_pool(&self) -> Option<Arc<LocalPool>> {
        let pool = self.router.local::<LocalPool>()?;
        pool.actor.is_alive().then_some(pool)
    }

    /// This node's pool, when it can be reached without an envelope now:
    /// it runs in this process, binary dispatch (JSON dispatch stays one
    /// envelope per job), and nothing to it waits in the outbox (a typed
    /// message must not overtake an earlier envelope).
    fn local_pool(&self) -> Option<Arc<LocalPool>> {
        if self.format != PayloadFormat::Binary || self.outbox.is_queued(self.me.node()) {
            return None;
        }
        self.running_local_pool()
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
        let payload = (!live.is_empty()).then(|| encode_fenced_batch(self.incarnation, live));
        (taken, payload)
    }

    /// Tells worker pools to stop the attempts cancelled since the last
    /// flush (best effort: a lost message leaves the attempt running, and
    /// its result is dropped as late).
    fn send_cancels(&mut self) {
        for (node, mut attempts) in std::mem::take(&mut self.cancels) {
            if *node == *self.me.node().as_str() {
                let Some(pool) = self.local_pool() else {
                    self.send_cancel_envelopes(&node, &attempts);
                    continue;
                };
                let cancel = LocalCancel {
                    from: self.me.clone(),
                    incarnation: self.incarnation,
                    attempts,
                };
                match pool.actor.try_tell(PoolMsg::LocalCancel(cancel)) {
                    Ok(()) => continue,
                    Err(err) => match err.into_inner() {
                        PoolMsg::LocalCancel(cancel) => attempts = cancel.attempts,
                        _ => continue,
                    },
                }
            }
            self.send_cancel_envelopes(&node, &attempts);
        }
    }

    /// Cancels `attempts` on `node` through envelopes.
    fn send_cancel_envelopes(&mut self, node: &str, attempts: &[(JobId, u32)]) {
        let Ok(node_id) = NodeId::new(node) else {
            return;
        };
        let to = ActorAddr::new(self.worker.clone(), node_id);
        for chunk in attempts.chunks(MAX_CANCEL_IDS) {
            let payload = encode_cancel(self.incarnation, chunk);
            let env = Envelope::new(to.clone(), self.me.clone(), PayloadFormat::Binary, payload);
            self.send(env);
        }
    }

    /// Makes `waiter` the one who waits for job `id`: kept in the job's
    /// record (one place per job), or apart if it has none.
    pub(super) fn wait_for(&mut self, id: JobId, waiter: Waiter) {
        if let Err(waiter) = self.records.set_waiter(&id, waiter) {
            self.waiters.insert(id, waiter);
        }
    }

    /// Who waits for job `id`.
    pub(super) fn waiter(&self, id: &JobId) -> Option<&Waiter> {
        self.records.waiter(id).or_else(|| self.waiters.get(id))
    }

    /// Who waits for job `id`, to change.
    fn waiter_mut(&mut self, id: &JobId) -> Option<&mut Waiter> {
        match self.records.waiter_mut(id) {
            Some(waiter) => Some(waiter),
            None => self.waiters.get_mut(id),
        }
    }

    fn complete(&mut self, result: JobResult) {
        self.complete_at(result, now_ms());
    }

    /// [`complete`](Self::complete) with the wall-clock time already read.
    fn complete_at(&mut self, result: JobResult, now_ms: u64) {
        self.progress.remove(&result.id);
        let (finished, waiter) = match self.records.finish(&result, now_ms) {
            Some(waiter) => (true, waiter),
            None => (false, None),
        };
        if self.journal.is_some() {
            let records = &mut self.journal_batch.records;
            match finished.then(|| self.records.finished_blob(&result.id)) {
                Some(Some(blob)) => records.finished(&result.id, now_ms, blob),
                _ => records.push(Record::Complete(result.id.clone())),
            }
        }
        if let Some(extra) = self.extra.remove(&result.id) {
            self.extra_count -= extra.len();
            for waiter in extra {
                self.deliver(waiter, result.clone());
            }
        }
        // A waiter kept apart (the job had no record when it came).
        if let Some(apart) = self.waiters.remove(&result.id) {
            self.deliver(apart, result.clone());
        }
        match waiter {
            Some(waiter) => self.deliver(waiter, result),
            None => tracing::debug!(id = %result.id, "result without a waiter in its record"),
        }
    }

    /// Hands a final result to one waiter.
    fn deliver(&mut self, waiter: Waiter, result: JobResult) {
        match waiter {
            Waiter::Local { tx, .. } => {
                let _ = tx.send(result);
            }
            Waiter::Remote {
                to,
                request,
                format,
                ..
            } => {
                let payload = match format {
                    PayloadFormat::Json => Bytes::from(result.to_json()),
                    _ => Bytes::from(result.to_bincode()),
                };
                let mut env = Envelope::new(to, self.me.clone(), format, payload);
                env.correlation_id = Some(request);
                self.send_own_json(env);
            }
            Waiter::Batch { to, request } => self.deliver_in_batch(&to, request, &result),
            Waiter::Resumed => self.finished.insert(result),
        }
    }

    /// Sends a reply without waiting.
    fn send(&mut self, env: Envelope) {
        self.send_as(env, false);
    }

    /// [`send`](Self::send) of a reply whose JSON payload this node wrote
    /// from its own types (a result, a batch's answer): a local client
    /// that takes raw payloads gets it without the router parsing it again.
    fn send_own_json(&mut self, env: Envelope) {
        self.send_as(env, true);
    }

    fn send_as(&mut self, env: Envelope, own_json: bool) {
        let to = env.to.clone();
        if let Err(err) = self.outbox.send_with(env, own_json) {
            tracing::warn!(%to, %err, "cannot deliver a coordinator reply");
        }
    }

    /// Handles one local request (a call on the `Coordinator` handle).
    fn on_call(&mut self, call: Call, now: Instant) {
        match call {
            Call::Submit {
                job,
                progress,
                reply,
            } => {
                if self.records.contains(&job.id) {
                    let answer = self.attach_local(job.id, progress);
                    let _ = reply.send(answer);
                    return;
                }
                match self.submit_fresh(job, now) {
                    Ok(id) => self.accepted(id, progress, reply),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            Call::SubmitMany { jobs, reply } => self.submit_many_call(jobs, reply, now),
            Call::Rerun(job, reply) => match self.rerun(job, now) {
                Ok(id) => self.accepted(id, None, reply),
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Call::Get(ids, reply) => {
                let _ = reply.send(self.lookup(&ids));
            }
            Call::Cancel(ids, reply) => {
                let _ = reply.send(self.cancel_ids(&ids, now));
            }
            Call::Search(query, reply) => {
                let _ = reply.send(self.search(&query));
            }
            Call::FinishedBetween {
                after_ms,
                until_ms,
                limit,
                reply,
            } => {
                let _ = reply.send(self.records.finished_between(after_ms, until_ms, limit));
            }
            Call::Discard(id, reply) => {
                let _ = reply.send(self.discard_dead(&id));
            }
            Call::AddRecurring(spec, reply) => {
                let answer = self.add_recurring(spec);
                self.answer_when_durable(answer, move |answer| {
                    let _ = reply.send(answer);
                });
            }
            Call::RemoveRecurring(name, reply) => {
                let answer = Ok(self.remove_recurring(&name));
                self.answer_when_durable(answer, move |answer| {
                    let _ = reply.send(answer);
                });
            }
            Call::ListRecurring(reply) => {
                let _ = reply.send(self.recurring.list());
            }
            Call::Drain(reply) => {
                if !self.core.is_draining() {
                    tracing::info!(coordinator = %self.me, held = self.core.in_progress(), "draining");
                }
                self.core.set_draining(true);
                self.drained.push(reply);
            }
            Call::Resubmit(id, reply) => match self.resubmit(&id, now) {
                Ok(id) => self.accepted(id, None, reply),
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Call::Attach(id, reply) => {
                let _ = reply.send(self.attach(id));
            }
            Call::Stats(reply) => {
                let _ = reply.send(self.core.stats());
            }
            Call::DeadLetters(reply) => {
                let _ = reply.send(self.core.dead_letters().into_iter().cloned().collect());
            }
            Call::Progress(id, reply) => {
                let _ = reply.send(self.progress.get(&id).cloned());
            }
        }
    }

    /// Handles one mailbox message.
    fn on_message(&mut self, msg: Msg, now: Instant) {
        match msg {
            Msg::Envelope(env) => self.on_envelope(env, now),
            Msg::Call(call) => self.on_call(call, now),
            Msg::Member(update) => self.on_member(update, now),
            Msg::Tick => {
                self.fire_recurring(now);
                self.core.tick(now);
                self.resume_deferred(now);
            }
            Msg::Refresh => {
                self.records.expire(now_ms());
                self.refresh_nodes(now);
                self.prune_batches();
                self.resume_deferred(now);
            }
            Msg::SendFailed(failure) => self.on_send_failed(failure, now),
            Msg::Local(LocalReply { from, reply }) => self.on_reply(&from, reply, now),
            #[cfg(feature = "fault-injection")]
            Msg::Fault(fault) => self.inject(fault),
        }
    }
}

#[cfg(feature = "fault-injection")]
impl Shell {
    fn inject(&mut self, fault: super::Fault) {
        match fault {
            super::Fault::Panic => panic!("injected fault: coordinator handler panicked"),
            super::Fault::PanicOnNextReply => self.fault_armed = true,
        }
    }
}

#[async_trait]
impl Actor for Shell {
    type Message = Msg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let options = &self.setup.options;
        ctx.run_interval(options.tick, || Msg::Tick);
        ctx.run_interval(options.refresh, || Msg::Refresh);
        ctx.forward(member_updates(self.router.subscribe()), Msg::Member);
        if let Some(failed) = self.failed.take() {
            ctx.forward(send_failures(failed), Msg::SendFailed);
        }
        self.recover().await?;
        let now = Instant::now();
        // Losses before this instance had anything in flight are moot.
        for member in self.router.members() {
            let count = self.router.link_losses(&member.node);
            self.link_losses.baseline(&member.node, count);
        }
        self.refresh_nodes(now);
        self.resume_deferred(now);
        self.myself = Some(ctx.myself());
        self.flush(now);
        self.myself = None;
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if self.core.in_progress() > 1 {
            // Under load, let senders add to this run so that one flush
            // carries many dispatches (one envelope per node). One job in
            // progress (the one this message may be about) has nothing to
            // wait for: lingering would only add a yield and a syscall to
            // its latency.
            ctx.linger();
        }
        self.read_local_load();
        self.on_message(msg, Instant::now());
        Ok(())
    }

    async fn drained(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.myself = Some(ctx.myself());
        self.flush(Instant::now());
        self.myself = None;
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let retained = self.settle().await;
        // After a failure the supervisor builds a successor, which takes
        // this; after a stop it is dropped with the factory, and callers
        // still waiting get `JobError::Stopped`.
        self.setup.slot.lock().retained = Some(retained);
    }
}

/// Makes generated ids of a fresh core start after the counters of the
/// resumed jobs' generated ids (`<node>-<counter>`).
fn skip_resumed_ids(core: &mut CoordinatorCore, router: &Router, resumed: &[Job]) {
    let prefix = format!("{}-", router.node_id());
    let floor = resumed
        .iter()
        .filter_map(|job| job.id.as_str().strip_prefix(&prefix)?.parse().ok())
        .max()
        .unwrap_or(0);
    core.skip_generated_ids(floor);
}

/// Membership events as mailbox messages; a lagging subscription becomes
/// one [`MemberUpdate::Lagged`] (the actor then reloads the table).
fn member_updates(events: broadcast::Receiver<MemberEvent>) -> impl Stream<Item = MemberUpdate> {
    futures_util::stream::unfold(events, |mut events| async move {
        let update = match events.recv().await {
            Ok(event) => MemberUpdate::Event(event),
            Err(broadcast::error::RecvError::Lagged(_)) => MemberUpdate::Lagged,
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((update, events))
    })
}

/// The outbox's late send failures as mailbox messages.
fn send_failures(failed: mpsc::UnboundedReceiver<SendFailure>) -> impl Stream<Item = SendFailure> {
    futures_util::stream::unfold(failed, |mut failed| async move {
        let failure = failed.recv().await?;
        Some((failure, failed))
    })
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
