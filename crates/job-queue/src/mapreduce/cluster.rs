//! [`ClusterMapReduce`]: the network driver. Task jobs go through a real
//! [`Coordinator`]; shuffle data moves between the nodes' `partitions`
//! actors.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::MemberEvent;
use futures_util::future::{join_all, BoxFuture};
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::error::JobError;
use crate::job::{JobId, JobResult};
use crate::service::Coordinator;

use super::builtins::{InvertedIndex, Posting, WordCount};
use super::driver::{DriverConfig, MapReduceDriver, Phase};
use super::error::MapReduceError;
use super::fetch::PartitionFetcher;
use super::node::MapReduceNode;
use super::observer::{NoObserver, RunEvent, RunObserver};
use super::report::{record_result, NodeTasks};
use super::run::{stage_inputs, MapReduceOutput, PhaseTimings, RunOptions};
use super::spec::{merge_reduced, MapReduce};
use super::split::{plan_splits_async, Input};
use super::store::BlobId;

/// Reduce outputs fetched at once by the merge.
const MERGE_FETCHES: usize = 4;
/// How long the end-of-job cleanup waits for the nodes' answers.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);

type Pending = BoxFuture<'static, (JobId, Result<JobResult, JobError>)>;

/// One run in progress.
struct Run {
    driver: MapReduceDriver,
    pending: FuturesUnordered<Pending>,
    members: Option<broadcast::Receiver<MemberEvent>>,
    timings: PhaseTimings,
    nodes: Vec<NodeTasks>,
}

/// Runs map-reduce jobs on a cluster.
///
/// The driver runs on this node: it splits the inputs and stages the
/// splits in this node's [`PartitionStore`](super::PartitionStore) (served
/// to the map tasks by its `partitions` actor, so this node must stay up
/// for the whole run), submits every map and reduce task as a [`Job`](crate::Job)
/// to `coordinator` — each gets eligibility by `kind:mr.map` /
/// `kind:mr.reduce` (and the configured tags), the dispatch strategy, a
/// timeout, retries and reassignment when its node dies — follows the
/// membership to re-run outputs lost with a node, fetches and merges the
/// reduce outputs, and finally tells every node to drop the job's data.
///
/// Job ids are `mr-<random>-<n>`: unique per driver, never reused.
pub struct ClusterMapReduce {
    node: MapReduceNode,
    coordinator: Coordinator,
    prefix: String,
    next: AtomicU64,
    tags: Vec<String>,
}

