//! The edge of the coordinator: idempotent submission, explicit re-runs,
//! job records (`get`), cancellation, `attach` and `discard`, for local
//! calls and for envelopes from clients and other coordinators.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::{Envelope, PayloadFormat};
use tokio::sync::{mpsc, oneshot};

use super::super::fanout::{self, CancelReport, Lookup, MAX_IDS};
use super::super::journal::{Ack, Record};
use super::super::{Accepted, AcceptedMany};
use super::{Shell, Waiter};
use crate::coordinator::Cancelled;
use crate::error::SubmitError;
use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::record::{LiveStatus, ProgressRecord};

/// Most further waiters (idempotent submissions, attachments) held at once.
const MAX_EXTRA_WAITERS: usize = 1 << 20;

/// What happened to one id of a cancellation.
enum CancelOutcome {
    Cancelled,
    Final,
    Unknown,
}

impl Shell {
    /// Adds a waiter to a known job: answered at once when it is final.
    /// Returns `false` (and drops the waiter) when too many are held.
    pub(super) fn add_waiter(&mut self, id: &JobId, waiter: Waiter) -> bool {
        if let Some(result) = self.final_result(id) {
            self.deliver(waiter, result);
            return true;
        }
        if self.extra_count >= MAX_EXTRA_WAITERS {
            return false;
        }
        self.extra_count += 1;
        self.extra.entry(id.clone()).or_default().push(waiter);
        true
    }

    /// The final result of a finished job within retention.
    fn final_result(&self, id: &JobId) -> Option<JobResult> {
        self.records.finished(id)?.result
    }

    /// A local submission of a known id: the caller waits for that job.
    pub(super) fn attach_local(
        &mut self,
        id: JobId,
        progress: Option<mpsc::Sender<ProgressUpdate>>,
    ) -> Accepted {
        let (tx, rx) = oneshot::channel();
        if self.add_waiter(&id, Waiter::Local { tx, progress }) {
            Ok((id, rx))
        } else {
            Err(SubmitError::AtCapacity {
                limit: MAX_EXTRA_WAITERS,
            })
        }
    }

    /// `submit_many`: new jobs are accepted as a batch (all or none), known
    /// ids wait for their job; the answer keeps the batch's order.
    pub(super) fn submit_many_call(
        &mut self,
        jobs: Vec<Job>,
        reply: oneshot::Sender<AcceptedMany>,
        now: Instant,
    ) {
        let mut order: Vec<Result<usize, JobId>> = Vec::with_capacity(jobs.len());
        let mut fresh = Vec::with_capacity(jobs.len());
        for job in jobs {
            if !job.id.is_unassigned() && self.records.contains(&job.id) {
                order.push(Err(job.id));
            } else {
                order.push(Ok(fresh.len()));
                fresh.push(job);
            }
        }
        let any_fresh = !fresh.is_empty();
        let ids = match self.submit_batch_fresh(fresh, now) {
            Ok(ids) => ids,
            Err(err) => {
                let _ = reply.send(Err(err));
                return;
            }
        };
        let mut pending = Vec::with_capacity(order.len());
        for entry in order {
            let accepted = match entry {
                Ok(index) => {
                    let id = ids[index].clone();
                    let (tx, rx) = oneshot::channel();
                    self.wait_for(id.clone(), Waiter::Local { tx, progress: None });
                    self.journal_submit(&id);
                    Ok((id, rx))
                }
                Err(id) => self.attach_local(id, None),
            };
            match accepted {
                Ok(one) => pending.push(one),
                Err(err) => {
                    let _ = reply.send(Err(err));
                    return;
                }
            }
        }
        if self.journal.is_some() && any_fresh {
            self.journal_batch.acks.push(Ack::Many(reply, Ok(pending)));
        } else {
            let _ = reply.send(Ok(pending));
        }
    }

    /// Runs a job again under an id whose earlier run is final.
    pub(super) fn rerun(&mut self, job: Job, now: Instant) -> Result<JobId, SubmitError> {
        if self.records.is_live(&job.id) {
            return Err(SubmitError::Duplicate(job.id));
        }
        if !job.id.is_unassigned() {
            self.records.forget_finished(&job.id);
            self.discard_dead(&job.id);
            self.finished.take(&job.id);
        }
        self.submit_fresh(job, now)
    }

