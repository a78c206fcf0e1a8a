//! An in-process executor: simulated nodes (a [`WorkerEngine`] and a
//! [`PartitionStore`] each) behind a real [`CoordinatorCore`], so every task
//! gets the job semantics (eligibility, strategy, timeout, retry).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, Mutex};

use crate::coordinator::{Action, CoordinatorConfig, CoordinatorCore, NodeInfo};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::HandlerRegistry;
use crate::job::{Job, JobResult};
use crate::strategy::StrategyKind;
use crate::worker::{WorkerConfig, WorkerEngine, WorkerEvent};

use super::builtins::{InvertedIndex, Posting, WordCount};
use super::driver::{DriverConfig, DriverStats, MapReduceDriver, Phase};
use super::error::MapReduceError;
use super::handlers::MapReduceWorker;
use super::report::{record_result, NodeTasks};
use super::spec::{merge_reduced, MapReduce, MapReduceRegistry};
use super::split::{plan_splits_async, Input, Located, SplitSpec};
use super::store::{BlobId, InMemoryFetcher, PartitionFetcher, PartitionStore, StoreError};

/// Settings of a [`LocalExecutor`].
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Simulated nodes (>= 1), named `local-0`, `local-1`, ...; inputs are
    /// staged on `local-0`.
    pub nodes: usize,
    /// Worker loops per node (>= 1).
    pub workers_per_node: usize,
    /// Byte limit of each node's store.
    pub store_limit: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            nodes: 1,
            workers_per_node: std::thread::available_parallelism().map_or(2, |n| n.get()),
            store_limit: usize::MAX,
        }
    }
}

/// Settings of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The target number of splits (see [`plan_splits`](super::plan_splits)).
    pub splits: usize,
    /// The number of reducers (R >= 1).
    pub reducers: u32,
    /// The per-attempt timeout of each task.
    pub task_timeout: Duration,
    /// The attempts of each task.
    pub max_attempts: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            splits: 8,
            reducers: 4,
            task_timeout: Job::DEFAULT_TIMEOUT,
            max_attempts: Job::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Wall-clock time per phase of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Planning splits and staging inputs.
    pub plan: Duration,
    /// Until every map output was available.
    pub map: Duration,
    /// Until every reduce output was available.
    pub reduce: Duration,
    /// Fetching and merging the reduce outputs.
    pub merge: Duration,
}

impl PhaseTimings {
    /// The whole run.
    pub fn total(&self) -> Duration {
        self.plan + self.map + self.reduce + self.merge
    }
}

/// The result of a run: entries sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct MapReduceOutput<K, O> {
    /// `(key, output)` sorted by key.
    pub entries: Vec<(K, O)>,
    /// The input names, by input index (what [`Posting::file`] refers to).
    pub inputs: Vec<String>,
    /// The driver's figures.
    pub stats: DriverStats,
    /// Time per phase.
    pub timings: PhaseTimings,
    /// What each node ran (final task results), sorted by node.
    pub nodes: Vec<NodeTasks>,
}

struct LocalNode {
    name: String,
    store: PartitionStore,
    engine: WorkerEngine<()>,
}

struct RunState {
    core: CoordinatorCore,
    nodes: Vec<NodeTasks>,
    results: mpsc::UnboundedReceiver<JobResult>,
    killed: mpsc::UnboundedReceiver<String>,
}

