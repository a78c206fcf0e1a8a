//! Speculative backups: an attempt of an idempotent job that runs much
//! longer than its kind usually takes on that node gets a second attempt
//! (the backup) on another node; whichever result comes first completes the
//! job, the other attempt is cancelled.
//!
//! - **Who.** Jobs with `speculative: true` (the submitter says running it
//!   twice is harmless) and jobs of a kind listed in
//!   [`SpeculationConfig::idempotent_kinds`]. Nothing else is ever run
//!   twice on purpose.
//! - **When.** At dispatch, an attempt gets a speculation timer at
//!   `max(multiple x p95, floor) + queue_target` after its dispatch, where
//!   `p95` is the kind's 95th percentile processing time on that node (once
//!   it has [`SpeculationConfig::min_samples`] samples; before that, the
//!   median of the other nodes' p95 for the kind; with no reference at all,
//!   no timer). The queue target is the wait the adaptive windows allow an
//!   attempt in the node's queue before it starts.
//! - **Bounded.** At most one backup per job, ever; at most
//!   `max(1, max_share x the Up nodes' windows)` backups in flight. A timer
//!   that fires while the cap is reached, or while no other eligible node
//!   has room, is armed again one `floor` later.
//! - **A backup is an attempt**: it has the next attempt number, its own
//!   timeout, is journaled and recorded like any attempt; it does not count
//!   against `max_attempts` (the budget grows by one for it).
//! - **The original (the straggler)** keeps its slot on its node. Its
//!   success completes the job and cancels the backup; its failure is
//!   recorded and the backup goes on. If the backup fails, the job is
//!   retried as usual while the straggler still runs: its success, if it
//!   comes first, completes the job. When the job ends in any way, a
//!   straggler still running is cancelled ([`Action::CancelAttempt`]) and its
//!   slot released; its late result is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::nodes::{candidate, NodeStatus};
use super::{Action, AttemptFailure, CoordinatorCore, JobEntry, Phase, TimerKind};
use crate::failure::{FailureCause, JobFailure};
use crate::job::{Job, JobId, JobResult};
use crate::strategy::Candidate;

/// Settings of speculative backups
/// ([`CoordinatorConfig::speculation`](super::CoordinatorConfig::speculation)).
#[derive(Clone, Debug, PartialEq)]
pub struct SpeculationConfig {
    /// Kinds whose jobs are all speculated (they are idempotent), besides
    /// jobs that ask for it with `speculative: true`.
    pub idempotent_kinds: Vec<String>,
    /// An attempt is a straggler after this multiple of its kind's p95 on
    /// its node (default 3).
    pub multiple: f64,
    /// The least time before a backup (default 100 ms): short jobs are not
    /// worth running twice.
    pub floor: Duration,
    /// The most backups in flight, as a share of the Up nodes' dispatch
    /// windows (default 0.1; at least one backup is always allowed).
    pub max_share: f64,
    /// Samples of a kind a node needs before its own p95 is used (default 5).
    pub min_samples: u64,
}

impl Default for SpeculationConfig {
    fn default() -> Self {
        SpeculationConfig {
            idempotent_kinds: Vec::new(),
            multiple: 3.0,
            floor: Duration::from_millis(100),
            max_share: 0.1,
            min_samples: 5,
        }
    }
}

/// The original attempt of a job that got a backup, still running.
#[derive(Debug)]
pub(super) struct Straggler {
    pub(super) attempt: u32,
    pub(super) node: Arc<str>,
}

impl CoordinatorCore {
    /// Whether `job` may be run twice at once.
    fn speculates(&self, job: &Job) -> bool {
        let marked =
            job.speculative || self.config.speculation.idempotent_kinds.contains(&job.kind);
        // A second attempt would take a second slot of a cluster-wide
        // limit: limited kinds are not backed up.
        marked && !self.limits.is_limited(&job.kind)
    }

    /// How long after its dispatch an attempt of `job` on `node` becomes a
    /// straggler, if the job may be speculated and a reference time exists.
    fn straggler_after(&self, job: &Job, node: &str) -> Option<Duration> {
        if !self.speculates(job) {
            return None;
        }
        let spec = &self.config.speculation;
        let own = self
            .nodes
            .get(node)?
            .stats
            .quantile_of(&job.kind, 0.95, spec.min_samples);
        let p95 = own.or_else(|| {
            let mut others: Vec<Duration> = self
                .nodes
                .iter()
                .filter(|(name, _)| &***name != node)
                .filter_map(|(_, n)| n.stats.quantile_of(&job.kind, 0.95, spec.min_samples))
                .collect();
            others.sort_unstable();
            others.get(others.len() / 2).copied()
        })?;
        let multiple = if spec.multiple.is_finite() {
            spec.multiple.clamp(1.0, 1e6)
        } else {
            3.0
        };
        let after = p95.mul_f64(multiple).max(spec.floor);
        Some(after + self.config.queue_target.unwrap_or_default())
    }

