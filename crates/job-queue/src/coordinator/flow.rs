//! Flow control: per-node dispatch windows (credits), the ready queue of
//! jobs waiting for a window to open, refusals by full worker pools (which
//! do not count as attempts), batched submissions and draining.

use std::time::{Duration, Instant};

use super::ready::Ready;
use super::transitions::Placement;
use super::{no_eligible_node, Action, CoordinatorCore, Phase, ResultDisposition, TimerKind};
use crate::error::SubmitError;
use crate::job::{IdSet, Job, JobId, JobResult};

/// Most ready-queue entries passed over (their nodes are full) in one
/// pump, so that a blocked head costs a bounded amount per freed credit.
const MAX_BLOCKED_SCAN: usize = 64;

impl CoordinatorCore {
    /// Dispatches queued jobs, oldest first, while some node has credit.
    ///
    /// Jobs whose nodes are all full stay in place (in order); at most
    /// [`MAX_BLOCKED_SCAN`] of them are passed over per call. Jobs like one
    /// already found blocked (same kind and tags, no earlier failure) are
    /// passed over without running the strategy.
    pub(super) fn pump(&mut self, now: Instant) {
        self.wake_limited(now);
        if self.ready.is_empty() || !self.nodes.any_credit() {
            return;
        }
        let mut blocked: Vec<Ready> = Vec::new();
        // Classes (kind and tags) of jobs found blocked in this pass.
        let mut blocked_classes: Vec<u64> = Vec::new();
        while let Some(ready) = self.ready.pop_front(now) {
            // A job like one already found blocked is passed over without
            // looking it up (a gone or placed job's entry is dropped when
            // a later pass reaches it).
            let known_blocked = ready.class.is_some_and(|c| blocked_classes.contains(&c));
            let placed = if known_blocked {
                Placement::Busy
            } else {
                let Some(entry) = self.jobs.get(&ready.id) else {
                    continue;
                };
                if !matches!(entry.phase, Phase::Queued) {
                    continue;
                }
                let placed = self.try_place(&ready.id, now);
                if let (Placement::Busy, Some(class)) = (placed, ready.class) {
                    blocked_classes.push(class);
                }
                placed
            };
            if placed == Placement::Limited {
                self.park_limited(&ready.id);
            } else if placed == Placement::Busy {
                blocked.push(ready);
                // Stop when nothing queued could fare better: every job
                // left is like one found blocked (the common case of one
                // kind of job waiting for full nodes: no pass over them).
                if blocked.len() >= MAX_BLOCKED_SCAN || self.ready.only_classes_in(&blocked_classes)
                {
                    break;
                }
            }
            if !self.nodes.any_credit() {
                break;
            }
        }
        for ready in blocked.into_iter().rev() {
            self.ready.push_front(ready);
        }
    }

    /// Takes out of the ready queue the jobs no node can serve any more
    /// (every node with their tags and kind is Down, or stopped serving
    /// the kind): a job that never ran fails at once like a submission with
    /// no eligible node (not retried, not dead-lettered); a job waiting to
    /// retry has that attempt fail with a retryable `no_eligible_node`, as
    /// a retry finding no node does. Called when a node goes Down or its
    /// tags change; Suspect nodes still count, they may come back.
    pub(super) fn release_stranded(&mut self, now: Instant) {
        if self.ready.is_empty() {
            return;
        }
        let (jobs, nodes) = (&self.jobs, &self.nodes);
        let stranded = |id: &JobId| {
            jobs.get(id)
                .is_some_and(|e| matches!(e.phase, Phase::Queued) && !nodes.any_could_serve(&e.job))
        };
        let gone = self.ready.take_where(stranded);
        for id in gone {
            let fresh = self.jobs.get(&id).is_some_and(|e| e.failures().is_empty());
            if fresh {
                self.fail_unplaced(&id);
            } else {
                self.try_place(&id, now);
            }
        }
    }

