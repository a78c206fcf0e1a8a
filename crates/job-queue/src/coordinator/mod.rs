//! The coordinator core: a sans-IO state machine that places jobs on nodes,
//! enforces timeouts, retries with backoff on other nodes, deduplicates
//! results and keeps dead letters and per-node statistics.
//!
//! It owns no socket, no task and no clock: every input carries `now`, and
//! every effect is an [`Action`] the caller drains with
//! [`CoordinatorCore::poll_action`] and carries out (send a dispatch, deliver
//! a result). [`CoordinatorCore::next_wakeup`] says when to call
//! [`CoordinatorCore::tick`]: one shared deadline sweep for every job.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rustc_hash::FxHashMap;

use crate::error::SubmitError;
use crate::failure::{FailureCause, JobFailure};
use crate::job::{IdMap, Job, JobId, JobResult};
use crate::limits::{LimitEngine, LimitMsg};
use crate::stats::StatsSnapshot;
use crate::strategy::{Strategy, StrategyKind};

mod config;
mod dead_letter;
mod flow;
mod nodes;
mod ready;
mod selectors;
mod speculation;
mod timers;
mod window;

pub use config::{Backoff, CoordinatorConfig};
pub use dead_letter::{AttemptFailure, DeadLetter};
pub use nodes::{capacity_tag, NodeInfo, NodeLoad, NodeStatus, CAPACITY_TAG_PREFIX};
pub use selectors::{accept_tag, KindSelectors, Selector, ACCEPT_TAG_PREFIX};
pub use speculation::SpeculationConfig;
pub use window::{concurrency_tag, CONCURRENCY_TAG_PREFIX};

use dead_letter::DeadLetters;
use nodes::NodeTable;
use ready::ReadyQueue;
use speculation::Straggler;
use timers::{TimerKey, TimerKind, Timers};

/// An effect the caller must carry out.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Send `job` (its `attempt` set) to `worker@<node>`.
    Dispatch {
        /// The job, with the attempt number of this dispatch.
        job: Job,
        /// The chosen node.
        node: String,
    },
    /// Send the running attempt `attempt` of job `id` to `worker@<node>`;
    /// the job is read with [`CoordinatorCore::running_job`]. Emitted instead
    /// of [`Action::Dispatch`] by a core built
    /// [`with_dispatch_by_id`](CoordinatorCore::with_dispatch_by_id), so that
    /// no job is cloned per dispatch.
    DispatchId {
        /// The job.
        id: JobId,
        /// The attempt number of this dispatch.
        attempt: u32,
        /// The chosen node.
        node: Arc<str>,
    },
    /// The job's final result: emitted exactly once per accepted job.
    Complete(JobResult),
    /// An attempt failed (emitted only by a core built
    /// [`with_attempt_events`](CoordinatorCore::with_attempt_events), before
    /// the retry's dispatch or the job's [`Action::Complete`]). A refused
    /// dispatch is no attempt and emits nothing.
    AttemptFailed {
        /// The job.
        id: JobId,
        /// The attempt that failed.
        attempt: u32,
        /// The node it ran on, if it was dispatched.
        node: Option<Arc<str>>,
        /// Why it failed.
        cause: FailureCause,
    },
    /// Tell `worker@<node>` to stop attempt `attempt` of job `id`: the
    /// other attempt of a speculated job finished first, or the job ended
    /// while this one still ran (see `docs/jobs.md`, "Speculative backups").
    CancelAttempt {
        /// The job.
        id: JobId,
        /// The attempt to stop.
        attempt: u32,
        /// The node running it.
        node: Arc<str>,
    },
    /// The job failed for good and was added to the dead-letter list
    /// (emitted right after its [`Action::Complete`]).
    DeadLettered {
        /// The job.
        id: JobId,
        /// The attempts made.
        attempts: u32,
        /// The cause of the last failure.
        cause: FailureCause,
        /// The oldest dead letters dropped to keep the list within
        /// `max_dead_letters`.
        evicted: Vec<JobId>,
    },
}

/// What happened to a result handed to the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultDisposition {
    /// It answered the current attempt and was processed.
    Accepted,
    /// It was late (an earlier attempt, a finished job) or from the wrong
    /// node: dropped and counted.
    Dropped,
}