    /// Arms the speculation timer of the attempt of `id` just dispatched to
    /// `node`, if the job may get a backup.
    pub(super) fn arm_speculation(&mut self, id: &JobId, node: &str, now: Instant) {
        let Some(entry) = self.jobs.get(id) else {
            return;
        };
        if entry.speculated() {
            return;
        }
        let Some(after) = self.straggler_after(&entry.job, node) else {
            return;
        };
        let key = self
            .timers
            .insert(now + after, id.clone(), TimerKind::Speculate);
        if let Some(entry) = self.jobs.get_mut(id) {
            entry.rare_mut().spec_timer = Some(key);
        }
    }

    /// The most backups in flight now.
    fn backup_cap(&self) -> usize {
        let windows: u64 = self
            .nodes
            .iter()
            .filter(|(_, n)| n.status == NodeStatus::Up)
            .map(|(_, n)| u64::from(n.limit()))
            .sum();
        let share = self.config.speculation.max_share.clamp(0.0, 1.0);
        ((windows as f64 * share) as usize).max(1)
    }

    /// The speculation timer of `id` fired: starts its backup if it still
    /// runs its first placement, the cap allows and another node has room.
    pub(super) fn speculate(&mut self, id: &JobId, now: Instant) {
        let Some(entry) = self.jobs.get(id) else {
            return;
        };
        let Phase::Running { node: running, .. } = &entry.phase else {
            return;
        };
        // `speculates` again: a limit may have appeared since the timer was
        // armed.
        if entry.speculated() || entry.straggler().is_some() || !self.speculates(&entry.job) {
            return;
        }
        let running = running.clone();
        let chosen = if self.backups_in_flight >= self.backup_cap() {
            Err(true)
        } else {
            self.backup_node(id, &running)
        };
        let node = match chosen {
            Ok(node) => node,
            // Full: try again later. No other eligible node: give up.
            Err(retry) => {
                if retry {
                    let at = now + self.config.speculation.floor.max(Duration::from_millis(1));
                    let key = self.timers.insert(at, id.clone(), TimerKind::Speculate);
                    if let Some(entry) = self.jobs.get_mut(id) {
                        entry.rare_mut().spec_timer = Some(key);
                    }
                }
                return;
            }
        };
        self.start_backup(id, running, node, now);
    }

    /// The node for a backup of `id`: the job's strategy over the eligible
    /// nodes other than `running` that have room. `Err(true)`: none has
    /// room now; `Err(false)`: no other node is eligible.
    fn backup_node(&mut self, id: &JobId, running: &str) -> Result<Arc<str>, bool> {
        let entry = self.jobs.get(id).ok_or(false)?;
        let others: Vec<_> = self
            .nodes
            .preferred(&entry.job, |_| false, None)
            .into_iter()
            .filter(|(name, _)| *name != running)
            .collect();
        if others.is_empty() {
            return Err(false);
        }
        let candidates: Vec<Candidate<'_>> = others
            .into_iter()
            .filter(|(_, n)| n.has_credit())
            .map(|(name, n)| candidate(name, n, &entry.job.kind, 0))
            .collect();
        let strategy = self.strategies.get(entry.job.strategy);
        let picked = strategy
            .select(&entry.job, &candidates)
            .and_then(|i| candidates.get(i))
            .and_then(|c| self.nodes.key(c.node));
        picked.ok_or(true)
    }

    /// Dispatches the backup of `id` to `node`; the attempt on `running`
    /// becomes the straggler.
    fn start_backup(&mut self, id: &JobId, running: Arc<str>, node: Arc<str>, now: Instant) {
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        if let Some(key) = entry.timer.take() {
            self.timers.remove(key);
        }
        tracing::debug!(%id, attempt = entry.job.attempt, straggler = %running, backup = %node, "speculative backup");
        let attempt = entry.job.attempt;
        let rare = entry.rare_mut();
        rare.straggler = Some(Straggler {
            attempt,
            node: running,
        });
        rare.speculated = true;
        self.start_attempt(id, &node, now);
        self.backups_in_flight += 1;
        self.counters.speculative_started += 1;
    }

    /// Whether `result` answers the straggler of its job, from its node.
    pub(super) fn is_straggler(&self, result: &JobResult, from_node: &str) -> bool {
        self.jobs.get(&result.id).is_some_and(|entry| {
            entry
                .straggler()
                .is_some_and(|s| s.attempt == result.attempt && *s.node == *from_node)
        })
    }