impl fmt::Debug for ClusterMapReduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterMapReduce")
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl ClusterMapReduce {
    /// A driver on `node` (this node's map-reduce runtime) submitting tasks
    /// to `coordinator` (normally this node's).
    pub fn new(node: MapReduceNode, coordinator: Coordinator) -> Self {
        ClusterMapReduce {
            node,
            coordinator,
            prefix: format!("mr-{:08x}", rand::random::<u32>()),
            next: AtomicU64::new(1),
            tags: Vec::new(),
        }
    }

    /// Tasks run only on nodes with every tag of `tags`.
    pub fn with_tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// This driver's node.
    pub fn node(&self) -> &MapReduceNode {
        &self.node
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
        self.run(&WordCount, inputs, options, &mut NoObserver).await
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
        self.run(&InvertedIndex, inputs, options, &mut NoObserver)
            .await
    }

    /// Runs `job` over `inputs`, reporting to `observer`. The workers must
    /// have `job` registered under its name (a task on a node that does
    /// not fails for good, and so does the run).
    ///
    /// # Errors
    ///
    /// [`MapReduceError::TaskFailed`] (a task out of attempts, or no node
    /// serving `mr.map` / `mr.reduce`), [`MapReduceError::Coordinator`],
    /// [`MapReduceError::TooManyRecoveries`], a full store, bad settings
    /// (`reducers` of 0 or too many).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled run leaves its tasks in the coordinator
    /// and its data on the nodes until they are dropped or restarted.
    pub async fn run<J: MapReduce>(
        &self,
        job: &J,
        inputs: &[Input],
        options: &RunOptions,
        observer: &mut dyn RunObserver,
    ) -> Result<MapReduceOutput<J::Key, J::Output>, MapReduceError> {
        let id = format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let outcome = self
            .run_job::<J::Key, J::Output>(&id, job.name(), inputs, options, observer)
            .await;
        self.cleanup(&id).await;
        outcome
    }

    async fn run_job<K, O>(
        &self,
        id: &str,
        spec: &str,
        inputs: &[Input],
        options: &RunOptions,
        observer: &mut dyn RunObserver,
    ) -> Result<MapReduceOutput<K, O>, MapReduceError>
    where
        K: Ord + DeserializeOwned + Send + 'static,
        O: DeserializeOwned + Send + 'static,
    {
        let started = Instant::now();
        let splits = plan_splits_async(inputs, options.splits)
            .await
            .map_err(MapReduceError::Input)?;
        let staged = stage_inputs(self.node.store(), id, inputs, &splits)?;
        let me = self.node.router().node_id().to_string();
        let mut config = DriverConfig::new(id, spec, options.reducers, me);
        config.task_timeout = options.task_timeout;
        config.max_attempts = options.max_attempts;
        config.tags = self.tags.clone();
        let maps = splits.len() as u32;
        let mut run = Run {
            driver: MapReduceDriver::new(config, splits)?,
            pending: FuturesUnordered::new(),
            // Subscribed before any task is out: no Down is missed.
            members: Some(self.node.router().subscribe()),
            timings: PhaseTimings::default(),
            nodes: Vec::new(),
        };
        run.timings.plan = started.elapsed();
        let planned = RunEvent::Planned {
            job: id.to_owned(),
            maps,
            reducers: options.reducers,
            bytes: staged,
        };
        observer.on_event(&planned).await;
        loop {
            self.drive(&mut run, observer).await?;
            let merge_start = Instant::now();
            match self.fetch_outputs(&run.driver, observer).await {
                Ok(blobs) => {
                    let entries = tokio::task::spawn_blocking(move || merge_reduced::<K, O>(blobs))
                        .await
                        .map_err(MapReduceError::MergeAborted)??;
                    run.timings.merge += merge_start.elapsed();
                    return Ok(MapReduceOutput {
                        entries,
                        inputs: inputs.iter().map(|i| i.name.clone()).collect(),
                        stats: run.driver.stats().clone(),
                        timings: run.timings,
                        nodes: run.nodes,
                    });
                }
                Err(partition) => {
                    run.timings.merge += merge_start.elapsed();
                    run.driver.on_output_lost(partition);
                }
            }
        }
    }

    /// Runs the driver until every reduce output is available.
    async fn drive(
        &self,
        run: &mut Run,
        observer: &mut dyn RunObserver,
    ) -> Result<(), MapReduceError> {
        let mut phase_start = Instant::now();
        loop {
            while let Some(job) = run.driver.poll_job() {
                let pending = self.coordinator.submit(job).await?;
                let id = pending.id().clone();
                run.pending
                    .push(Box::pin(async move { (id, pending.result().await) }));
            }
            let phase = run.driver.phase();
            if phase != Phase::Map && run.timings.map.is_zero() {
                run.timings.map = phase_start.elapsed();
                phase_start = Instant::now();
            }
            match phase {
                Phase::Failed => {
                    let job = run.driver.config().job.clone();
                    return Err(run
                        .driver
                        .take_error()
                        .unwrap_or(MapReduceError::Stalled { job, phase }));
                }
                Phase::Merge => {
                    run.timings.reduce += phase_start.elapsed();
                    return Ok(());
                }
                _ if run.pending.is_empty() => {
                    let job = run.driver.config().job.clone();
                    return Err(MapReduceError::Stalled { job, phase });
                }
                _ => {}
            }
            tokio::select! {
                Some((id, result)) = run.pending.next() => {
                    let result = result?;
                    debug_assert_eq!(result.id, id);
                    record_result(&mut run.nodes, &result);
                    run.driver.on_result(&result);
                    let event = RunEvent::TaskFinished {
                        task: id,
                        node: result.worker_node.clone(),
                        success: result.is_success(),
                        phase: run.driver.phase(),
                        progress: run.driver.progress(),
                    };
                    observer.on_event(&event).await;
                }
                lost = next_lost_node(&mut run.members) => {
                    run.driver.on_node_down(&lost);
                    let event = RunEvent::NodeLost { node: lost, progress: run.driver.progress() };
                    observer.on_event(&event).await;
                }
            }
        }
    }

    /// The reduce outputs, by partition; `Err(partition)` names one that
    /// could not be fetched.
    async fn fetch_outputs(
        &self,
        driver: &MapReduceDriver,
        observer: &mut dyn RunObserver,
    ) -> Result<Vec<Bytes>, u32> {
        let job = driver.config().job.clone();
        let outputs = driver.outputs();
        let total = outputs.len() as u32;
        let fetcher = self.node.fetcher();
        let mut fetches = stream::iter(outputs)
            .map(|location| {
                let id = BlobId::reduce_output(&job, location.partition);
                async move {
                    let blob = fetcher.fetch(&location.node, &id).await;
                    (location.partition, blob)
                }
            })
            .buffered(MERGE_FETCHES);
        let mut blobs = Vec::with_capacity(total as usize);
        while let Some((partition, blob)) = fetches.next().await {
            match blob {
                Ok(blob) => blobs.push(blob),
                Err(err) => {
                    tracing::warn!(%err, partition, "reduce output lost; reducing again");
                    return Err(partition);
                }
            }
            let event = RunEvent::OutputFetched {
                done: blobs.len() as u32,
                total,
            };
            observer.on_event(&event).await;
        }
        Ok(blobs)
    }

    /// Tells every reachable node (this one included) to drop job `id`'s
    /// blobs, waiting up to a few seconds for their answers.
    async fn cleanup(&self, id: &str) {
        let router = self.node.router();
        let nodes: Vec<String> = router
            .members()
            .into_iter()
            .filter(|m| m.status.is_reachable() || &m.node == router.node_id())
            .map(|m| m.node.to_string())
            .collect();
        let fetcher = self.node.fetcher();
        let drops = nodes.iter().map(|node| async move {
            if let Err(err) = fetcher.drop_job(node, id).await {
                tracing::debug!(%node, job = %id, %err, "cannot drop the job's data");
            }
        });
        if tokio::time::timeout(CLEANUP_TIMEOUT, join_all(drops))
            .await
            .is_err()
        {
            tracing::debug!(job = %id, "cleanup not acknowledged by every node in time");
        }
        self.node.store().remove_job(id);
    }
}

/// The next node that went Down or left (pending forever once the
/// membership stream has ended).
async fn next_lost_node(members: &mut Option<broadcast::Receiver<MemberEvent>>) -> String {
    loop {
        let Some(rx) = members.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(MemberEvent::Down(m) | MemberEvent::Left(m)) => return m.node.to_string(),
            Ok(_) => {}
            // A missed Down is caught by the reducers, which report the
            // outputs they cannot fetch.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => *members = None,
        }
    }
}
