//! The sans-IO driver of one map-reduce job: plan -> map phase -> reduce
//! phase -> merge, as task [`Job`]s out and [`JobResult`]s in.

use std::collections::VecDeque;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::job::{Job, JobId, JobResult};

use super::error::MapReduceError;
use super::spec::SplitInfo;
use super::split::SplitSpec;
use super::task::{
    MapReport, MapTask, PartitionInfo, ReduceReport, ReduceTask, SourceLocation, MAP_KIND,
    MAX_REDUCERS, REDUCE_KIND,
};

/// Settings of one map-reduce job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DriverConfig {
    /// The job's id: 1..=64 characters of `[A-Za-z0-9_.-]`, never reused
    /// (stores refuse blobs of recently ended jobs, and task ids derive
    /// from it).
    pub job: String,
    /// The registered [`MapReduce`](super::MapReduce) name (`wordcount`).
    pub spec: String,
    /// The number of partitions and reduce tasks (R >= 1).
    pub reducers: u32,
    /// The node whose store holds the staged input splits.
    pub input_node: String,
    /// The per-attempt timeout of every task.
    pub task_timeout: Duration,
    /// The attempts of every task (the coordinator's retries).
    pub max_attempts: u32,
    /// Tags a node must have to run tasks.
    pub tags: Vec<String>,
    /// How many tasks may be re-run because their outputs were lost.
    pub max_recoveries: u32,
}

impl DriverConfig {
    /// Settings with the job defaults: 30 s timeout, 3 attempts, no tags,
    /// up to 16 recoveries.
    pub(crate) fn new(
        job: impl Into<String>,
        spec: impl Into<String>,
        reducers: u32,
        input_node: impl Into<String>,
    ) -> Self {
        DriverConfig {
            job: job.into(),
            spec: spec.into(),
            reducers,
            input_node: input_node.into(),
            task_timeout: Job::DEFAULT_TIMEOUT,
            max_attempts: Job::DEFAULT_MAX_ATTEMPTS,
            tags: Vec::new(),
            max_recoveries: 16,
        }
    }
}

/// Where the job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Some map task has no output yet.
    Map,
    /// Every map output is available; some reduce task has no output yet.
    Reduce,
    /// Every reduce output is available: they are fetched and merged.
    Merge,
    /// The job failed (a task out of attempts, too many recoveries).
    Failed,
}

/// A reduce output: partition `partition` is held by `node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutputLocation {
    /// The holder node.
    pub node: String,
    /// The partition.
    pub partition: u32,
    /// Its encoded size.
    pub bytes: u64,
}

/// How many tasks of each phase have their output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskProgress {
    /// Map tasks whose output is available.
    pub maps_done: u32,
    /// Map tasks (= splits).
    pub maps: u32,
    /// Reduce tasks whose output is available.
    pub reduces_done: u32,
    /// Reduce tasks: the reducers until the map barrier, then the
    /// partitions that received pairs.
    pub reduces: u32,
}