/// Where a job in progress stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// The current (or last) attempt number.
    pub attempt: u32,
    /// The node running it, if dispatched; `None` while waiting to retry
    /// or waiting in the ready queue for a node's window to open.
    pub node: Option<String>,
    /// Why earlier attempts failed.
    pub failures: Vec<AttemptFailure>,
}

#[derive(Debug)]
enum Phase {
    Pending,
    Running {
        node: Arc<str>,
        dispatched_at: Instant,
    },
    Backoff,
    /// In the ready queue: every eligible node's window is full.
    Queued,
}

#[derive(Debug)]
struct JobEntry {
    job: Job,
    phase: Phase,
    timer: Option<TimerKey>,
    /// What few jobs ever have (failed attempts, link-loss replacements,
    /// speculation), out of the live map's buckets: a bucket of the map
    /// is a cache miss when a job's result comes back, and the map's size
    /// (thousands of jobs in flight) decides how many of them miss
    /// (docs/performance.md, "Fourteenth round").
    rare: Option<Box<Rare>>,
}

/// The parts of a [`JobEntry`] that most jobs never use.
#[derive(Debug, Default)]
struct Rare {
    failures: Vec<AttemptFailure>,
    /// Attempts placed again after their link was lost that did not count
    /// against `max_attempts` (at most `FREE_REPLACEMENTS`).
    free_replacements: u8,
    /// The last attempt placed again after its link was lost, and its
    /// node: it may still have run there, and its success, if it comes
    /// first, completes the job.
    superseded: Option<(u32, Arc<str>)>,
    /// The speculation timer of the running attempt, if armed.
    spec_timer: Option<TimerKey>,
    /// Whether the job got its (one) speculative backup.
    speculated: bool,
    /// The original attempt, still running, of a job whose backup is the
    /// current attempt.
    straggler: Option<Straggler>,
}

impl JobEntry {
    fn new(job: Job) -> Self {
        JobEntry {
            job,
            phase: Phase::Pending,
            timer: None,
            rare: None,
        }
    }

    /// The rare parts, made on first use.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Why earlier attempts failed.
    fn failures(&self) -> &[AttemptFailure] {
        self.rare.as_deref().map_or(&[], |r| &r.failures)
    }

    fn free_replacements(&self) -> u8 {
        self.rare.as_deref().map_or(0, |r| r.free_replacements)
    }

    fn superseded(&self) -> Option<&(u32, Arc<str>)> {
        self.rare.as_deref().and_then(|r| r.superseded.as_ref())
    }

    fn speculated(&self) -> bool {
        self.rare.as_deref().is_some_and(|r| r.speculated)
    }

    fn straggler(&self) -> Option<&Straggler> {
        self.rare.as_deref().and_then(|r| r.straggler.as_ref())
    }

    fn take_straggler(&mut self) -> Option<Straggler> {
        self.rare.as_deref_mut().and_then(|r| r.straggler.take())
    }

    fn take_spec_timer(&mut self) -> Option<TimerKey> {
        self.rare.as_deref_mut().and_then(|r| r.spec_timer.take())
    }

    /// The failures, taken out.
    fn take_failures(&mut self) -> Vec<AttemptFailure> {
        self.rare
            .as_deref_mut()
            .map(|r| std::mem::take(&mut r.failures))
            .unwrap_or_default()
    }
}

/// What a coordinator keeps across a restart of its actor: the unfinished
/// jobs (to resubmit to a fresh core; dispatched and retrying ones first,
/// then the ready queue in order), the dead letters, the counters, the id
/// counter and whether it is draining. The scheduling state (timers,
/// windows, the node table) is rebuilt, not trusted.
#[derive(Debug, Default)]
pub(crate) struct Carryover {
    pub(crate) unfinished: Vec<Job>,
    dead: DeadLetters,
    counters: Counters,
    next_id: u64,
    draining: bool,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    retries: u64,
    late: u64,
    refusals: u64,
    speculative_started: u64,
    speculative_won: u64,
}

#[derive(Debug)]
struct Strategies {
    default: StrategyKind,
    custom: Option<Box<dyn Strategy>>,
    built: FxHashMap<StrategyKind, Box<dyn Strategy>>,
    seed: Option<u64>,
}