    /// The straggler answered: a success completes the job (cancelling
    /// whatever attempt is running); a failure is recorded and the job goes
    /// on with its backup (or its retry).
    pub(super) fn straggler_answered(&mut self, result: JobResult, now: Instant) {
        let Some(entry) = self.jobs.get_mut(&result.id) else {
            return;
        };
        let Some(straggler) = entry.take_straggler() else {
            return;
        };
        self.backups_in_flight = self.backups_in_flight.saturating_sub(1);
        if let Some(state) = self.nodes.get_mut(&straggler.node) {
            state.outstanding = state.outstanding.saturating_sub(1);
            state.credit_returned();
        }
        match result.error.clone() {
            None => {
                tracing::debug!(id = %result.id, "the straggler finished before its backup");
                self.cancel_current(&result.id);
                self.succeed(result, &straggler.node);
            }
            Some(failure) => {
                if let Some(state) = self.nodes.get_mut(&straggler.node) {
                    state
                        .stats
                        .record(&entry.job.kind, false, Some(result.elapsed));
                }
                self.record_side_failure(&result.id, straggler, failure);
            }
        }
        self.pump(now);
    }

    /// Ends the job's current attempt, if one runs, with a cancel message
    /// to its node (the straggler won); a pending retry timer goes too.
    fn cancel_current(&mut self, id: &JobId) {
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        if matches!(entry.phase, Phase::Running { .. }) {
            let attempt = entry.job.attempt;
            let (node, _) = self.end_running(id);
            if let Some(state) = self.nodes.get_mut(&node) {
                state.credit_returned();
            }
            let failure = JobFailure::new(FailureCause::Cancelled, "the other attempt won");
            self.cancel_attempt(id, attempt, node, failure);
        } else if let Some(key) = entry.timer.take() {
            self.timers.remove(key);
        }
    }

    /// Tells `node` to stop `attempt` of `id` and records its end.
    fn cancel_attempt(&mut self, id: &JobId, attempt: u32, node: Arc<str>, failure: JobFailure) {
        self.record_side_failure(
            id,
            Straggler {
                attempt,
                node: node.clone(),
            },
            failure,
        );
        self.actions.push_back(Action::CancelAttempt {
            id: id.clone(),
            attempt,
            node,
        });
    }

    /// Records the end of an attempt that is not the job's current one.
    fn record_side_failure(&mut self, id: &JobId, attempt: Straggler, failure: JobFailure) {
        if self.attempt_events {
            self.actions.push_back(Action::AttemptFailed {
                id: id.clone(),
                attempt: attempt.attempt,
                node: Some(attempt.node.clone()),
                cause: failure.cause,
            });
        }
        if let Some(entry) = self.jobs.get_mut(id) {
            entry.rare_mut().failures.push(AttemptFailure {
                attempt: attempt.attempt,
                node: Some(attempt.node.to_string()),
                failure,
            });
        }
    }

    /// The job of `entry` is about to end (removed from the table): a
    /// straggler still running is cancelled and its slot released. `won`:
    /// the backup's success ends it.
    pub(super) fn end_straggler(&mut self, id: &JobId, entry: &mut JobEntry, won: bool) {
        let Some(straggler) = entry.take_straggler() else {
            return;
        };
        self.backups_in_flight = self.backups_in_flight.saturating_sub(1);
        if won {
            self.counters.speculative_won += 1;
        }
        if let Some(state) = self.nodes.get_mut(&straggler.node) {
            state.outstanding = state.outstanding.saturating_sub(1);
            state.credit_returned();
        }
        let message = if won {
            "the speculative backup finished first"
        } else {
            "the job ended"
        };
        let failure = JobFailure::new(FailureCause::Cancelled, message);
        if self.attempt_events {
            self.actions.push_back(Action::AttemptFailed {
                id: id.clone(),
                attempt: straggler.attempt,
                node: Some(straggler.node.clone()),
                cause: failure.cause,
            });
        }
        entry.rare_mut().failures.push(AttemptFailure {
            attempt: straggler.attempt,
            node: Some(straggler.node.to_string()),
            failure,
        });
        self.actions.push_back(Action::CancelAttempt {
            id: id.clone(),
            attempt: straggler.attempt,
            node: straggler.node,
        });
    }

    /// `node` went Down or its link was lost: stragglers running there
    /// will not answer (or may not); they are dropped, their jobs go on.
    pub(super) fn drop_stragglers_on(&mut self, node: &str, cause: FailureCause) {
        let mut ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.straggler().is_some_and(|s| &*s.node == node))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(straggler) = self.jobs.get_mut(&id).and_then(JobEntry::take_straggler) else {
                continue;
            };
            self.backups_in_flight = self.backups_in_flight.saturating_sub(1);
            if let Some(state) = self.nodes.get_mut(&straggler.node) {
                state.outstanding = state.outstanding.saturating_sub(1);
            }
            let failure = JobFailure::new(cause, format!("node {node} lost"));
            self.record_side_failure(&id, straggler, failure);
        }
    }
}

#[cfg(test)]
#[path = "speculation_tests.rs"]
mod tests;
