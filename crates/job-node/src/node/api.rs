//! [`NodeApi`]: the HTTP backend over the node's Coordinator and Router.
//!
//! Jobs submitted through it are tracked in a bounded table (their state
//! and, once final, their result) so `GET /v1/jobs/{id}` and `?wait=true`
//! can answer. Jobs submitted by other means (WebSocket clients, other
//! nodes) are known to it only once dead-lettered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_router::Router;
use job_queue::{
    Coordinator, JobError, JobId, JobResult, PendingJob, RecurringError, RecurringJob, SubmitError,
};
use tokio::sync::watch;

use super::convert;
use crate::http::{
    Api, ApiError, ClusterView, JobState, JobSubmission, JobView, MemberView, RecordView, StatsView,
};

/// How many finished jobs the table remembers (the oldest are forgotten).
pub(crate) const FINISHED_JOBS_KEPT: usize = 100_000;

#[derive(Debug)]
struct Tracked {
    kind: String,
    outcome: watch::Receiver<Option<JobResult>>,
}

#[derive(Debug, Default)]
struct Table {
    jobs: HashMap<String, Tracked>,
    finished: VecDeque<String>,
}

/// The node's [`Api`] implementation.
#[derive(Debug)]
pub(crate) struct NodeApi {
    coordinator: Coordinator,
    router: Router,
    table: Arc<Mutex<Table>>,
    keep_finished: usize,
}

impl NodeApi {
    /// A backend over `coordinator` and `router`.
    pub(crate) fn new(coordinator: Coordinator, router: Router) -> Self {
        NodeApi {
            coordinator,
            router,
            table: Arc::default(),
            keep_finished: FINISHED_JOBS_KEPT,
        }
    }

    /// Tracks the jobs the coordinator resumed from its journal, with the
    /// kind their records carry; returns how many.
    pub(crate) async fn track_resumed(&self) -> usize {
        let resumed = self.coordinator.resumed().to_vec();
        let mut kinds = HashMap::with_capacity(resumed.len());
        for chunk in resumed.chunks(job_queue::MAX_IDS) {
            match self.coordinator.get(chunk.to_vec()).await {
                Ok(found) => kinds.extend(found.records.into_iter().map(|r| (r.id, r.kind))),
                Err(err) => tracing::warn!(%err, "cannot read the records of resumed jobs"),
            }
        }
        let mut count = 0;
        for id in resumed {
            let kind = kinds.remove(&id).unwrap_or_default();
            match self.coordinator.attach(id.clone()).await {
                Ok(pending) => {
                    self.track(kind, pending);
                    count += 1;
                }
                Err(err) => tracing::warn!(%id, %err, "cannot follow a resumed job"),
            }
        }
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks an accepted job and waits for its result in the background.
    fn track(&self, kind: String, pending: PendingJob) -> String {
        let id = pending.id().to_string();
        let (tx, rx) = watch::channel(None);
        self.lock()
            .jobs
            .insert(id.clone(), Tracked { kind, outcome: rx });
        let table = Arc::clone(&self.table);
        let keep = self.keep_finished;
        let key = id.clone();
        tokio::spawn(async move {
            let Ok(result) = pending.result().await else {
                // The coordinator stopped: the job's fate is unknown here.
                return;
            };
            let _ = tx.send(Some(result));
            let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
            table.finished.push_back(key);
            while table.finished.len() > keep {
                if let Some(old) = table.finished.pop_front() {
                    // A resubmission under the same id may be running again.
                    let done = table
                        .jobs
                        .get(&old)
                        .is_some_and(|t| t.outcome.borrow().is_some());
                    if done {
                        table.jobs.remove(&old);
                    }
                }
            }
        });
        id
    }

    fn view_of(id: &str, tracked: &Tracked) -> JobView {
        match &*tracked.outcome.borrow() {
            Some(result) => convert::final_view(&tracked.kind, result),
            None => convert::pending_view(id, &tracked.kind),
        }
    }
}

fn internal(err: JobError) -> ApiError {
    ApiError::Internal(Box::new(err))
}

/// The HTTP meaning of a refused submission. A draining coordinator (the
/// node got SIGINT/SIGTERM) and a stopped one both mean "this node takes no
/// new jobs": `503`, submit elsewhere.
fn submit_error(err: JobError) -> ApiError {
    match err {
        JobError::Submit(SubmitError::Draining { .. })
        | JobError::Stopped
        | JobError::Ask(actor_core::AskError::ActorGone) => ApiError::ShuttingDown,
        JobError::Submit(SubmitError::AtCapacity { .. }) => ApiError::Overloaded,
        JobError::Submit(err) => ApiError::InvalidJob(Box::new(err)),
        JobError::InvalidJob(err) => ApiError::InvalidJob(Box::new(err)),
        JobError::Ask(actor_core::AskError::Full)
        | JobError::Ask(actor_core::AskError::Timeout) => ApiError::Overloaded,
        other => ApiError::Internal(Box::new(other)),
    }
}

fn index_error(index: usize, total: usize, err: ApiError) -> ApiError {
    if total == 1 {
        return err;
    }
    match err {
        ApiError::InvalidJob(source) => {
            ApiError::InvalidJob(format!("job {index}: {source}").into())
        }
        other => other,
    }
}

#[async_trait::async_trait]
impl Api for NodeApi {
    async fn submit(&self, jobs: Vec<JobSubmission>) -> Result<Vec<String>, ApiError> {
        let total = jobs.len();
        // All or none: every job is checked before any is handed over, and
        // the coordinator takes the batch in one call that refuses it whole
        // if one job is refused (duplicate in the batch, capacity, draining).
        let mut kinds = Vec::with_capacity(total);
        let mut batch = Vec::with_capacity(total);
        for (index, submission) in jobs.into_iter().enumerate() {
            kinds.push(submission.kind.clone());
            batch.push(
                convert::job_from_submission(submission)
                    .map_err(|e| index_error(index, total, e))?,
            );
        }
        let accepted = self
            .coordinator
            .submit_many(batch)
            .await
            .map_err(|e| match e {
                JobError::Submit(SubmitError::InBatch { index, source }) => {
                    index_error(index, total, submit_error(JobError::Submit(*source)))
                }
                other => submit_error(other),
            })?;
        Ok(kinds
            .into_iter()
            .zip(accepted)
            .map(|(kind, pending)| self.track(kind, pending))
            .collect())
    }