impl Strategies {
    fn get(&mut self, wanted: Option<StrategyKind>) -> &mut dyn Strategy {
        if wanted.is_none() {
            if let Some(custom) = &mut self.custom {
                return custom.as_mut();
            }
        }
        let kind = wanted.unwrap_or(self.default);
        let seed = self.seed;
        self.built
            .entry(kind)
            .or_insert_with(|| kind.build(seed))
            .as_mut()
    }
}

/// The sans-IO coordinator; see the crate guide and `docs/jobs.md`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use job_queue::{Action, CoordinatorConfig, CoordinatorCore, Job, JobResult, NodeInfo};
///
/// let mut core = CoordinatorCore::new(CoordinatorConfig { node: "node-a".into(), ..Default::default() });
/// let now = Instant::now();
/// core.update_node(NodeInfo::up("node-b", ["kind:echo"]), now);
/// let id = core.submit(Job::new("echo", "hi"), now).unwrap();
/// let Some(Action::Dispatch { job, node }) = core.poll_action() else { panic!() };
/// assert_eq!((job.attempt, node.as_str()), (1, "node-b"));
/// let result = JobResult::success(id, "hi", "node-b", 1, Duration::from_millis(1));
/// core.result_received(result.clone(), "node-b", now);
/// assert_eq!(core.poll_action(), Some(Action::Complete(result)));
/// ```
#[derive(Debug)]
pub struct CoordinatorCore {
    config: CoordinatorConfig,
    next_id: u64,
    /// Keyed by ids clients may choose: keyed hashing (SipHash, random
    /// per process), as for every map keyed by job ids in this crate.
    jobs: IdMap<JobEntry>,
    timers: Timers,
    nodes: NodeTable,
    strategies: Strategies,
    dead: DeadLetters,
    actions: VecDeque<Action>,
    /// Jobs waiting for a node's window to open, by priority with aging.
    ready: ReadyQueue,
    rng: StdRng,
    counters: Counters,
    dispatch_by_id: bool,
    attempt_events: bool,
    draining: bool,
    /// Cluster-wide limits: permits for limited kinds, and the jobs
    /// waiting for one.
    limits: LimitEngine,
    /// Jobs with a straggler and its backup both running.
    backups_in_flight: usize,
}

/// What [`CoordinatorCore::cancel`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The job was in progress and is now final (an [`Action::Complete`]
    /// with cause [`FailureCause::Cancelled`] was emitted). `running_on`
    /// names the node running its attempt, which should be told to stop it.
    Cancelled {
        /// The node and attempt running when it was cancelled.
        running_on: Option<(Arc<str>, u32)>,
    },
    /// The job is not in progress here (finished, or never seen).
    NotInProgress,
}

impl CoordinatorCore {
    /// A coordinator with no known nodes and no jobs.
    pub fn new(config: CoordinatorConfig) -> Self {
        let priority_aging = config.priority_aging;
        let limits = LimitEngine::new(config.node.clone(), config.limits.clone(), Instant::now());
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        CoordinatorCore {
            strategies: Strategies {
                default: config.strategy,
                custom: None,
                built: FxHashMap::default(),
                seed: config.seed,
            },
            nodes: NodeTable::new(config.default_window)
                .with_local(&config.node)
                .with_selectors(config.selectors.clone())
                .with_queue_target(config.queue_target),
            config,
            next_id: 0,
            jobs: IdMap::default(),
            timers: Timers::default(),
            dead: DeadLetters::default(),
            actions: VecDeque::new(),
            ready: ReadyQueue::new(priority_aging),
            rng,
            counters: Counters::default(),
            dispatch_by_id: false,
            attempt_events: false,
            draining: false,
            limits,
            backups_in_flight: 0,
        }
    }

    /// Emits [`Action::AttemptFailed`] for every failed attempt.
    pub fn with_attempt_events(mut self) -> Self {
        self.attempt_events = true;
        self
    }

    /// Emits [`Action::DispatchId`] instead of [`Action::Dispatch`]: the
    /// caller reads the job from the core instead of receiving a clone.
    pub fn with_dispatch_by_id(mut self) -> Self {
        self.dispatch_by_id = true;
        self
    }

    /// Makes generated ids start after `<node>-<counter>` (a restarted
    /// coordinator does not reuse the ids of the jobs it resumes).
    pub fn skip_generated_ids(&mut self, counter: u64) {
        self.next_id = self.next_id.max(counter);
    }

    /// The last counter used in a generated id.
    pub fn generated_ids(&self) -> u64 {
        self.next_id
    }

