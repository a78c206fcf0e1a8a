//! The coordinator's internal state transitions (dispatch, success,
//! failure, retry, dead letter), kept apart from its public inputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::nodes::candidate;
use super::{
    no_eligible_node, Action, AttemptFailure, Cancelled, CoordinatorCore, DeadLetter, JobEntry,
    Phase, TimerKind,
};
use crate::failure::{FailureCause, JobFailure};
use crate::job::{JobId, JobResult};
use crate::strategy::{Candidate, Strategy};

impl CoordinatorCore {
    /// A generated id not used by any job in progress.
    pub(super) fn fresh_id(&mut self) -> JobId {
        loop {
            self.next_id += 1;
            let id = JobId::generated(&self.config.node, self.next_id);
            if !self.jobs.contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether `attempt` of `id` is running (on `node`, when given).
    pub(super) fn is_current(&self, id: &JobId, attempt: u32, node: Option<&str>) -> bool {
        match self.jobs.get(id) {
            Some(JobEntry {
                job,
                phase: Phase::Running { node: running, .. },
                ..
            }) => job.attempt == attempt && node.is_none_or(|n| n == &**running),
            _ => false,
        }
    }

    /// Ends the running attempt of `id`: cancels its deadline and releases
    /// the node's slot. Callers check [`is_current`](Self::is_current) first.
    pub(super) fn end_running(&mut self, id: &JobId) -> (Arc<str>, Instant) {
        let entry = self
            .jobs
            .get_mut(id)
            .expect("caller checked the job exists");
        if let Some(key) = entry.timer.take() {
            self.timers.remove(key);
        }
        if let Some(key) = entry.take_spec_timer() {
            self.timers.remove(key);
        }
        let Phase::Running {
            node,
            dispatched_at,
        } = std::mem::replace(&mut entry.phase, Phase::Pending)
        else {
            unreachable!("caller checked the job is running");
        };
        if let Some(state) = self.nodes.get_mut(&node) {
            state.outstanding = state.outstanding.saturating_sub(1);
        }
        if !self.limits.is_idle() {
            self.limits.finished(&entry.job.kind);
        }
        (node, dispatched_at)
    }

    /// Starts the next attempt of `id` on a node chosen by its strategy, or
    /// queues it in the ready queue if every eligible node's window is full.
    pub(super) fn dispatch(&mut self, id: &JobId, now: Instant) {
        let Some(entry) = self.jobs.get(id) else {
            return;
        };
        let class = entry
            .failures()
            .is_empty()
            .then(|| super::ready::class_of(&entry.job.kind, &entry.job.tags));
        // Jobs like this one already wait: every pass of the queue since
        // they were queued found no room for them (`pump` runs whenever
        // room opens), so this one waits behind them, in order, without a
        // placement of its own.
        let placed = match class {
            Some(class) if self.ready.has_class(class) => Placement::Busy,
            _ => self.try_place(id, now),
        };
        match placed {
            Placement::Busy => {
                if let Some(entry) = self.jobs.get_mut(id) {
                    entry.phase = Phase::Queued;
                    self.ready
                        .push_back(id.clone(), class, entry.job.priority, now);
                }
            }
            Placement::Limited => self.park_limited(id),
            Placement::Started | Placement::Failed | Placement::Gone => {}
        }
    }

    /// Parks a job that waits for a permit of its kind's cluster-wide
    /// limit (queued, outside the ready queue).
    pub(super) fn park_limited(&mut self, id: &JobId) {
        if let Some(entry) = self.jobs.get_mut(id) {
            entry.phase = Phase::Queued;
            self.limits.park(&entry.job.kind, id.clone());
        }
    }

    /// Places parked jobs whose kind has a permit free again.
    pub(super) fn wake_limited(&mut self, now: Instant) {
        if self.limits.is_idle() {
            return;
        }
        self.limits.run(now);
        let mut budget = self.jobs.len() + 1;
        while budget > 0 {
            budget -= 1;
            let Some(id) = self.limits.next_startable(now) else {
                break;
            };
            if self
                .jobs
                .get(&id)
                .is_some_and(|e| matches!(e.phase, Phase::Queued))
            {
                self.dispatch(&id, now);
            }
        }
        self.limits.run(now);
    }

    /// Holds a job that must not start before `at` (its `not_before`): it
    /// waits like a retry in backoff, then is placed like any other.
    pub(super) fn hold_until(&mut self, id: &JobId, at: Instant) {
        if let Some(entry) = self.jobs.get_mut(id) {
            entry.phase = Phase::Backoff;
            entry.timer = Some(self.timers.insert(at, id.clone(), TimerKind::Retry));
        }
    }

    /// Starts the next attempt of `id` if a preferred eligible node has
    /// credit; fails the attempt if no node is eligible at all.
    pub(super) fn try_place(&mut self, id: &JobId, now: Instant) -> Placement {
        let Some(entry) = self.jobs.get_mut(id) else {
            return Placement::Gone;
        };
        let backlog = u32::try_from(self.ready.len()).unwrap_or(u32::MAX);
        let strategy = self.strategies.get(entry.job.strategy);
        let chosen = choose_node(&self.nodes, strategy, entry, backlog);
        let node = match chosen {
            Choice::Node(node) if !self.limits.is_idle() => {
                if !self.limits.may_start(&entry.job.kind, now) {
                    return Placement::Limited;
                }
                self.limits.start(&entry.job.kind);
                node
            }
            Choice::Node(node) => node,
            Choice::Busy => return Placement::Busy,
            Choice::NoneEligible => {
                entry.job.attempt += 1;
                let accept = self.nodes.required_tag(&entry.job);
                let failure = no_eligible_node(&entry.job, true, accept.as_deref());
                self.fail_attempt(id, None, failure, None, now, false);
                return Placement::Failed;
            }
        };
        self.start_attempt(id, &node, now);
        self.arm_speculation(id, &node, now);
        Placement::Started
    }

    /// Starts the next attempt of `id` on `node` now: its number, its
    /// deadline, the dispatch action, the node's outstanding count.
    pub(super) fn start_attempt(&mut self, id: &JobId, node: &Arc<str>, now: Instant) {
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        entry.job.attempt += 1;
        // Attempts with the same timeout share a FIFO lane of the timers.
        entry.timer =
            Some(
                self.timers
                    .insert_after(now, entry.job.timeout, id.clone(), TimerKind::Deadline),
            );
        entry.phase = Phase::Running {
            node: node.clone(),
            dispatched_at: now,
        };
        let action = if self.dispatch_by_id {
            Action::DispatchId {
                id: id.clone(),
                attempt: entry.job.attempt,
                node: node.clone(),
            }
        } else {
            Action::Dispatch {
                job: entry.job.clone(),
                node: node.to_string(),
            }
        };
        if let Some(state) = self.nodes.get_mut(node) {
            state.outstanding += 1;
        }
        self.actions.push_back(action);
    }

    /// Completes a job whose current attempt succeeded.
    pub(super) fn succeed(&mut self, result: JobResult, node: &str) {
        let Some(mut entry) = self.jobs.remove(&result.id) else {
            return;
        };
        self.end_straggler(&result.id, &mut entry, true);
        if let Some(state) = self.nodes.get_mut(node) {
            state
                .stats
                .record(&entry.job.kind, true, Some(result.elapsed));
        }
        self.counters.succeeded += 1;
        self.actions.push_back(Action::Complete(result));
    }

    /// Records a failed attempt, then retries (after backoff, or at once if
    /// `immediate`) or finishes the job as failed.
    pub(super) fn fail_attempt(
        &mut self,
        id: &JobId,
        node: Option<Arc<str>>,
        failure: JobFailure,
        elapsed: Option<Duration>,
        now: Instant,
        immediate: bool,
    ) {
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        if let Some(state) = node.as_deref().and_then(|n| self.nodes.get_mut(n)) {
            state.stats.record(&entry.job.kind, false, elapsed);
        }
        let budget = entry.job.max_attempts
            + u32::from(entry.free_replacements())
            + u32::from(entry.speculated());
        let retry = failure.retryable && entry.job.attempt < budget;
        tracing::debug!(%id, attempt = entry.job.attempt, %failure, retry, "attempt failed");
        if self.attempt_events {
            self.actions.push_back(Action::AttemptFailed {
                id: id.clone(),
                attempt: entry.job.attempt,
                node: node.clone(),
                cause: failure.cause,
            });
        }
        let attempt = entry.job.attempt;
        let failures = &mut entry.rare_mut().failures;
        failures.push(AttemptFailure {
            attempt,
            node: node.map(|n| n.to_string()),
            failure,
        });
        // The retry after `n` failed attempts is retry `n - 1`.
        let retry_number = (failures.len() as u32).saturating_sub(1);
        if !retry {
            self.finish_failed(id, elapsed.unwrap_or_default());
            return;
        }
        self.counters.retries += 1;
        let delay = if immediate {
            Duration::ZERO
        } else {
            self.config.backoff.delay_with(retry_number, &mut self.rng)
        };
        if delay.is_zero() {
            self.dispatch(id, now);
        } else {
            entry.phase = Phase::Backoff;
            entry.timer = Some(
                self.timers
                    .insert(now + delay, id.clone(), TimerKind::Retry),
            );
        }
    }

    /// Cancels a job in progress: it ends at once with a
    /// [`FailureCause::Cancelled`] result (not retried, not dead-lettered);
    /// a running attempt's slot is released and its late result dropped.
    pub fn cancel(&mut self, id: &JobId, now: Instant) -> Cancelled {
        let Some(entry) = self.jobs.get(id) else {
            return Cancelled::NotInProgress;
        };
        let attempt = entry.job.attempt;
        let phase = match entry.phase {
            Phase::Running { .. } => 0,
            Phase::Queued => 1,
            Phase::Pending | Phase::Backoff => 2,
        };
        let running_on = match phase {
            0 => {
                let (node, _) = self.end_running(id);
                if let Some(state) = self.nodes.get_mut(&node) {
                    state.credit_returned();
                }
                Some((node, attempt))
            }
            1 => {
                self.ready.remove(id);
                if let Some(entry) = self.jobs.get(id) {
                    self.limits.unpark(&entry.job.kind, id);
                }
                None
            }
            _ => None,
        };
        let Some(mut entry) = self.jobs.remove(id) else {
            return Cancelled::NotInProgress;
        };
        if let Some(key) = entry.timer.take() {
            self.timers.remove(key);
        }
        self.end_straggler(id, &mut entry, false);
        self.counters.failed += 1;
        self.counters.cancelled += 1;
        let node = running_on.as_ref().map_or("", |(n, _)| &**n).to_owned();
        let failure = JobFailure::new(FailureCause::Cancelled, "cancelled");
        let result = JobResult::failure(id.clone(), failure, node, attempt, Duration::ZERO);
        self.actions.push_back(Action::Complete(result));
        self.pump(now);
        Cancelled::Cancelled { running_on }
    }

    /// Completes a job as failed and moves it to the dead-letter list.
    fn finish_failed(&mut self, id: &JobId, elapsed: Duration) {
        let Some(mut entry) = self.jobs.remove(id) else {
            return;
        };
        // The straggler's cancellation is recorded before the failure
        // that ends the job, which stays the last one.
        let mut failures = entry.take_failures();
        let last_failure = failures.pop();
        self.end_straggler(id, &mut entry, false);
        failures.extend(entry.take_failures());
        failures.extend(last_failure);
        let last = failures.last().expect("a failed job has a failure");
        let cause = last.failure.cause;
        let attempts = entry.job.attempt;
        let node = last.node.clone().unwrap_or_default();
        let result = JobResult::failure(id.clone(), last.failure.clone(), node, attempts, elapsed);
        self.counters.failed += 1;
        self.actions.push_back(Action::Complete(result));
        let letter = DeadLetter {
            job: entry.job,
            failures,
        };
        let evicted = self.dead.push(letter, self.config.max_dead_letters);
        self.actions.push_back(Action::DeadLettered {
            id: id.clone(),
            attempts,
            cause,
            evicted,
        });
    }

    /// The running attempt of `id` missed its deadline.
    pub(super) fn time_out(&mut self, id: &JobId, now: Instant) {
        let Some(entry) = self.jobs.get(id) else {
            return;
        };
        if !matches!(entry.phase, Phase::Running { .. }) {
            return;
        }
        let timeout_ms = entry.job.timeout.as_millis();
        let (node, dispatched_at) = self.end_running(id);
        let failure = JobFailure::new(
            FailureCause::Timeout,
            format!("no result from {node} within {timeout_ms} ms"),
        );
        let waited = now.saturating_duration_since(dispatched_at);
        self.fail_attempt(id, Some(node), failure, Some(waited), now, false);
    }

    /// The jobs with an attempt running on `node`, in id order
    /// (deterministic).
    pub(super) fn running_on(&self, node: &str) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, e)| matches!(&e.phase, Phase::Running { node: n, .. } if &**n == node))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Fails every attempt running on `node` with `NodeDown` and retries it
    /// at once, in id order (deterministic).
    pub(super) fn retry_running_on(&mut self, node: &str, now: Instant) {
        self.drop_stragglers_on(node, FailureCause::NodeDown);
        for id in self.running_on(node) {
            let (node, _) = self.end_running(&id);
            let failure = JobFailure::new(FailureCause::NodeDown, format!("node {node} went down"));
            self.fail_attempt(&id, Some(node), failure, None, now, true);
        }
    }
}