    async fn wait(&self, ids: &[String], timeout: Duration) -> Result<Vec<JobView>, ApiError> {
        let receivers: Vec<_> = {
            let table = self.lock();
            ids.iter()
                .filter_map(|id| table.jobs.get(id).map(|t| t.outcome.clone()))
                .collect()
        };
        let all_final = async {
            for mut rx in receivers {
                // An error means the coordinator stopped: stop waiting for it.
                let _ = rx.wait_for(Option::is_some).await;
            }
        };
        let _ = tokio::time::timeout(timeout, all_final).await;
        let mut views: Vec<JobView> = {
            let table = self.lock();
            ids.iter()
                .filter_map(|id| table.jobs.get(id).map(|t| Self::view_of(id, t)))
                .collect()
        };
        // Jobs still unfinished: their record says queued or running, and
        // which attempt.
        let open: Vec<JobId> = views
            .iter()
            .filter(|v| !v.state.is_final())
            .filter_map(|v| JobId::new(&v.id).ok())
            .collect();
        if !open.is_empty() {
            let lookup = self.coordinator.get(open).await.map_err(internal)?;
            for record in &lookup.records {
                if let Some(view) = views.iter_mut().find(|v| v.id == record.id.as_str()) {
                    if !view.state.is_final() {
                        *view = convert::record_view(record);
                    }
                }
            }
        }
        Ok(views)
    }

    async fn job(&self, id: &str) -> Result<Option<RecordView>, ApiError> {
        let Ok(job_id) = JobId::new(id) else {
            return Ok(None);
        };
        let lookup = self.coordinator.get(vec![job_id]).await.map_err(internal)?;
        Ok(lookup.records.into_iter().next())
    }

    async fn cancel(&self, id: &str) -> Result<Option<JobState>, ApiError> {
        let Ok(job_id) = JobId::new(id) else {
            return Ok(None);
        };
        let report = self
            .coordinator
            .cancel(vec![job_id.clone()])
            .await
            .map_err(internal)?;
        if !report.cancelled.is_empty() {
            return Ok(Some(JobState::Cancelled));
        }
        if report.already_final.is_empty() {
            return Ok(None);
        }
        Ok(self.job(id).await?.map(|record| record.state))
    }