/// Figures about a job so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Map tasks (= splits).
    pub map_tasks: u32,
    /// Reduce tasks that had input (partitions with no pairs are skipped).
    pub reduce_tasks: u32,
    /// Records (words) seen by the maps.
    pub records: u64,
    /// Pairs shuffled (after the local combine).
    pub shuffle_pairs: u64,
    /// Encoded bytes shuffled.
    pub shuffle_bytes: u64,
    /// Keys in the output.
    pub output_keys: u64,
    /// Tasks re-run because their outputs were lost.
    pub recoveries: u32,
    /// Results ignored because they were not for a running task.
    pub stale_results: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot<T> {
    /// Waiting to be emitted (reduces also wait for the map barrier).
    Pending,
    /// Emitted as the job with this id.
    Running(JobId),
    /// Finished with this output.
    Done(T),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MapDone {
    node: String,
    records: u64,
    partitions: Vec<PartitionInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ReduceDone {
    /// Nothing to reduce: no map emitted a pair for the partition.
    Empty,
    Held {
        node: String,
        keys: u64,
        bytes: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskRef {
    Map(u32),
    Reduce(u32),
}

/// Drives one map-reduce job without doing any I/O.
///
/// Emit the task jobs from [`poll_job`](Self::poll_job) (to a coordinator,
/// or any executor), feed their final results to
/// [`on_result`](Self::on_result), and membership changes to
/// [`on_node_down`](Self::on_node_down). When [`phase`](Self::phase) is
/// [`Phase::Merge`], fetch [`outputs`](Self::outputs) and merge them.
///
/// Results fed in must be *final*: retries of failed attempts are the
/// coordinator's business. A failed final result fails the job. Map outputs
/// lost with their node are re-run (as new jobs) while any reduce still needs
/// them; a reduce that cannot fetch an input reports which, and waits for
/// those maps to run again.
#[derive(Debug)]
pub(crate) struct MapReduceDriver {
    config: DriverConfig,
    splits: Vec<SplitSpec>,
    maps: Vec<Slot<MapDone>>,
    reduces: Vec<Slot<ReduceDone>>,
    generation: u64,
    running: FxHashMap<JobId, TaskRef>,
    outbox: VecDeque<Job>,
    split_infos: Vec<SplitInfo>,
    error: Option<MapReduceError>,
    failed: bool,
    stats: DriverStats,
}

/// Whether `id` is a valid map-reduce job id.
pub(crate) fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl MapReduceDriver {
    /// A driver for `splits` (see [`plan_splits`](super::plan_splits)); the
    /// map jobs are queued at once. No splits (empty input) goes straight to
    /// [`Phase::Merge`] with no outputs.
    ///
    /// # Errors
    ///
    /// [`MapReduceError::InvalidJobId`], [`MapReduceError::ZeroReducers`],
    /// [`MapReduceError::TooManyReducers`], or
    /// [`MapReduceError::SplitNumbering`] if `splits[i].index != i`.
    pub(crate) fn new(
        config: DriverConfig,
        splits: Vec<SplitSpec>,
    ) -> Result<Self, MapReduceError> {
        if !valid_job_id(&config.job) {
            return Err(MapReduceError::InvalidJobId { id: config.job });
        }
        if config.reducers == 0 {
            return Err(MapReduceError::ZeroReducers);
        }
        if config.reducers > MAX_REDUCERS {
            return Err(MapReduceError::TooManyReducers {
                reducers: config.reducers,
            });
        }
        if let Some((position, split)) = splits
            .iter()
            .enumerate()
            .find(|(i, s)| s.index as usize != *i)
        {
            return Err(MapReduceError::SplitNumbering {
                position,
                index: split.index,
            });
        }
        let mut driver = MapReduceDriver {
            maps: vec![Slot::Pending; splits.len()],
            reduces: vec![Slot::Pending; config.reducers as usize],
            stats: DriverStats {
                map_tasks: splits.len() as u32,
                ..DriverStats::default()
            },
            config,
            splits,
            generation: 0,
            running: FxHashMap::default(),
            outbox: VecDeque::new(),
            split_infos: Vec::new(),
            error: None,
            failed: false,
        };
        driver.advance();
        Ok(driver)
    }

    /// The job's settings.
    pub(crate) fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// The next task job to submit.
    pub(crate) fn poll_job(&mut self) -> Option<Job> {
        self.outbox.pop_front()
    }

    /// Where the job is.
    pub(crate) fn phase(&self) -> Phase {
        if self.failed {
            Phase::Failed
        } else if self.maps.iter().any(|m| !matches!(m, Slot::Done(_))) {
            Phase::Map
        } else if self.reduces.iter().any(|r| !matches!(r, Slot::Done(_))) {
            Phase::Reduce
        } else {
            Phase::Merge
        }
    }

    /// How many tasks of each phase are done.
    pub(crate) fn progress(&self) -> TaskProgress {
        let held = |r: &&Slot<ReduceDone>| !matches!(r, Slot::Done(ReduceDone::Empty));
        TaskProgress {
            maps_done: self
                .maps
                .iter()
                .filter(|m| matches!(m, Slot::Done(_)))
                .count() as u32,
            maps: self.maps.len() as u32,
            reduces_done: self
                .reduces
                .iter()
                .filter(held)
                .filter(|r| matches!(r, Slot::Done(_)))
                .count() as u32,
            reduces: self.reduces.iter().filter(held).count() as u32,
        }
    }

    /// Figures so far.
    pub(crate) fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// The error that failed the job (once; `None` afterwards or if the job
    /// has not failed).
    pub(crate) fn take_error(&mut self) -> Option<MapReduceError> {
        self.error.take()
    }

    /// The reduce outputs to merge, by partition; empty before
    /// [`Phase::Merge`]. Partitions with no keys are left out.
    pub(crate) fn outputs(&self) -> Vec<OutputLocation> {
        if self.phase() != Phase::Merge {
            return Vec::new();
        }
        let mut outputs = Vec::new();
        for (partition, slot) in self.reduces.iter().enumerate() {
            if let Slot::Done(ReduceDone::Held { node, bytes, .. }) = slot {
                outputs.push(OutputLocation {
                    node: node.clone(),
                    partition: partition as u32,
                    bytes: *bytes,
                });
            }
        }
        outputs
    }

    /// Feeds the final result of a task job. Results of jobs this driver is
    /// not waiting for are counted in [`DriverStats::stale_results`] and
    /// ignored.
    pub(crate) fn on_result(&mut self, result: &JobResult) {
        let Some(task) = self.running.remove(&result.id) else {
            self.stats.stale_results += 1;
            return;
        };
        if self.failed {
            return;
        }
        let output = match result.outcome() {
            Ok(output) => output,
            Err(failure) => {
                return self.fail(MapReduceError::TaskFailed {
                    task: result.id.clone(),
                    failure: failure.clone(),
                })
            }
        };
        let applied = match task {
            TaskRef::Map(index) => serde_json::from_str(output).map(|r| self.map_done(index, r)),
            TaskRef::Reduce(part) => {
                serde_json::from_str(output).map(|r| self.reduce_done(part, r))
            }
        };
        if let Err(source) = applied {
            return self.fail(MapReduceError::BadReport {
                task: result.id.clone(),
                source,
            });
        }
        self.advance();
    }

    /// Node `node` is Down: every output it held that is still needed is
    /// produced again (map outputs while a reduce still needs them; reduce
    /// outputs not merged yet). Tasks *running* on it are the
    /// coordinator's to retry.
    pub(crate) fn on_node_down(&mut self, node: &str) {
        if self.failed {
            return;
        }
        let reduces_left = self.reduces.iter().any(|r| !matches!(r, Slot::Done(_)));
        let lost_reduces: Vec<u32> = (0..self.reduces.len() as u32)
            .filter(|&p| matches!(&self.reduces[p as usize], Slot::Done(ReduceDone::Held { node: n, .. }) if n == node))
            .collect();
        if reduces_left || !lost_reduces.is_empty() {
            let lost_maps: Vec<u32> = (0..self.maps.len() as u32)
                .filter(|&m| matches!(&self.maps[m as usize], Slot::Done(d) if d.node == node))
                .collect();
            for m in lost_maps {
                self.rerun_map(m);
            }
        }
        for p in lost_reduces {
            self.rerun_reduce(p);
        }
        self.advance();
    }

    /// The merge could not fetch the output of `partition`: reduce it again.
    pub(crate) fn on_output_lost(&mut self, partition: u32) {
        if self.failed || partition as usize >= self.reduces.len() {
            return;
        }
        if matches!(self.reduces[partition as usize], Slot::Done(_)) {
            self.rerun_reduce(partition);
        }
        self.advance();
    }

    fn map_done(&mut self, index: u32, report: MapReport) {
        let mut partitions = report.partitions;
        partitions.resize(self.config.reducers as usize, PartitionInfo::default());
        // Reports come from other nodes: their counts saturate, never
        // overflow (a panic in a debug build).
        self.stats.records = self.stats.records.saturating_add(report.records);
        for p in &partitions {
            self.stats.shuffle_pairs = self.stats.shuffle_pairs.saturating_add(p.pairs);
            self.stats.shuffle_bytes = self.stats.shuffle_bytes.saturating_add(p.bytes);
        }
        self.maps[index as usize] = Slot::Done(MapDone {
            node: report.node,
            records: report.records,
            partitions,
        });
    }

    fn reduce_done(&mut self, part: u32, report: ReduceReport) {
        match report {
            ReduceReport::Done {
                node, keys, bytes, ..
            } => {
                self.stats.output_keys = self.stats.output_keys.saturating_add(keys);
                self.reduces[part as usize] = Slot::Done(ReduceDone::Held { node, keys, bytes });
            }
            ReduceReport::Missing { lost, .. } => {
                self.reduces[part as usize] = Slot::Pending;
                for SourceLocation { node, task } in lost {
                    let still_there = matches!(self.maps.get(task as usize), Some(Slot::Done(d)) if d.node == node);
                    if still_there {
                        self.rerun_map(task);
                    }
                }
            }
        }
    }

    fn rerun_map(&mut self, index: u32) {
        if let Slot::Done(done) = &self.maps[index as usize] {
            self.stats.records = self.stats.records.saturating_sub(done.records);
            for p in &done.partitions {
                self.stats.shuffle_pairs = self.stats.shuffle_pairs.saturating_sub(p.pairs);
                self.stats.shuffle_bytes = self.stats.shuffle_bytes.saturating_sub(p.bytes);
            }
        }
        self.maps[index as usize] = Slot::Pending;
        self.count_recovery();
    }

    fn rerun_reduce(&mut self, part: u32) {
        if let Slot::Done(ReduceDone::Held { keys, .. }) = &self.reduces[part as usize] {
            self.stats.output_keys = self.stats.output_keys.saturating_sub(*keys);
        }
        self.reduces[part as usize] = Slot::Pending;
        self.count_recovery();
    }

    fn count_recovery(&mut self) {
        self.stats.recoveries += 1;
        if self.stats.recoveries > self.config.max_recoveries {
            self.fail(MapReduceError::TooManyRecoveries {
                limit: self.config.max_recoveries,
            });
        }
    }

    fn fail(&mut self, error: MapReduceError) {
        if !self.failed {
            tracing::warn!(job = %self.config.job, %error, "map-reduce job failed");
            self.failed = true;
            self.error = Some(error);
            self.outbox.clear();
        }
    }

    /// Emits every pending task that can run now.
    fn advance(&mut self) {
        if self.failed {
            return;
        }
        for index in 0..self.maps.len() as u32 {
            if self.maps[index as usize] == Slot::Pending {
                let job = self.map_job(index);
                self.maps[index as usize] = Slot::Running(job.id.clone());
                self.running.insert(job.id.clone(), TaskRef::Map(index));
                self.outbox.push_back(job);
            }
        }
        if self.maps.iter().any(|m| !matches!(m, Slot::Done(_))) {
            return;
        }
        if self.split_infos.is_empty() && !self.splits.is_empty() {
            self.split_infos = self.compute_split_infos();
        }
        for part in 0..self.reduces.len() as u32 {
            if self.reduces[part as usize] != Slot::Pending {
                continue;
            }
            let sources = self.sources(part);
            if sources.is_empty() {
                self.reduces[part as usize] = Slot::Done(ReduceDone::Empty);
                continue;
            }
            let job = self.reduce_job(part, sources);
            self.reduces[part as usize] = Slot::Running(job.id.clone());
            self.running.insert(job.id.clone(), TaskRef::Reduce(part));
            self.outbox.push_back(job);
        }
        self.stats.reduce_tasks = self
            .reduces
            .iter()
            .filter(|r| !matches!(r, Slot::Done(ReduceDone::Empty)))
            .count() as u32;
    }

    /// Per split: its input and the records of the earlier splits (by
    /// index) of that input.
    fn compute_split_infos(&self) -> Vec<SplitInfo> {
        let mut offsets: FxHashMap<u32, u64> = FxHashMap::default();
        let mut infos = Vec::with_capacity(self.splits.len());
        for (split, slot) in self.splits.iter().zip(&self.maps) {
            let offset = offsets.entry(split.file).or_insert(0);
            infos.push(SplitInfo {
                file: split.file,
                record_offset: *offset,
            });
            if let Slot::Done(done) = slot {
                *offset = offset.saturating_add(done.records);
            }
        }
        infos
    }

    fn sources(&self, part: u32) -> Vec<SourceLocation> {
        let mut sources = Vec::new();
        for (task, slot) in self.maps.iter().enumerate() {
            if let Slot::Done(done) = slot {
                if done.partitions[part as usize].pairs > 0 {
                    sources.push(SourceLocation {
                        node: done.node.clone(),
                        task: task as u32,
                    });
                }
            }
        }
        sources
    }

    fn next_id(&mut self, task: &str) -> JobId {
        self.generation += 1;
        let id = format!("{}.{task}.g{}", self.config.job, self.generation);
        // The job id was validated, so the derived id is valid too.
        JobId::new(&id).unwrap_or_default()
    }

    fn task_job(&self, kind: &str, data: String, id: JobId) -> Job {
        let mut job = Job::new(kind, data)
            .with_id(id)
            .with_timeout(self.config.task_timeout)
            .with_max_attempts(self.config.max_attempts.max(1));
        job.tags = self.config.tags.clone();
        job
    }

    fn map_job(&mut self, index: u32) -> Job {
        let task = MapTask {
            job: self.config.job.clone(),
            spec: self.config.spec.clone(),
            reducers: self.config.reducers,
            split: self.splits[index as usize],
            input_node: self.config.input_node.clone(),
        };
        let id = self.next_id(&format!("m{index}"));
        let data = serde_json::to_string(&task).unwrap_or_default();
        self.task_job(MAP_KIND, data, id)
    }

    fn reduce_job(&mut self, part: u32, sources: Vec<SourceLocation>) -> Job {
        let task = ReduceTask {
            job: self.config.job.clone(),
            spec: self.config.spec.clone(),
            partition: part,
            sources,
            splits: self.split_infos.clone(),
        };
        let id = self.next_id(&format!("r{part}"));
        let data = serde_json::to_string(&task).unwrap_or_default();
        self.task_job(REDUCE_KIND, data, id)
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
