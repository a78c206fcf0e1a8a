//! Lost links: attempts in flight on a link that broke are placed again at
//! once instead of waiting for their timeout; the superseded attempt may
//! still win with its own result.

use std::time::Instant;

use super::{AttemptFailure, CoordinatorCore, Phase, ResultDisposition, FREE_REPLACEMENTS};
use crate::failure::{FailureCause, JobFailure};
use crate::job::JobResult;

impl CoordinatorCore {
    /// Places again every attempt running on `node`, whose link was lost
    /// (see [`CoordinatorCore::link_lost`]).
    pub(super) fn replace_running_on(&mut self, node: &str, now: Instant) {
        self.drop_stragglers_on(node, FailureCause::Undeliverable);
        let ids = self.running_on(node);
        if !ids.is_empty() {
            tracing::info!(
                node,
                attempts = ids.len(),
                "link lost: placing its attempts again"
            );
        }
        for id in ids {
            let (node, _) = self.end_running(&id);
            let Some(entry) = self.jobs.get_mut(&id) else {
                continue;
            };
            let attempt = entry.job.attempt;
            let failure = JobFailure::new(
                FailureCause::Undeliverable,
                format!("the link to {node} was lost with attempt {attempt} in flight"),
            );
            let rare = entry.rare_mut();
            rare.superseded = Some((attempt, node.clone()));
            if rare.free_replacements >= FREE_REPLACEMENTS {
                self.fail_attempt(&id, Some(node), failure, None, now, true);
                continue;
            }
            rare.free_replacements += 1;
            rare.failures.push(AttemptFailure {
                attempt,
                node: Some(node.to_string()),
                failure,
            });
            self.counters.retries += 1;
            let waits =
                !self.nodes.any_eligible(&entry.job) && self.nodes.any_could_serve(&entry.job);
            if waits {
                // Only a Suspect node could take it (the one whose link
                // broke, say): wait for it rather than burn an attempt.
                entry.phase = Phase::Queued;
                // It failed once: never passed over as like another job.
                self.ready.push_back(id, None, entry.job.priority, now);
            } else {
                self.dispatch(&id, now);
            }
        }
    }

    /// Whether `result` is the success of the attempt of its job that was
    /// placed again after a lost link, from the node that ran it.
    pub(super) fn is_superseded(&self, result: &JobResult, from_node: &str) -> bool {
        result.error.is_none()
            && self.jobs.get(&result.id).is_some_and(|entry| {
                entry.superseded().is_some_and(|(attempt, node)| {
                    *attempt == result.attempt && **node == *from_node
                })
            })
    }

    /// The superseded attempt succeeded first: the job is complete; the
    /// attempt that replaced it is abandoned (its result will be late).
    pub(super) fn superseded_succeeded(
        &mut self,
        result: JobResult,
        from_node: &str,
        now: Instant,
    ) -> ResultDisposition {
        let Some(entry) = self.jobs.get_mut(&result.id) else {
            return ResultDisposition::Dropped;
        };
        if let Some(rare) = entry.rare.as_deref_mut() {
            rare.superseded = None;
        }
        match entry.phase {
            Phase::Running { .. } => {
                self.end_running(&result.id);
            }
            // Waiting in the ready queue (skipped once the job is gone) or
            // for a retry: its timer goes.
            _ => {
                if let Some(key) = entry.timer.take() {
                    self.timers.remove(key);
                }
            }
        }
        tracing::debug!(id = %result.id, attempt = result.attempt, from_node, "the superseded attempt finished first");
        self.succeed(result, from_node);
        self.pump(now);
        ResultDisposition::Accepted
    }
}

#[cfg(test)]
#[path = "link_loss_tests.rs"]
mod tests;
