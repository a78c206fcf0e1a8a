//! The JSON carried by task jobs (`Job::data`) and their results
//! (`JobResult::result`). Small by design: shuffle data never travels in
//! them, only its locations and sizes.

use serde::{Deserialize, Serialize};

use super::spec::SplitInfo;
use super::split::SplitSpec;

/// The job kind of map tasks.
pub const MAP_KIND: &str = "mr.map";
/// The job kind of reduce tasks.
pub const REDUCE_KIND: &str = "mr.reduce";

/// Whether `kind` is one of the map-reduce engine's own task kinds
/// ([`MAP_KIND`], [`REDUCE_KIND`]). Their data names another job's blobs
/// and nodes, so only the engine's drivers (nodes) submit them; a
/// coordinator refuses them from external clients
/// ([`engine_kind_refusal`]).
pub fn is_engine_kind(kind: &str) -> bool {
    kind == MAP_KIND || kind == REDUCE_KIND
}

/// Why a client's job of an engine kind is refused.
pub fn engine_kind_refusal(kind: &str) -> String {
    format!(
        "kind {kind:?} is the map-reduce engine's own task kind: only its drivers submit it (run map-reduce with `job-node mapreduce`, docs/mapreduce.md)"
    )
}

/// The most reducers (partitions) a job may have: bounds what a map task
/// allocates for a task description received from the network.
pub const MAX_REDUCERS: u32 = 65_536;

/// `mr.map` data: map split `split` of job `job` into `reducers`
/// partitions, reading the split from `input_node`'s store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapTask {
    pub(crate) job: String,
    pub(crate) spec: String,
    pub(crate) reducers: u32,
    pub(crate) split: SplitSpec,
    pub(crate) input_node: String,
}

/// Size of one map output partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionInfo {
    pub(crate) pairs: u64,
    pub(crate) bytes: u64,
}

/// `mr.map` result: the partitions now held by `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapReport {
    pub(crate) node: String,
    pub(crate) task: u32,
    pub(crate) records: u64,
    pub(crate) partitions: Vec<PartitionInfo>,
}

/// Map task `task`'s output is held by `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceLocation {
    pub(crate) node: String,
    pub(crate) task: u32,
}

/// `mr.reduce` data: reduce partition `partition` of job `job`, fetching it
/// from `sources` (the map tasks with a non-empty output for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReduceTask {
    pub(crate) job: String,
    pub(crate) spec: String,
    pub(crate) partition: u32,
    pub(crate) sources: Vec<SourceLocation>,
    pub(crate) splits: Vec<SplitInfo>,
}

/// `mr.reduce` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum ReduceReport {
    /// The reduced partition is held by `node`.
    Done {
        node: String,
        partition: u32,
        keys: u64,
        bytes: u64,
    },
    /// Some map outputs could not be fetched: their tasks must run again.
    Missing {
        node: String,
        partition: u32,
        lost: Vec<SourceLocation>,
    },
}