    /// Takes out what a restarted coordinator keeps (see [`Carryover`]),
    /// leaving this core without jobs.
    pub(crate) fn carry_over(&mut self) -> Carryover {
        let mut jobs = std::mem::take(&mut self.jobs);
        let queued: Vec<JobId> = self.ready.drain();
        let mut unfinished = Vec::with_capacity(jobs.len());
        let mut tail = Vec::with_capacity(queued.len());
        for id in &queued {
            if let Some(entry) = jobs.remove(id) {
                tail.push(entry.job);
            }
        }
        unfinished.extend(jobs.into_values().map(|entry| entry.job));
        unfinished.extend(tail);
        self.timers = Timers::default();
        self.backups_in_flight = 0;
        Carryover {
            unfinished,
            dead: std::mem::take(&mut self.dead),
            counters: std::mem::take(&mut self.counters),
            next_id: self.next_id,
            draining: self.draining,
        }
    }

    /// Gives a fresh core what its failed predecessor kept (dead letters,
    /// counters, the id counter, draining); returns the unfinished jobs,
    /// for [`resume_held`](Self::resume_held).
    pub(crate) fn restore(&mut self, carry: Carryover) -> Vec<Job> {
        self.dead = carry.dead;
        self.counters = carry.counters;
        self.next_id = self.next_id.max(carry.next_id);
        self.draining = carry.draining;
        carry.unfinished
    }