    /// Resubmits a dead letter (its record starts over).
    pub(super) fn resubmit(&mut self, id: &JobId, now: Instant) -> Result<JobId, SubmitError> {
        let letter = self.core.dead_letter(id).map(|l| l.job.clone());
        let id = self.core.resubmit_dead_letter(id, now)?;
        if self.journal.is_some() {
            self.journal_batch.records.push(Record::Undead(id.clone()));
        }
        if let Some(job) = letter {
            self.finished.take(&id);
            self.records.submitted(&job, crate::record::now_ms());
        }
        Ok(id)
    }

    /// This coordinator's records of `ids`.
    pub(super) fn lookup(&self, ids: &[JobId]) -> Lookup {
        let mut answer = Lookup::default();
        for id in ids {
            let status = self.core.job_status(id).map(|s| LiveStatus {
                attempt: s.attempt,
                running: s.node.is_some(),
            });
            let progress = self.progress.get(id).map(|p| ProgressRecord {
                fraction: p.fraction,
                note: p.note.clone(),
            });
            match self.records.view(id, status, progress) {
                Some(record) => answer.records.push(record),
                None => answer.unknown.push(id.clone()),
            }
        }
        answer
    }

    /// One page of this coordinator's records.
    pub(super) fn search(&self, query: &crate::record::JobQuery) -> crate::record::JobPage {
        self.records.search(query, |id| {
            self.core.job_status(id).map(|s| LiveStatus {
                attempt: s.attempt,
                running: s.node.is_some(),
            })
        })
    }

    /// Cancels `ids` among this coordinator's jobs.
    pub(super) fn cancel_ids(&mut self, ids: &[JobId], now: Instant) -> CancelReport {
        let mut report = CancelReport::default();
        for id in ids {
            match self.cancel_one(id, now) {
                CancelOutcome::Cancelled => report.cancelled.push(id.clone()),
                CancelOutcome::Final => report.already_final.push(id.clone()),
                CancelOutcome::Unknown => report.unknown.push(id.clone()),
            }
        }
        report
    }

    fn cancel_one(&mut self, id: &JobId, now: Instant) -> CancelOutcome {
        if self.records.is_finished(id) {
            return CancelOutcome::Final;
        }
        if let Some(at) = self.deferred.iter().position(|job| &job.id == id) {
            // Resumed from the journal and not placed yet: never runs.
            self.deferred.remove(at);
            let failure = JobFailure::new(FailureCause::Cancelled, "cancelled");
            self.complete(JobResult::failure(
                id.clone(),
                failure,
                "",
                0,
                Duration::ZERO,
            ));
            return CancelOutcome::Cancelled;
        }
        match self.core.cancel(id, now) {
            Cancelled::Cancelled { running_on } => {
                if let Some((node, attempt)) = running_on {
                    self.cancels
                        .entry(node)
                        .or_default()
                        .push((id.clone(), attempt));
                }
                tracing::info!(%id, "job cancelled");
                CancelOutcome::Cancelled
            }
            _ => CancelOutcome::Unknown,
        }
    }

    /// A submission envelope whose id is known: the sender waits for that
    /// job (at once if final) instead of running it again.
    pub(super) fn wait_known(&mut self, id: JobId, env: &Envelope, progress: bool) {
        let waiter = Waiter::Remote {
            to: env.from.clone(),
            request: env.id,
            format: env.format,
            progress,
        };
        if !self.add_waiter(&id, waiter) {
            self.send(env.error_reply("coordinator holds too many waiters; retry later"));
        }
    }

