//! Map-shuffle-reduce on the job queue (see `docs/mapreduce.md`).
//!
//! # Guide
//!
//! A job is defined by a [`MapReduce`] implementation (map, combine,
//! reduce), registered by name in a [`MapReduceRegistry`] like a job kind;
//! [`WordCount`] (`wordcount`) and [`InvertedIndex`] (`index`) are built in.
//!
//! Every node that runs tasks starts a [`MapReduceNode`] (its
//! [`PartitionStore`], served to the other nodes by its `partitions` actor)
//! and registers its `mr.map` / `mr.reduce` handlers into its
//! [`WorkerPool`](crate::WorkerPool). The node that drives a job wraps its
//! own `MapReduceNode` and [`Coordinator`](crate::Coordinator) in a
//! [`ClusterMapReduce`] and calls [`ClusterMapReduce::run`] (or
//! `word_count` / `inverted_index`) with [`Input`]s and [`RunOptions`]:
//!
//! 1. **Plan.** [`plan_splits`] cuts the inputs into byte-range splits on
//!    word boundaries; the driver stages them in its own store (a file
//!    opened with [`Input::open`] is staged as byte ranges, read on demand).
//! 2. **Map.** The driver submits one `mr.map` [`Job`](crate::Job) per
//!    split. The handler on the chosen node fetches its split, maps it,
//!    combines values per key, partitions keys by [`stable_hash`]
//!    into R partitions, keeps the encoded partitions in *its own* store
//!    and reports only their sizes.
//! 3. **Reduce.** When every map is done, the driver submits one
//!    `mr.reduce` job per non-empty partition, listing which node holds
//!    which map output. The reducer fetches them, reduces every key, and
//!    keeps the sorted result in its store.
//! 4. **Merge.** The driver fetches the R sorted outputs and merges them
//!    into one list sorted by key: a [`MapReduceOutput`] with the run's
//!    [`DriverStats`], [`PhaseTimings`] and per-node [`NodeTasks`].
//!
//! Tasks are ordinary jobs, so they get timeouts, retries and reassignment
//! from the coordinator. Outputs lost with a node are produced again: the
//! driver re-runs the map tasks whose outputs lived there (when the node
//! goes Down, or when a reducer reports it could not fetch them). A
//! [`RunObserver`] sees the run's [`RunEvent`]s as they happen.
//!
//! Words are maximal runs of ASCII letters after lowercasing ([`normalize`],
//! [`words`]); every other byte separates, so input is handled as bytes and
//! need not be UTF-8.
//!
//! # Example
//!
//! One node that drives the job and runs its tasks (other nodes would join
//! its router with `RouterConfig::seeds` and install the same handlers):
//!
//! ```
//! use cluster_router::{Router, RouterConfig};
//! use job_queue::mapreduce::{ClusterMapReduce, Input, MapReduceNode, RunOptions};
//! use job_queue::{Coordinator, CoordinatorOptions, HandlerRegistry, WorkerPool, WorkerPoolConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let router = Router::start(RouterConfig::new("node-a", "cookie")).await.unwrap();
//! let mut handlers = HandlerRegistry::new();
//! let node = MapReduceNode::install(&router, &mut handlers).unwrap();
//! let pool = WorkerPool::start(&router, handlers, WorkerPoolConfig::default()).await.unwrap();
//! let coordinator = Coordinator::start(&router, CoordinatorOptions::default()).await.unwrap();
//! let driver = ClusterMapReduce::new(node.clone(), coordinator.clone());
//!
//! let inputs = [Input::new("a", "To be, or not to be"), Input::new("b", &b"NOT\xff again"[..])];
//! let options = RunOptions { splits: 4, reducers: 2, ..RunOptions::default() };
//! let out = driver.word_count(&inputs, &options).await.unwrap();
//! let words: Vec<(&str, u64)> = out.entries.iter().map(|(w, n)| (w.as_str(), *n)).collect();
//! assert_eq!(words, [("again", 1), ("be", 2), ("not", 2), ("or", 1), ("to", 2)]);
//!
//! coordinator.shutdown().await;
//! pool.shutdown().await;
//! node.shutdown();
//! router.shutdown().await;
//! # }
//! ```

mod builtins;
mod cluster;
mod counter;
mod driver;
mod error;
mod fetch;
mod handlers;
mod node;
mod observer;
mod report;
mod run;
mod server;
mod source;
mod spec;
mod split;
mod store;
mod task;
mod wire;
mod words;

pub use builtins::{InvertedIndex, Posting, SplitPositions, WordCount};
pub use cluster::ClusterMapReduce;
pub use driver::{DriverStats, Phase, TaskProgress};
pub use error::MapReduceError;
pub use fetch::{FetchConfig, FetchError};
pub use node::{MapReduceNode, MapReduceNodeConfig};
pub use observer::{NoObserver, RunEvent, RunObserver};
pub use report::NodeTasks;
pub use run::{MapReduceOutput, PhaseTimings, RunOptions};
pub use spec::{MapInput, MapOutput, MapReduce, MapReduceRegistry, ReduceContext, SplitInfo};
pub use split::{plan_splits, Input, SplitSpec};
pub use store::{BlobId, PartitionStore, Stage, StoreError};
pub use task::{engine_kind_refusal, is_engine_kind, MAP_KIND, MAX_REDUCERS, REDUCE_KIND};
pub use wire::WireError;
pub use words::{normalize, stable_hash, words, ShuffleKey, Words};