    async fn resubmit(&self, id: &str) -> Result<Option<String>, ApiError> {
        let Ok(job_id) = JobId::new(id) else {
            return Ok(None);
        };
        let kind = self
            .coordinator
            .dead_letters()
            .await
            .map_err(internal)?
            .into_iter()
            .find(|l| l.job.id == job_id)
            .map(|l| l.job.kind);
        let Some(kind) = kind else {
            return Ok(None);
        };
        match self.coordinator.resubmit(job_id).await {
            Ok(pending) => Ok(Some(self.track(kind, pending))),
            Err(JobError::Submit(SubmitError::NotDeadLettered(_))) => Ok(None),
            Err(err) => Err(submit_error(err)),
        }
    }

    async fn add_recurring(&self, spec: serde_json::Value) -> Result<u64, ApiError> {
        let spec: RecurringJob =
            serde_json::from_value(spec).map_err(|e| ApiError::InvalidJob(Box::new(e)))?;
        match self.coordinator.add_recurring(spec).await {
            Ok(next) => Ok(next),
            Err(JobError::Recurring(err @ RecurringError::Journal { .. })) => {
                Err(internal(JobError::Recurring(err)))
            }
            Err(JobError::Recurring(err)) => Err(ApiError::InvalidJob(Box::new(err))),
            Err(err) => Err(internal(err)),
        }
    }

    async fn recurring(&self) -> Result<Vec<serde_json::Value>, ApiError> {
        let list = self.coordinator.recurring().await.map_err(internal)?;
        Ok(list
            .into_iter()
            .filter_map(|(spec, next_ms)| {
                let mut value = serde_json::to_value(spec).ok()?;
                value["next_ms"] = next_ms.into();
                Some(value)
            })
            .collect())
    }

    async fn remove_recurring(&self, name: &str) -> Result<bool, ApiError> {
        self.coordinator
            .remove_recurring(name)
            .await
            .map_err(internal)
    }

    async fn discard(&self, id: &str) -> Result<bool, ApiError> {
        let Ok(job_id) = JobId::new(id) else {
            return Ok(false);
        };
        self.coordinator.discard(job_id).await.map_err(internal)
    }

    async fn dead_letters(&self) -> Result<Vec<JobView>, ApiError> {
        let letters = self
            .coordinator
            .dead_letters()
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        Ok(letters.iter().map(convert::dead_letter_view).collect())
    }

    async fn cluster(&self) -> Result<ClusterView, ApiError> {
        let members: Vec<MemberView> = self
            .router
            .members()
            .iter()
            .map(convert::member_view)
            .collect();
        Ok(ClusterView {
            node: self.router.node_id().to_string(),
            links: self.router.transport_stats().links_open,
            members,
        })
    }

    async fn stats(&self) -> Result<StatsView, ApiError> {
        self.coordinator
            .stats()
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))
    }

    async fn search(&self, query: job_queue::JobQuery) -> Result<job_queue::JobPage, ApiError> {
        self.coordinator.search(query).await.map_err(internal)
    }

    async fn finished_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<job_queue::FinishedSample>, ApiError> {
        self.coordinator
            .finished_between(after_ms, until_ms, limit)
            .await
            .map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draining_or_stopped_coordinator_means_shutting_down() {
        let draining = SubmitError::Draining {
            node: "node-a".into(),
        };
        assert!(matches!(
            submit_error(JobError::Submit(draining)),
            ApiError::ShuttingDown
        ));
        assert!(matches!(
            submit_error(JobError::Stopped),
            ApiError::ShuttingDown
        ));
        assert!(matches!(
            submit_error(JobError::Submit(SubmitError::AtCapacity { limit: 1 })),
            ApiError::Overloaded
        ));
        let duplicate = SubmitError::Duplicate(JobId::new("j-1").unwrap());
        assert!(matches!(
            submit_error(JobError::Submit(duplicate)),
            ApiError::InvalidJob(_)
        ));
    }
}