    /// `{"cmd":"get","ids":[..]}`.
    pub(super) fn on_get(&mut self, env: Envelope, ids: Vec<String>, local: bool) {
        let ids = match parse_ids(ids) {
            Ok(ids) => ids,
            Err(reason) => return self.send(env.error_reply(&reason)),
        };
        let mut answer = self.lookup(&ids);
        if local || answer.unknown.is_empty() || !self.has_peers() {
            return self.send(json_reply(&env, &answer));
        }
        let Some(permit) = self.fanout_permit(&env) else {
            return;
        };
        let router = self.router.clone();
        let timeout = self.setup.options.fanout_timeout;
        tokio::spawn(async move {
            let remote = fanout::get(&router, &answer.unknown, timeout).await;
            answer.merge(remote);
            let _ = router.send(json_reply(&env, &answer)).await;
            drop(permit);
        });
    }

    /// `{"cmd":"cancel","ids":[..]}`.
    pub(super) fn on_cancel(&mut self, env: Envelope, ids: Vec<String>, local: bool, now: Instant) {
        let ids = match parse_ids(ids) {
            Ok(ids) => ids,
            Err(reason) => return self.send(env.error_reply(&reason)),
        };
        let mut report = self.cancel_ids(&ids, now);
        if local || report.unknown.is_empty() || !self.has_peers() {
            return self.send(json_reply(&env, &report));
        }
        let Some(permit) = self.fanout_permit(&env) else {
            return;
        };
        let router = self.router.clone();
        let timeout = self.setup.options.fanout_timeout;
        tokio::spawn(async move {
            let remote = fanout::cancel(&router, &report.unknown, timeout).await;
            report.merge(remote);
            let _ = router.send(json_reply(&env, &report)).await;
            drop(permit);
        });
    }

    /// `{"cmd":"attach","ids":[..]}`: first the list of attached and
    /// unknown ids, then each attached job's result, once.
    pub(super) fn on_attach(&mut self, env: Envelope, ids: Vec<String>) {
        let ids = match parse_ids(ids) {
            Ok(ids) => ids,
            Err(reason) => return self.send(env.error_reply(&reason)),
        };
        if self.extra_count + ids.len() > MAX_EXTRA_WAITERS {
            return self.send(env.error_reply("coordinator holds too many waiters; retry later"));
        }
        let (attached, unknown): (Vec<JobId>, Vec<JobId>) =
            ids.into_iter().partition(|id| self.records.contains(id));
        let head = serde_json::json!({ "attached": attached, "unknown": unknown });
        self.send(json_reply(&env, &head));
        for id in attached {
            let waiter = Waiter::Remote {
                to: env.from.clone(),
                request: env.id,
                format: PayloadFormat::Json,
                progress: false,
            };
            self.add_waiter(&id, waiter);
        }
    }

    /// `{"cmd":"discard","id":..}`.
    pub(super) fn on_discard(&mut self, env: Envelope, id: &str) {
        let reply = match JobId::new(id) {
            Ok(id) => {
                let discarded = self.discard_dead(&id);
                json_reply(&env, &serde_json::json!({ "discarded": discarded }))
            }
            Err(err) => env.error_reply(&err.to_string()),
        };
        self.send(reply);
    }

    fn has_peers(&self) -> bool {
        let me = self.router.node_id();
        self.router
            .get_all_peers()
            .iter()
            .any(|member| &member.node != me)
    }

    fn fanout_permit(&mut self, env: &Envelope) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match self.setup.fanouts.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.send(
                    env.error_reply("too many cluster-wide queries in progress; retry later"),
                );
                None
            }
        }
    }
}

/// Parses the ids of a command: at most [`MAX_IDS`], each a valid id.
fn parse_ids(ids: Vec<String>) -> Result<Vec<JobId>, String> {
    if ids.len() > MAX_IDS {
        return Err(format!(
            "too many ids: {} in one command, at most {MAX_IDS}",
            ids.len()
        ));
    }
    ids.iter()
        .map(|id| JobId::new(id).map_err(|e| format!("bad id {id:?}: {e}")))
        .collect()
}

fn json_reply<T: serde::Serialize>(env: &Envelope, value: &T) -> Envelope {
    match serde_json::to_vec(value) {
        Ok(json) => env.reply(Bytes::from(json)),
        Err(err) => env.error_reply(&format!("cannot encode the answer: {err}")),
    }
}
