//! The backend the HTTP layer serves: the [`Api`] trait and the JSON views
//! it trades in.
//!
//! The views mirror the JSON forms of the job queue (`docs/jobs.md`) so the
//! real backend converts field for field; the statistics views are the job
//! queue's snapshot types themselves.

use std::time::Duration;

/// A boxed error from the backend (the workspace's one `BoxError`).
pub(crate) use job_queue::BoxError;
use serde::{Deserialize, Serialize};

/// A job as a client submits it. `data` may be any JSON value: a string is
/// used as is, anything else as its JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSubmission {
    /// A caller-chosen id (default: the coordinator assigns one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The handler kind.
    pub kind: String,
    /// The input (default empty).
    #[serde(default, with = "data_text")]
    pub data: String,
    /// Tags a worker node must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Per-attempt timeout in milliseconds (default: the cluster's, 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Attempts before the job is dead-lettered (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Higher starts first among waiting jobs (default 0; aging lifts a
    /// waiting job one level per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Do not start before this Unix time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
    /// Do not start before this many milliseconds from its acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The job is idempotent: a straggling attempt may get a speculative
    /// backup on another node (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub speculative: bool,
}

impl JobSubmission {
    /// A job of `kind` over `data` with every other field defaulted.
    pub fn new(kind: impl Into<String>, data: impl Into<String>) -> Self {
        JobSubmission {
            id: None,
            kind: kind.into(),
            data: data.into(),
            tags: Vec::new(),
            timeout_ms: None,
            max_attempts: None,
            priority: None,
            not_before_ms: None,
            delay_ms: None,
            speculative: false,
        }
    }
}

/// `data` accepts any JSON value and keeps it as text.
mod data_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(data)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
    }
}

/// Where a job is in its life: the job record's state (`queued`,
/// `running`, `succeeded`, `failed`, `dead`, `cancelled`).
pub(crate) use job_queue::JobState;

/// A job's record, served as is by `GET /v1/jobs/{id}` (see `docs/jobs.md`,
/// "Job records").
pub(crate) type RecordView = job_queue::JobRecord;

/// Why a job failed, as the queue reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailureView {
    /// The category (`timeout`, `handler`, `bad_data`, ...).
    pub cause: String,
    /// A human-readable explanation.
    pub message: String,
    /// Whether the failure was retryable.
    pub retryable: bool,
}

/// A job's status and, once finished, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobView {
    /// The job's id.
    pub id: String,
    /// Its state.
    pub state: JobState,
    /// Its kind, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The running (or last) attempt (0 before the first dispatch).
    pub attempt: u32,
    /// The output, once succeeded.
    #[serde(default)]
    pub result: Option<String>,
    /// The failure, once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FailureView>,
    /// The node that produced the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_node: Option<String>,
    /// Processing time of the final attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
}

/// A node's load as gossiped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadView {
    /// CPU use in percent.
    pub cpu_percent: f32,
    /// Jobs running.
    pub in_flight: u32,
    /// Jobs queued.
    pub queue_depth: u32,
}

/// One cluster member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node name.
    pub node: String,
    /// Its WebSocket URL.
    pub url: String,
    /// `up`, `suspect`, `leaving`, `down`, ...
    pub status: String,
    /// Tags it offers.
    pub tags: Vec<String>,
    /// Its load.
    pub load: LoadView,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The answering node.
    pub node: String,
    /// Open links to other nodes.
    pub links: u64,
    /// Every known member, the answering node included, sorted by name.
    pub members: Vec<MemberView>,
}

/// Figures for one worker node, as the answering coordinator saw them: the
/// job queue's [`NodeStatsSnapshot`](job_queue::NodeStatsSnapshot), served
/// as is.
pub(crate) type NodeStatsView = job_queue::NodeStatsSnapshot;

/// A coordinator's statistics: the job queue's
/// [`StatsSnapshot`](job_queue::StatsSnapshot), whose serde form is the
/// `GET /v1/stats` JSON.
pub(crate) type StatsView = job_queue::StatsSnapshot;

/// Why the backend could not serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// The job was refused (bad kind, zero timeout, ...): the client's fault.
    #[error("invalid job: {0}")]
    InvalidJob(#[source] BoxError),
    /// The node cannot take more work right now.
    #[error("the node is overloaded; retry later")]
    Overloaded,
    /// The node is draining and takes no new jobs.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

/// What the HTTP layer needs from a node. The node implements it over its
/// Coordinator and Router; tests implement it with a fake.
#[async_trait::async_trait]
pub(crate) trait Api: Send + Sync + 'static {
    /// Accepts jobs and returns their ids, in order.
    async fn submit(&self, jobs: Vec<JobSubmission>) -> Result<Vec<String>, ApiError>;
    /// Waits until every job in `ids` is final or `timeout` passes, then
    /// returns each job's view, in order (unknown ids are skipped).
    async fn wait(&self, ids: &[String], timeout: Duration) -> Result<Vec<JobView>, ApiError>;
    /// One job's record, asking the cluster for ids this node's
    /// coordinator does not own; `None` if nobody knows the id.
    async fn job(&self, id: &str) -> Result<Option<RecordView>, ApiError>;
    /// Cancels a job wherever it lives; its state afterwards (`cancelled`,
    /// or the final state it already had), `None` if nobody knows it.
    async fn cancel(&self, id: &str) -> Result<Option<JobState>, ApiError>;
    /// The dead-letter list of this node's coordinator.
    async fn dead_letters(&self) -> Result<Vec<JobView>, ApiError>;
    /// Runs a dead letter of this node's coordinator again; its id, `None`
    /// if there is no such dead letter.
    async fn resubmit(&self, id: &str) -> Result<Option<String>, ApiError>;
    /// Removes a dead letter of this node's coordinator; whether there was
    /// one.
    async fn discard(&self, id: &str) -> Result<bool, ApiError>;
    /// Membership as this node sees it.
    async fn cluster(&self) -> Result<ClusterView, ApiError>;
    /// The coordinator's statistics.
    async fn stats(&self) -> Result<StatsView, ApiError>;
    /// One page of this node's coordinator's job records.
    async fn search(&self, query: job_queue::JobQuery) -> Result<job_queue::JobPage, ApiError>;
    /// The jobs this node's coordinator saw finish after `after_ms` and at
    /// or before `until_ms` (unix ms), at most `limit`.
    async fn finished_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<job_queue::FinishedSample>, ApiError>;
    /// Adds (or replaces) a recurring job of this node's coordinator;
    /// returns its next fire time (unix ms). Backends without recurring
    /// jobs (test fakes) refuse.
    async fn add_recurring(&self, spec: serde_json::Value) -> Result<u64, ApiError> {
        let _ = spec;
        Err(ApiError::Internal(
            "recurring jobs are not supported here".into(),
        ))
    }
    /// The recurring jobs of this node's coordinator, with `next_ms`.
    async fn recurring(&self) -> Result<Vec<serde_json::Value>, ApiError> {
        Err(ApiError::Internal(
            "recurring jobs are not supported here".into(),
        ))
    }
    /// Removes a recurring job; whether it existed.
    async fn remove_recurring(&self, name: &str) -> Result<bool, ApiError> {
        let _ = name;
        Err(ApiError::Internal(
            "recurring jobs are not supported here".into(),
        ))
    }
}