/// Runs map-reduce jobs in process, on simulated nodes.
///
/// Each node has its own worker engine (with the `mr.map` and `mr.reduce`
/// handlers) and its own partition store; shuffle data moves between stores
/// through an [`InMemoryFetcher`], exactly as it would between nodes. Task
/// jobs go through a [`CoordinatorCore`] (least-in-flight strategy), so
/// timeouts and retries behave as in a cluster. Runs on one executor are
/// serialized.
///
/// ```
/// use job_queue::mapreduce::{Input, LocalConfig, LocalExecutor, RunOptions};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = LocalConfig { nodes: 2, workers_per_node: 1, ..LocalConfig::default() };
/// let executor = LocalExecutor::start(config).unwrap();
/// let inputs = [Input::new("a.txt", "the cat and the hat")];
/// let out = executor.word_count(&inputs, &RunOptions::default()).await.unwrap();
/// assert_eq!(out.entries[3], ("the".to_owned(), 2));
/// executor.shutdown().await;
/// # }
/// ```
pub struct LocalExecutor {
    nodes: Vec<LocalNode>,
    fetcher: InMemoryFetcher,
    jobs: Arc<MapReduceRegistry>,
    state: Mutex<RunState>,
    next_job: AtomicU64,
    kill: mpsc::UnboundedSender<String>,
}

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("LocalExecutor")
            .field("nodes", &nodes)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// Copies and reads nothing: stores each split of `inputs` in `store` as
/// [`BlobId::input`] — a slice of the input's `Bytes` for an input in
/// memory, the file range for a file read on demand ([`Input::open`]),
/// which the store reads when a map task fetches it. Returns the bytes
/// staged.
///
/// # Errors
///
/// [`StoreError`] if the store refuses a split (limit reached, or the job
/// has ended).
pub fn stage_inputs(
    store: &PartitionStore,
    job: &str,
    inputs: &[Input],
    splits: &[SplitSpec],
) -> Result<u64, StoreError> {
    let mut staged = 0;
    for split in splits {
        let id = BlobId::input(job, split.index);
        match inputs
            .get(split.file as usize)
            .and_then(|i| i.locate(split))
        {
            Some(Located::Memory(bytes)) => {
                staged += bytes.len() as u64;
                store.put(id, bytes)?;
            }
            Some(Located::File(range)) => {
                staged += range.len;
                store.put_file(id, range)?;
            }
            // A split that does not fit the inputs is staged empty.
            None => store.put(id, Bytes::new())?,
        }
    }
    Ok(staged)
}

impl LocalExecutor {
    /// Starts an executor with the built-in jobs.
    ///
    /// # Errors
    ///
    /// [`MapReduceError::Engine`] if a worker loop cannot start (for
    /// instance outside a Tokio runtime).
    pub fn start(config: LocalConfig) -> Result<Self, MapReduceError> {
        LocalExecutor::with_jobs(config, MapReduceRegistry::with_builtins())
    }

    /// Starts an executor running the jobs of `jobs`.
    ///
    /// # Errors
    ///
    /// [`MapReduceError::Engine`] if a worker loop cannot start.
    pub fn with_jobs(config: LocalConfig, jobs: MapReduceRegistry) -> Result<Self, MapReduceError> {
        let jobs = Arc::new(jobs);
        let fetcher = InMemoryFetcher::new();
        let (tx, results) = mpsc::unbounded_channel();
        let mut core = CoordinatorCore::new(CoordinatorConfig {
            node: "local-driver".to_owned(),
            strategy: StrategyKind::LeastInFlight,
            seed: Some(1),
            ..CoordinatorConfig::default()
        });
        let mut nodes = Vec::with_capacity(config.nodes.max(1));
        for i in 0..config.nodes.max(1) {
            let name = format!("local-{i}");
            let store = PartitionStore::with_limit(config.store_limit);
            fetcher.add_node(name.clone(), store.clone());
            let worker =
                MapReduceWorker::new(jobs.clone(), store.clone(), Arc::new(fetcher.clone()));
            let mut handlers = HandlerRegistry::new();
            worker.register(&mut handlers);
            core.update_node(
                NodeInfo::up(name.clone(), handlers.kind_tags()),
                Instant::now(),
            );
            let worker_config = WorkerConfig {
                node: name.clone(),
                workers: config.workers_per_node.max(1),
                ..WorkerConfig::default()
            };
            let (engine, events) = WorkerEngine::start(worker_config, Arc::new(handlers))?;
            tokio::spawn(forward_results(events, tx.clone()));
            nodes.push(LocalNode {
                name,
                store,
                engine,
            });
        }
        let (kill, killed) = mpsc::unbounded_channel();
        Ok(LocalExecutor {
            nodes,
            fetcher,
            jobs,
            state: Mutex::new(RunState {
                core,
                nodes: Vec::new(),
                results,
                killed,
            }),
            next_job: AtomicU64::new(1),
            kill,
        })
    }