/// What [`CoordinatorCore::try_place`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// An attempt was dispatched.
    Started,
    /// Every preferred eligible node's window is full: the job waits.
    Busy,
    /// No node is eligible: the attempt failed (and may be retried).
    Failed,
    /// The job's kind has no cluster-wide permit free: the job waits.
    Limited,
    /// The job is no longer in progress.
    Gone,
}

enum Choice {
    Node(Arc<str>),
    Busy,
    NoneEligible,
}

/// Runs the job's strategy over its preferred eligible candidates that
/// have room in their window (and, for a strategy that waits for full
/// nodes, those without: picking one of them makes the job wait).
fn choose_node(
    nodes: &super::NodeTable,
    strategy: &mut dyn Strategy,
    entry: &JobEntry,
    backlog: u32,
) -> Choice {
    let tried = |n: &str| {
        entry
            .failures()
            .iter()
            .any(|f| f.node.as_deref() == Some(n))
    };
    let last_failed = entry.failures().last().and_then(|f| f.node.as_deref());
    let preferred = nodes.preferred(&entry.job, tried, last_failed);
    if preferred.is_empty() {
        return Choice::NoneEligible;
    }
    let waits = strategy.waits_for_full_nodes();
    // Filled in place: a collected SmallVec of 8 candidates (848 bytes)
    // was copied twice per placement on its way out of `collect`.
    let mut candidates: smallvec::SmallVec<[Candidate<'_>; 8]> = smallvec::SmallVec::new();
    candidates.extend(
        preferred
            .into_iter()
            .filter(|(_, n)| waits || n.has_credit())
            .map(|(k, n)| {
                let mut c = candidate(k, n, &entry.job.kind, backlog);
                if nodes.is_local(k) {
                    // In-process: no network round trip. The measured EWMA
                    // (dispatch to result) holds the node's queueing and
                    // service time, which the strategies count on their own.
                    c.latency = Some(std::time::Duration::ZERO);
                    c.link_rtt = Some(std::time::Duration::ZERO);
                    // Its load now, not its last report.
                    if let Some((in_flight, queue_depth)) = nodes.local_live_load() {
                        c.reported_in_flight = in_flight;
                        c.reported_queue_depth = queue_depth;
                    }
                }
                c
            }),
    );
    if !candidates.iter().any(|c| c.has_room) {
        return Choice::Busy;
    }
    let Some(chosen) = strategy
        .select(&entry.job, &candidates)
        .and_then(|i| candidates.get(i))
    else {
        // A strategy that declines every candidate: as if none were eligible.
        return Choice::NoneEligible;
    };
    if !chosen.has_room {
        // Better to wait for this node than to run elsewhere now.
        return Choice::Busy;
    }
    let picked = nodes.key(chosen.node);
    // A strategy that declines every candidate: as if none were eligible.
    picked.map_or(Choice::NoneEligible, Choice::Node)
}