    /// Replaces the default strategy with a custom one (jobs naming a
    /// built-in strategy still get it).
    pub fn with_default_strategy(mut self, strategy: Box<dyn Strategy>) -> Self {
        self.strategies.custom = Some(strategy);
        self
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    // ---------- inputs: jobs ----------

    /// Accepts a job and places its first attempt; returns its id (generated
    /// as `<node>-<counter>` if the job's id is unassigned).
    ///
    /// If no Up node has the job's tags and serves its kind, the job fails
    /// at once: an [`Action::Complete`] with cause
    /// [`FailureCause::NoEligibleNode`] (not retried, not dead-lettered).
    /// If every eligible node's window is full, the job waits in the ready
    /// queue (FIFO) and is dispatched as results free credit.
    ///
    /// # Errors
    ///
    /// [`SubmitError`]: invalid job, duplicate id in progress, at capacity
    /// (jobs in progress, queued ones included, reached
    /// [`CoordinatorConfig::max_jobs`]), draining.
    pub fn submit(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        if self.draining {
            return Err(SubmitError::Draining {
                node: self.config.node.clone(),
            });
        }
        self.submit_held(job, now)
    }

    /// [`submit`](Self::submit) without the draining check: for jobs the
    /// coordinator already holds (resumed from its journal).
    pub(crate) fn submit_held(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        self.accept(job, now, true, None)
    }

    /// [`submit_held`](Self::submit_held) for a job already counted as
    /// submitted (resumed after a restart of this coordinator, whose
    /// counters were [restored](Self::restore)).
    pub(crate) fn resume_held(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        self.accept(job, now, false, None)
    }

    /// Takes `job` in; `eligible` is whether a node could run it, if the
    /// caller already asked.
    fn accept(
        &mut self,
        mut job: Job,
        now: Instant,
        count: bool,
        eligible: Option<bool>,
    ) -> Result<JobId, SubmitError> {
        job.validate()?;
        if self.jobs.len() >= self.config.max_jobs {
            return Err(SubmitError::AtCapacity {
                limit: self.config.max_jobs,
            });
        }
        if job.id.is_unassigned() {
            job.id = self.fresh_id();
        } else if self.jobs.contains_key(&job.id) {
            return Err(SubmitError::Duplicate(job.id));
        }
        job.attempt = 0;
        if count {
            self.counters.submitted += 1;
        }
        let id = job.id.clone();
        if !eligible.unwrap_or_else(|| self.nodes.any_eligible(&job)) {
            self.counters.failed += 1;
            let accept = self.nodes.required_tag(&job);
            let failure = no_eligible_node(&job, false, accept.as_deref());
            let result = JobResult::failure(id.clone(), failure, "", 0, Duration::ZERO);
            self.actions.push_back(Action::Complete(result));
            return Ok(id);
        }
        let entry = JobEntry::new(job);
        let wait = entry
            .job
            .not_before
            .map(|at| Duration::from_millis(at.saturating_sub(crate::job::unix_ms_now())))
            .filter(|wait| !wait.is_zero());
        self.jobs.insert(id.clone(), entry);
        match wait {
            // Delayed: waits like a retry in backoff, with no attempt made.
            Some(wait) => self.hold_until(&id, now + wait),
            None => self.dispatch(&id, now),
        }
        Ok(id)
    }

    /// Hands over a result received from `from_node`.
    ///
    /// Only a result for the job's current attempt, from the node that runs
    /// it, is processed; anything else (an earlier attempt, a job already
    /// finished, a stranger) is dropped and counted in
    /// [`StatsSnapshot::late_results`].
    pub fn result_received(
        &mut self,
        result: JobResult,
        from_node: &str,
        now: Instant,
    ) -> ResultDisposition {
        if self.is_superseded(&result, from_node) {
            return self.superseded_succeeded(result, from_node, now);
        }
        if self.is_straggler(&result, from_node) {
            self.straggler_answered(result, now);
            return ResultDisposition::Accepted;
        }
        if !self.is_current(&result.id, result.attempt, Some(from_node)) {
            self.counters.late += 1;
            tracing::debug!(id = %result.id, attempt = result.attempt, from_node, "late result dropped");
            return ResultDisposition::Dropped;
        }
        if result
            .error
            .as_ref()
            .is_some_and(|f| f.cause == FailureCause::Refused)
        {
            return self.attempt_refused(&result.id, result.attempt, from_node, now);
        }
        let (node, dispatched_at) = self.end_running(&result.id);
        if let Some(state) = self.nodes.get_mut(&node) {
            let round_trip = now.saturating_duration_since(dispatched_at);
            state.observe_latency(round_trip);
            state.observe_wait(round_trip.saturating_sub(result.elapsed));
            state.observe_link(round_trip.saturating_sub(result.elapsed), now);
            state.credit_returned();
        }
        match result.error.clone() {
            None => self.succeed(result, &node),
            Some(failure) => {
                let elapsed = Some(result.elapsed);
                self.fail_attempt(&result.id, Some(node), failure, elapsed, now, false);
            }
        }
        self.pump(now);
        ResultDisposition::Accepted
    }

    /// Reports that an attempt failed without a result from the worker, e.g.
    /// [`FailureCause::Undeliverable`] when the dispatch could not be sent.
    pub fn attempt_failed(
        &mut self,
        id: &JobId,
        attempt: u32,
        failure: JobFailure,
        now: Instant,
    ) -> ResultDisposition {
        if !self.is_current(id, attempt, None) {
            self.counters.late += 1;
            return ResultDisposition::Dropped;
        }
        let (node, _) = self.end_running(id);
        self.fail_attempt(id, Some(node), failure, None, now, false);
        self.pump(now);
        ResultDisposition::Accepted
    }

    /// The shared deadline sweep: times out overdue attempts and dispatches
    /// retries whose backoff has ended.
    pub fn tick(&mut self, now: Instant) {
        while let Some((id, kind)) = self.timers.pop_due(now) {
            let Some(entry) = self.jobs.get_mut(&id) else {
                continue;
            };
            if kind == TimerKind::Speculate {
                entry.take_spec_timer();
                self.speculate(&id, now);
                continue;
            }
            entry.timer = None;
            match kind {
                TimerKind::Deadline => self.time_out(&id, now),
                TimerKind::Retry => self.dispatch(&id, now),
                TimerKind::Speculate => {}
            }
        }
        self.pump(now);
    }

    /// When [`tick`](Self::tick) next has work, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---------- inputs: membership ----------

    /// The coordinator's own node's pool load (running, queued) as read in
    /// this process just now, used instead of the load it last reported
    /// (`None`: the reported one). Placement reads it; nothing else runs.
    pub(crate) fn set_local_live_load(&mut self, load: Option<(u32, u32)>) {
        self.nodes.set_local_live_load(load);
    }

    /// Adds or updates a node (status, tags, gossiped load). A node turning
    /// Down has its running attempts retried elsewhere at once.
    pub fn update_node(&mut self, info: NodeInfo, now: Instant) {
        let name = info.name.clone();
        let down = info.status == NodeStatus::Down;
        let lost = self.nodes.shape(&name).is_some_and(|(status, tags)| {
            status != NodeStatus::Down && (down || tags != info.tags.as_slice())
        });
        let live = info.status != NodeStatus::Down;
        self.limits.observe_node(&name, live, &info.tags, now);
        let previous = self.nodes.upsert(info);
        if down && previous != Some(NodeStatus::Down) {
            self.retry_running_on(&name, now);
        }
        if lost {
            self.release_stranded(now);
        }
        self.pump(now);
    }

    /// Replaces the node table: listed nodes are upserted, known nodes not
    /// listed are marked Down.
    pub fn set_nodes(&mut self, infos: Vec<NodeInfo>, now: Instant) {
        let missing: Vec<String> = self
            .nodes
            .names()
            .filter(|n| !infos.iter().any(|i| i.name == ***n))
            .map(|n| n.to_string())
            .collect();
        for name in missing {
            self.member_down(&name, now);
        }
        for info in infos {
            self.update_node(info, now);
        }
    }

    /// Marks a node Down and retries its running attempts elsewhere at once
    /// (cause [`FailureCause::NodeDown`]). Unknown nodes are ignored.
    pub fn member_down(&mut self, node: &str, now: Instant) {
        let Some(state) = self.nodes.get_mut(node) else {
            return;
        };
        if state.status != NodeStatus::Down {
            state.status = NodeStatus::Down;
            self.limits.observe_node(node, false, &[], now);
            self.retry_running_on(node, now);
            self.release_stranded(now);
            self.pump(now);
        }
    }

    /// The link to `node` was lost: the dispatch or the result of any
    /// attempt running there may have been in it, and would otherwise be
    /// waited for until the attempt's timeout. Each such attempt is placed
    /// again at once, on another eligible node when there is one (the
    /// failure, cause [`FailureCause::Undeliverable`], is recorded in the
    /// job's history). A job's first three such attempts do not count
    /// against its `max_attempts`; later ones do, so that a job whose
    /// dispatch keeps breaking links ends in the dead letters.
    ///
    /// The attempt that was running on `node` may still finish there: its
    /// success, if it arrives before the new attempt's result, completes
    /// the job; whichever result comes second is dropped as late. While no
    /// Up node can take the job but some Suspect one could (a link flap of
    /// the only node serving its kind), it waits in the ready queue.
    /// Unknown and Down nodes are ignored (a Down node's attempts were
    /// retried already).
    pub fn link_lost(&mut self, node: &str, now: Instant) {
        if self
            .nodes
            .get(node)
            .is_some_and(|state| state.status != NodeStatus::Down)
        {
            self.replace_running_on(node, now);
            self.pump(now);
        }
    }

    /// A message of the limits protocol from `limits@<from>` (the router
    /// vouches for `from`).
    pub(crate) fn limit_received(&mut self, from: &str, msg: LimitMsg, now: Instant) {
        self.limits.received(from, msg, now);
        self.pump(now);
    }

    /// The limits protocol's messages to send, to `limits@<node>`.
    pub(crate) fn take_limit_messages(&mut self) -> Vec<(String, LimitMsg)> {
        self.limits.take_outbox()
    }

    /// Feeds a round-trip measurement (e.g. a ping) into the node's EWMA.
    pub fn observe_latency(&mut self, node: &str, rtt: Duration) {
        if let Some(state) = self.nodes.get_mut(node) {
            state.observe_latency(rtt);
        }
    }

    // ---------- outputs and queries ----------

    /// The next action to carry out, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// All pending actions, oldest first.
    pub fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Whether `attempt` of job `id` is dispatched and not finished.
    pub fn is_running(&self, id: &JobId, attempt: u32) -> bool {
        self.is_current(id, attempt, None)
    }

    /// The job whose attempt `attempt` is running, if it still is.
    pub fn running_job(&self, id: &JobId, attempt: u32) -> Option<&Job> {
        let entry = self.jobs.get(id)?;
        let running = matches!(entry.phase, Phase::Running { .. }) && entry.job.attempt == attempt;
        running.then_some(&entry.job)
    }

    /// Whether some Up node has the job's tags and serves its kind now.
    pub fn has_eligible_node(&self, job: &Job) -> bool {
        self.nodes.any_eligible(job)
    }

    /// Whether every job in `jobs` has an eligible node (asked once per
    /// run of like jobs).
    pub fn all_have_eligible_nodes(&self, jobs: &[Job]) -> bool {
        !self.nodes.eligibility(jobs).contains(&false)
    }

    /// A job in progress (dispatched or waiting to retry).
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id).map(|e| &e.job)
    }

    /// Jobs in progress (dispatched or waiting to retry).
    pub fn in_progress(&self) -> usize {
        self.jobs.len()
    }

    /// Where a job in progress stands.
    pub fn job_status(&self, id: &JobId) -> Option<JobStatus> {
        let entry = self.jobs.get(id)?;
        let node = match &entry.phase {
            Phase::Running { node, .. } => Some(node.to_string()),
            Phase::Pending | Phase::Backoff | Phase::Queued => None,
        };
        Some(JobStatus {
            attempt: entry.job.attempt,
            node,
            failures: entry.failures().to_vec(),
        })
    }

    /// The dead-letter list, oldest first.
    pub fn dead_letters(&self) -> Vec<&DeadLetter> {
        self.dead.list()
    }

    /// One dead letter.
    pub fn dead_letter(&self, id: &JobId) -> Option<&DeadLetter> {
        self.dead.get(id)
    }

    /// Puts back dead letters read from a journal, oldest first; returns
    /// the ids dropped to keep the list within `max_dead_letters`.
    pub(crate) fn restore_dead_letters(&mut self, letters: Vec<DeadLetter>) -> Vec<JobId> {
        let mut evicted = Vec::new();
        for letter in letters {
            evicted.extend(self.dead.push(letter, self.config.max_dead_letters));
        }
        evicted
    }

    /// Removes a dead letter without resubmitting it.
    pub fn discard_dead_letter(&mut self, id: &JobId) -> Option<DeadLetter> {
        self.dead.remove(id)
    }

    /// Submits a dead-lettered job again, with fresh attempts and the same
    /// id, and removes it from the list.
    ///
    /// # Errors
    ///
    /// [`SubmitError::NotDeadLettered`] if there is no such dead letter, or
    /// any error of [`submit`](Self::submit) (the letter is then kept).
    pub fn resubmit_dead_letter(&mut self, id: &JobId, now: Instant) -> Result<JobId, SubmitError> {
        let job = match self.dead.get(id) {
            Some(letter) => letter.job.clone(),
            None => return Err(SubmitError::NotDeadLettered(id.clone())),
        };
        let id = self.submit(job, now)?;
        self.dead.remove(&id);
        Ok(id)
    }

    /// Late or duplicate results dropped so far.
    pub fn late_results(&self) -> u64 {
        self.counters.late
    }

    /// Counts `n` results dropped before they reached the core (e.g. results
    /// of an earlier incarnation of this coordinator) as late.
    pub fn count_late(&mut self, n: u64) {
        self.counters.late += n;
    }

    /// Statistics, per node and overall.
    pub fn stats(&self) -> StatsSnapshot {
        let nodes = self
            .nodes
            .iter()
            .map(|(name, n)| n.stats.snapshot(name, u64::from(n.outstanding), n.latency))
            .collect();
        StatsSnapshot {
            submitted: self.counters.submitted,
            succeeded: self.counters.succeeded,
            failed: self.counters.failed,
            cancelled: self.counters.cancelled,
            retries: self.counters.retries,
            in_progress: self.jobs.len() as u64,
            dead_letters: self.dead.len() as u64,
            late_results: self.counters.late,
            queued: self.ready.len() as u64,
            refusals: self.counters.refusals,
            waiting_for_limit: self.limits.parked() as u64,
            limits: self.limits.snapshot(),
            speculative_started: self.counters.speculative_started,
            speculative_won: self.counters.speculative_won,
            nodes,
        }
    }
}

mod link_loss;
mod transitions;

#[cfg(test)]
mod tests;

/// How many attempts of one job may be placed again after a lost link
/// without counting against its `max_attempts`.
pub(crate) const FREE_REPLACEMENTS: u8 = 3;

fn no_eligible_node(job: &Job, retrying: bool, accept: Option<&str>) -> JobFailure {
    let mut message = format!("no Up node serves kind {:?}", job.kind);
    if !job.tags.is_empty() {
        message.push_str(&format!(" with tags {:?}", job.tags));
    }
    if let Some(tag) = accept {
        message.push_str(&format!(" and accepts this job (tag {tag:?})"));
    }
    JobFailure {
        cause: FailureCause::NoEligibleNode,
        message,
        retryable: retrying,
    }
}
