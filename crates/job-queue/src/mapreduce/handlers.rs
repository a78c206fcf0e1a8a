//! The `mr.map` and `mr.reduce` job handlers a worker node registers.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use crate::failure::HandlerError;
use crate::handler::{HandlerRegistry, JobContext};

use super::fetch::{FetchError, PartitionFetcher};
use super::spec::{ErasedJob, MapReduceRegistry, ReduceContext};
use super::store::{BlobId, PartitionStore, StoreError};
use super::task::{
    MapReport, MapTask, PartitionInfo, ReduceReport, ReduceTask, SourceLocation, MAP_KIND,
    MAX_REDUCERS, REDUCE_KIND,
};

/// How many map outputs a reduce task fetches at once.
const FETCH_CONCURRENCY: usize = 8;

/// A full store may have room on another node (retryable); an ended job
/// will not come back (permanent).
fn store_failure(err: StoreError) -> HandlerError {
    match err {
        StoreError::JobEnded { .. } => HandlerError::permanent(err),
        _ => HandlerError::retryable(err),
    }
}

/// The worker side of map-shuffle-reduce on one node: runs map and reduce
/// tasks, keeps their outputs in this node's [`PartitionStore`], and fetches
/// other nodes' outputs through a [`PartitionFetcher`].
#[derive(Clone)]
pub(crate) struct MapReduceWorker {
    jobs: Arc<MapReduceRegistry>,
    store: PartitionStore,
    fetcher: Arc<dyn PartitionFetcher>,
}

impl fmt::Debug for MapReduceWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReduceWorker")
            .field("jobs", &self.jobs)
            .field("store_bytes", &self.store.bytes())
            .finish_non_exhaustive()
    }
}

impl MapReduceWorker {
    /// A worker running the jobs of `jobs`, storing outputs in `store` (this
    /// node's store) and reading other nodes' stores through `fetcher`.
    pub(crate) fn new(
        jobs: Arc<MapReduceRegistry>,
        store: PartitionStore,
        fetcher: Arc<dyn PartitionFetcher>,
    ) -> Self {
        MapReduceWorker {
            jobs,
            store,
            fetcher,
        }
    }

    /// Registers the [`MAP_KIND`] and [`REDUCE_KIND`] handlers.
    pub(crate) fn register(&self, handlers: &mut HandlerRegistry) {
        let map = self.clone();
        handlers.register(MAP_KIND, move |ctx: JobContext| {
            let worker = map.clone();
            async move { worker.run_map(ctx).await }
        });
        let reduce = self.clone();
        handlers.register(REDUCE_KIND, move |ctx: JobContext| {
            let worker = reduce.clone();
            async move { worker.run_reduce(ctx).await }
        });
    }