    /// Fails a job that never ran: no eligible node, attempt 0.
    fn fail_unplaced(&mut self, id: &JobId) {
        let Some(entry) = self.jobs.remove(id) else {
            return;
        };
        self.counters.failed += 1;
        let accept = self.nodes.required_tag(&entry.job);
        let failure = no_eligible_node(&entry.job, false, accept.as_deref());
        let result = JobResult::failure(id.clone(), failure, "", 0, Duration::ZERO);
        self.actions.push_back(Action::Complete(result));
    }

    /// Reports that `from_node`'s worker pool refused attempt `attempt` of
    /// `id` because its queue was full (or it is draining): the job never
    /// ran there, so the attempt is not counted. The node's window is
    /// halved (it grows back by one per accepted result) and the job is
    /// placed again after [`CoordinatorConfig::refusal_backoff`](super::CoordinatorConfig::refusal_backoff).
    ///
    /// [`result_received`](Self::result_received) calls this for a result
    /// whose cause is [`FailureCause::Refused`](crate::FailureCause::Refused).
    pub fn attempt_refused(
        &mut self,
        id: &JobId,
        attempt: u32,
        from_node: &str,
        now: Instant,
    ) -> ResultDisposition {
        if !self.is_current(id, attempt, Some(from_node)) {
            self.counters.late += 1;
            return ResultDisposition::Dropped;
        }
        let (node, _) = self.end_running(id);
        if let Some(state) = self.nodes.get_mut(&node) {
            state.refused();
        }
        self.counters.refusals += 1;
        tracing::debug!(%id, attempt, %node, "attempt refused by a full pool; not counted");
        let backoff = self.config.refusal_backoff;
        if let Some(entry) = self.jobs.get_mut(id) {
            entry.job.attempt = entry.job.attempt.saturating_sub(1);
            entry.phase = Phase::Backoff;
            let key = self
                .timers
                .insert_after(now, backoff, id.clone(), TimerKind::Retry);
            entry.timer = Some(key);
        }
        self.pump(now);
        ResultDisposition::Accepted
    }

    /// Accepts a batch of jobs, all or none: every job is checked (valid,
    /// id not in progress nor repeated in the batch, room for the whole
    /// batch) before any is accepted. Returns the ids in batch order.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Draining`], [`SubmitError::AtCapacity`] for the whole
    /// batch, or [`SubmitError::InBatch`] naming the first refused job.
    pub fn submit_batch(
        &mut self,
        jobs: Vec<Job>,
        now: Instant,
    ) -> Result<Vec<JobId>, SubmitError> {
        if self.draining {
            return Err(SubmitError::Draining {
                node: self.config.node.clone(),
            });
        }
        if self.jobs.len().saturating_add(jobs.len()) > self.config.max_jobs {
            return Err(SubmitError::AtCapacity {
                limit: self.config.max_jobs,
            });
        }
        let mut explicit = IdSet::with_capacity_and_hasher(jobs.len(), Default::default());
        for (index, job) in jobs.iter().enumerate() {
            let refused = |source: SubmitError| SubmitError::InBatch {
                index,
                source: Box::new(source),
            };
            job.validate().map_err(|e| refused(e.into()))?;
            if job.id.is_unassigned() {
                continue;
            }
            if self.jobs.contains_key(&job.id) || !explicit.insert(job.id.clone()) {
                return Err(refused(SubmitError::Duplicate(job.id.clone())));
            }
        }
        let eligible = self.nodes.eligibility(&jobs);
        let mut ids = Vec::with_capacity(jobs.len());
        for (mut job, eligible) in jobs.into_iter().zip(eligible) {
            if job.id.is_unassigned() {
                job.id = self.fresh_id();
                while explicit.contains(&job.id) {
                    job.id = self.fresh_id();
                }
            }
            // Cannot fail: every check above holds for each job.
            ids.push(self.accept(job, now, true, Some(eligible))?);
        }
        Ok(ids)
    }

    /// Starts (or ends) draining: new submissions are refused with
    /// [`SubmitError::Draining`]; jobs in progress go on to completion.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether the coordinator is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Jobs waiting in the ready queue for a node's window to open.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// The effective dispatch window of `node` (its advertised
    /// `capacity:<n>`, or the default, reduced after refusals), if known.
    pub fn window(&self, node: &str) -> Option<u32> {
        self.nodes.get(node).map(|n| n.limit())
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
