//! What a run reports as it goes: [`RunEvent`]s, delivered in order to a
//! [`RunObserver`] (a progress display, or a test acting at a precise
//! point of the run).

use async_trait::async_trait;

use crate::job::JobId;

use super::driver::{Phase, TaskProgress};

/// What happened during a run, for progress displays (and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEvent {
    /// The inputs are split and staged; the map tasks are being submitted.
    Planned {
        /// The map-reduce job's id.
        job: String,
        /// Map tasks (splits).
        maps: u32,
        /// Reducers asked for.
        reducers: u32,
        /// Input bytes staged on the driver's node.
        bytes: u64,
    },
    /// A task's final result arrived and was applied.
    TaskFinished {
        /// The task's job id.
        task: JobId,
        /// The node that ran its final attempt.
        node: String,
        /// Whether it succeeded.
        success: bool,
        /// The job's phase now.
        phase: Phase,
        /// Tasks done per phase now.
        progress: TaskProgress,
    },
    /// A node left or went Down; whatever outputs it held that are still
    /// needed are produced again.
    NodeLost {
        /// The node.
        node: String,
        /// Tasks done per phase now.
        progress: TaskProgress,
    },
    /// The merge fetched `done` of `total` reduce outputs.
    OutputFetched {
        /// Outputs fetched so far in this merge attempt.
        done: u32,
        /// Outputs to fetch.
        total: u32,
    },
}

/// Receives the [`RunEvent`]s of a run, in order. The run waits for each
/// call, so an observer can act at a precise point (a test kills a node
/// there); it should return quickly.
#[async_trait]
pub trait RunObserver: Send {
    /// One event.
    async fn on_event(&mut self, event: &RunEvent);
}

/// A [`RunObserver`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

#[async_trait]
impl RunObserver for NoObserver {
    async fn on_event(&mut self, _event: &RunEvent) {}
}