    /// This node's store.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &PartitionStore {
        &self.store
    }

    fn job(&self, name: &str) -> Result<Arc<dyn ErasedJob>, HandlerError> {
        self.jobs
            .get(name)
            .ok_or_else(|| HandlerError::permanent(format!("no map-reduce job named {name:?}")))
    }

    /// Reads a blob from this node's store or, if `holder` is another node,
    /// through the fetcher.
    async fn fetch(&self, me: &str, holder: &str, id: &BlobId) -> Result<Bytes, FetchError> {
        if holder == me {
            return self.store.read(holder, id).await;
        }
        self.fetcher.fetch(holder, id).await
    }

    async fn run_map(&self, ctx: JobContext) -> Result<String, HandlerError> {
        let task: MapTask = ctx.json()?;
        if task.reducers == 0 || task.reducers > MAX_REDUCERS {
            let reducers = task.reducers;
            return Err(HandlerError::bad_data(format!(
                "{reducers} reducers: expected 1..={MAX_REDUCERS}"
            )));
        }
        let job = self.job(&task.spec)?;
        let input_id = BlobId::input(&task.job, task.split.index);
        let text = self
            .fetch(ctx.node(), &task.input_node, &input_id)
            .await
            .map_err(HandlerError::retryable)?;
        let split = task.split;
        let reducers = task.reducers;
        let mapped =
            tokio::task::spawn_blocking(move || job.map_partitions(&split, text, reducers))
                .await
                .map_err(|e| HandlerError::permanent(format!("map function failed: {e}")))?
                .map_err(HandlerError::permanent)?;
        let mut partitions = Vec::with_capacity(mapped.partitions.len());
        for (partition, blob) in mapped.partitions.into_iter().enumerate() {
            let Some((data, pairs)) = blob else {
                partitions.push(PartitionInfo::default());
                continue;
            };
            let bytes = data.len() as u64;
            let id = BlobId::map_output(&task.job, split.index, partition as u32);
            self.store
                .put(id, Bytes::from(data))
                .map_err(store_failure)?;
            partitions.push(PartitionInfo { pairs, bytes });
        }
        let report = MapReport {
            node: ctx.node().to_owned(),
            task: split.index,
            records: mapped.records,
            partitions,
        };
        serde_json::to_string(&report).map_err(HandlerError::permanent)
    }

    async fn run_reduce(&self, ctx: JobContext) -> Result<String, HandlerError> {
        let task: ReduceTask = ctx.json()?;
        let job = self.job(&task.spec)?;
        let me = ctx.node().to_owned();
        let fetched: Vec<(SourceLocation, Result<Bytes, FetchError>)> =
            stream::iter(task.sources.iter().cloned())
                .map(|source| {
                    let id = BlobId::map_output(&task.job, source.task, task.partition);
                    let me = &me;
                    async move {
                        let blob = self.fetch(me, &source.node, &id).await;
                        (source, blob)
                    }
                })
                .buffered(FETCH_CONCURRENCY)
                .collect()
                .await;
        let mut blobs = Vec::with_capacity(fetched.len());
        let mut lost = Vec::new();
        for (source, blob) in fetched {
            match blob {
                Ok(blob) => blobs.push(blob),
                Err(err) => {
                    tracing::warn!(%err, job = %task.job, "map output lost");
                    lost.push(source);
                }
            }
        }
        let report = if lost.is_empty() {
            self.reduce_fetched(job, task, blobs, me).await?
        } else {
            ReduceReport::Missing {
                node: me,
                partition: task.partition,
                lost,
            }
        };
        serde_json::to_string(&report).map_err(HandlerError::permanent)
    }

    async fn reduce_fetched(
        &self,
        job: Arc<dyn ErasedJob>,
        task: ReduceTask,
        blobs: Vec<Bytes>,
        me: String,
    ) -> Result<ReduceReport, HandlerError> {
        let splits = task.splits;
        let reduced = tokio::task::spawn_blocking(move || {
            job.reduce_partition(blobs, &ReduceContext { splits: &splits })
        })
        .await
        .map_err(|e| HandlerError::permanent(format!("reduce function failed: {e}")))?
        .map_err(HandlerError::permanent)?;
        let bytes = reduced.data.len() as u64;
        self.store
            .put(
                BlobId::reduce_output(&task.job, task.partition),
                Bytes::from(reduced.data),
            )
            .map_err(store_failure)?;
        Ok(ReduceReport::Done {
            node: me,
            partition: task.partition,
            keys: reduced.keys,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;
    use crate::mapreduce::fetch::InMemoryFetcher;
    use crate::mapreduce::split::SplitSpec;
    use std::time::Duration;

    fn worker(fetcher: &InMemoryFetcher, node: &str) -> MapReduceWorker {
        let store = PartitionStore::new();
        fetcher.add_node(node, store.clone());
        MapReduceWorker::new(
            Arc::new(MapReduceRegistry::with_builtins()),
            store,
            Arc::new(fetcher.clone()),
        )
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("timed out")
    }

    #[tokio::test]
    async fn map_then_reduce_across_nodes_and_report_lost_outputs() {
        let fetcher = InMemoryFetcher::new();
        let (a, b) = (worker(&fetcher, "a"), worker(&fetcher, "b"));
        let text = Bytes::from_static(b"x y x");
        a.store().put(BlobId::input("j", 0), text).unwrap();
        let split = SplitSpec {
            index: 0,
            file: 0,
            start: 0,
            end: 5,
        };
        let map = MapTask {
            job: "j".into(),
            spec: "wordcount".into(),
            reducers: 1,
            split,
            input_node: "a".into(),
        };
        let job = Job::new(MAP_KIND, serde_json::to_string(&map).unwrap());
        let out = within(b.run_map(JobContext::new(job, "b"))).await.unwrap();
        let report: MapReport = serde_json::from_str(&out).unwrap();
        assert_eq!((report.node.as_str(), report.records), ("b", 3));
        assert_eq!(report.partitions[0].pairs, 2);

        let mut reduce = ReduceTask {
            job: "j".into(),
            spec: "wordcount".into(),
            partition: 0,
            sources: vec![SourceLocation {
                node: "b".into(),
                task: 0,
            }],
            splits: Vec::new(),
        };
        let job = Job::new(REDUCE_KIND, serde_json::to_string(&reduce).unwrap());
        let out = within(a.run_reduce(JobContext::new(job, "a")))
            .await
            .unwrap();
        assert!(matches!(
            serde_json::from_str(&out).unwrap(),
            ReduceReport::Done { keys: 2, .. }
        ));

        fetcher.remove_node("b");
        reduce.sources.push(SourceLocation {
            node: "a".into(),
            task: 9,
        });
        let job = Job::new(REDUCE_KIND, serde_json::to_string(&reduce).unwrap());
        let out = within(a.run_reduce(JobContext::new(job, "a")))
            .await
            .unwrap();
        let ReduceReport::Missing { lost, .. } = serde_json::from_str(&out).unwrap() else {
            panic!("expected a missing report: {out}");
        };
        assert_eq!(lost.len(), 2);
    }

    #[tokio::test]
    async fn bad_data_and_unknown_jobs_are_permanent() {
        let fetcher = InMemoryFetcher::new();
        let a = worker(&fetcher, "a");
        let bad = within(a.run_map(JobContext::new(Job::new(MAP_KIND, "{"), "a"))).await;
        assert!(matches!(bad, Err(HandlerError::BadData(_))));
        let map = MapTask {
            job: "j".into(),
            spec: "wordcount".into(),
            reducers: u32::MAX,
            split: SplitSpec {
                index: 0,
                file: 0,
                start: 0,
                end: 0,
            },
            input_node: "a".into(),
        };
        let job = Job::new(MAP_KIND, serde_json::to_string(&map).unwrap());
        let bad = within(a.run_map(JobContext::new(job, "a"))).await;
        assert!(matches!(bad, Err(HandlerError::BadData(_))));
        let task = ReduceTask {
            job: "j".into(),
            spec: "nope".into(),
            partition: 0,
            sources: Vec::new(),
            splits: Vec::new(),
        };
        let job = Job::new(REDUCE_KIND, serde_json::to_string(&task).unwrap());
        let err = within(a.run_reduce(JobContext::new(job, "a")))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
    }
}