    /// The simulated nodes' names.
    pub fn nodes(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Simulates the death of node `node`: its store becomes unreachable at
    /// once, and the run in progress (or the next one) treats it as Down:
    /// its running tasks are retried elsewhere, and outputs it held are
    /// produced again. Killing `local-0`, which holds the staged inputs,
    /// makes map tasks that still need them fail. Returns whether the node
    /// existed and was alive.
    pub fn kill_node(&self, node: &str) -> bool {
        let alive = self.fetcher.remove_node(node).is_some();
        if alive {
            let _ = self.kill.send(node.to_owned());
        }
        alive
    }

    /// The store of node `node` (`None` once killed).
    pub fn store(&self, node: &str) -> Option<PartitionStore> {
        self.fetcher.store(node)
    }

    /// Word count of `inputs` (see [`WordCount`]).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn word_count(
        &self,
        inputs: &[Input],
        options: &RunOptions,
    ) -> Result<MapReduceOutput<String, u64>, MapReduceError> {
        self.run(&WordCount, inputs, options).await
    }

    /// Inverted index of `inputs` (see [`InvertedIndex`]).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn inverted_index(
        &self,
        inputs: &[Input],
        options: &RunOptions,
    ) -> Result<MapReduceOutput<String, Vec<Posting>>, MapReduceError> {
        self.run(&InvertedIndex, inputs, options).await
    }

    /// Runs `job` (which must be registered under its name) over `inputs`.
    ///
    /// # Errors
    ///
    /// [`MapReduceError::UnknownJob`], a task that failed for good
    /// ([`MapReduceError::TaskFailed`]), a full store, or
    /// [`MapReduceError::ExecutorClosed`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled run leaves its tasks running; their
    /// results are ignored by later runs.
    pub async fn run<J: MapReduce>(
        &self,
        job: &J,
        inputs: &[Input],
        options: &RunOptions,
    ) -> Result<MapReduceOutput<J::Key, J::Output>, MapReduceError> {
        if !self.jobs.contains(job.name()) {
            return Err(MapReduceError::UnknownJob {
                name: job.name().to_owned(),
            });
        }
        let mut state = self.state.lock().await;
        let id = format!("local-{}", self.next_job.fetch_add(1, Ordering::Relaxed));
        let outcome = self
            .run_locked::<J::Key, J::Output>(&mut state, &id, job.name(), inputs, options)
            .await;
        for node in &self.nodes {
            node.store.remove_job(&id);
        }
        outcome
    }

    async fn run_locked<K: Ord + DeserializeOwned, O: DeserializeOwned>(
        &self,
        state: &mut RunState,
        id: &str,
        spec: &str,
        inputs: &[Input],
        options: &RunOptions,
    ) -> Result<MapReduceOutput<K, O>, MapReduceError> {
        let started = Instant::now();
        let mut timings = PhaseTimings::default();
        let splits = plan_splits_async(inputs, options.splits)
            .await
            .map_err(MapReduceError::Input)?;
        stage_inputs(&self.nodes[0].store, id, inputs, &splits)?;
        let mut config = DriverConfig::new(id, spec, options.reducers, self.nodes[0].name.clone());
        config.task_timeout = options.task_timeout;
        config.max_attempts = options.max_attempts;
        let mut driver = MapReduceDriver::new(config, splits)?;
        state.nodes.clear();
        timings.plan = started.elapsed();
        loop {
            self.drive(state, &mut driver, &mut timings).await?;
            let merge_start = Instant::now();
            match self.fetch_outputs(&driver).await {
                Ok(blobs) => {
                    let entries = merge_reduced::<K, O>(blobs)?;
                    timings.merge = merge_start.elapsed();
                    return Ok(MapReduceOutput {
                        entries,
                        inputs: inputs.iter().map(|i| i.name.clone()).collect(),
                        stats: driver.stats().clone(),
                        timings,
                        nodes: std::mem::take(&mut state.nodes),
                    });
                }
                Err(partition) => driver.on_output_lost(partition),
            }
        }
    }

    /// Runs the driver until every reduce output is available.
    async fn drive(
        &self,
        state: &mut RunState,
        driver: &mut MapReduceDriver,
        timings: &mut PhaseTimings,
    ) -> Result<(), MapReduceError> {
        let mut phase_start = Instant::now();
        loop {
            self.pump(state, driver).await?;
            let phase = driver.phase();
            if phase != Phase::Map && timings.map.is_zero() {
                timings.map = phase_start.elapsed();
                phase_start = Instant::now();
            }
            match phase {
                Phase::Failed => {
                    return Err(driver
                        .take_error()
                        .unwrap_or(MapReduceError::ExecutorClosed))
                }
                Phase::Merge => {
                    timings.reduce += phase_start.elapsed();
                    return Ok(());
                }
                _ => {}
            }
            let wakeup = state.core.next_wakeup();
            let sleep = async {
                match wakeup {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(node) = state.killed.recv() => {
                    state.core.member_down(&node, Instant::now());
                    driver.on_node_down(&node);
                }
                result = state.results.recv() => {
                    let result = result.ok_or(MapReduceError::ExecutorClosed)?;
                    let node = result.worker_node.clone();
                    state.core.result_received(result, &node, Instant::now());
                }
                () = sleep => state.core.tick(Instant::now()),
            }
        }
    }

    /// Moves tasks from the driver to the coordinator, and the
    /// coordinator's actions to the engines and the driver, until both are
    /// idle.
    async fn pump(
        &self,
        state: &mut RunState,
        driver: &mut MapReduceDriver,
    ) -> Result<(), MapReduceError> {
        loop {
            let mut progressed = false;
            while let Some(job) = driver.poll_job() {
                progressed = true;
                state.core.submit(job, Instant::now())?;
            }
            while let Some(action) = state.core.poll_action() {
                progressed = true;
                match action {
                    Action::Dispatch { job, node } => self.dispatch(state, job, &node).await,
                    Action::Complete(result) => {
                        record_result(&mut state.nodes, &result);
                        driver.on_result(&result);
                    }
                    _ => {}
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    async fn dispatch(&self, state: &mut RunState, job: Job, node: &str) {
        let (id, attempt) = (job.id.clone(), job.attempt);
        let engine = self
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| &n.engine);
        let delivered = match engine {
            Some(engine) => engine.submit(job, ()).await.is_ok(),
            None => false,
        };
        if !delivered {
            let failure = JobFailure::new(
                FailureCause::Undeliverable,
                format!("node {node} is not running"),
            );
            state
                .core
                .attempt_failed(&id, attempt, failure, Instant::now());
        }
    }

    /// The reduce outputs, by partition; `Err(partition)` names one that
    /// could not be fetched.
    async fn fetch_outputs(&self, driver: &MapReduceDriver) -> Result<Vec<Bytes>, u32> {
        let job = &driver.config().job;
        let mut blobs = Vec::new();
        for location in driver.outputs() {
            let id = BlobId::reduce_output(job, location.partition);
            match self.fetcher.fetch(&location.node, &id).await {
                Ok(blob) => blobs.push(blob),
                Err(err) => {
                    tracing::warn!(%err, "reduce output lost");
                    return Err(location.partition);
                }
            }
        }
        Ok(blobs)
    }

    /// Stops every node's engine after its queued tasks.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.engine.shutdown().await;
        }
    }
}

async fn forward_results(
    mut events: mpsc::Receiver<WorkerEvent<()>>,
    results: mpsc::UnboundedSender<JobResult>,
) {
    while let Some(event) = events.recv().await {
        if let WorkerEvent::Finished { result, .. } = event {
            if results.send(result).is_err() {
                return;
            }
        }
    }
}
