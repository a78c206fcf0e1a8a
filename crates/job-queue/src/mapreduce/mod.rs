//! Map-shuffle-reduce on the job queue (see `docs/mapreduce.md`).
//!
//! # Guide
//!
//! A job is defined by a [`MapReduce`] implementation (map, combine,
//! reduce), registered by name in a [`MapReduceRegistry`] like a job kind;
//! [`WordCount`] (`wordcount`) and [`InvertedIndex`] (`index`) are built in.
//!
//! 1. **Plan.** [`plan_splits`] cuts the inputs into byte-range splits on
//!    word boundaries; [`stage_inputs`] puts them in the driver node's
//!    [`PartitionStore`].
//! 2. **Map.** [`MapReduceDriver`] emits one `mr.map` [`Job`](crate::Job)
//!    per split. The [`MapReduceWorker`] handler on the chosen node fetches
//!    its split, maps it, combines values per key, partitions keys by
//!    [`stable_hash`] into R partitions, keeps the encoded partitions in
//!    *its own* store and reports only their sizes.
//! 3. **Reduce.** When every map is done, the driver emits one `mr.reduce`
//!    job per non-empty partition, listing which node holds which map
//!    output. The reducer fetches them through a [`PartitionFetcher`],
//!    reduces every key, and keeps the sorted result in its store.
//! 4. **Merge.** The driver's side fetches the R sorted outputs and merges
//!    them into one list sorted by key.
//!
//! Tasks are ordinary jobs, so they get timeouts, retries and reassignment
//! from the coordinator. Outputs lost with a node are produced again: the
//! driver re-runs the map tasks whose outputs lived there (on
//! [`MapReduceDriver::on_node_down`], or when a reducer reports it could not
//! fetch them).
//!
//! Words are maximal runs of ASCII letters after lowercasing; every other
//! byte separates, so input is handled as bytes and need not be UTF-8.
//!
//! # Example
//!
//! ```
//! use job_queue::mapreduce::{reference_word_count, Input, LocalConfig, LocalExecutor, RunOptions};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let executor = LocalExecutor::start(LocalConfig { nodes: 3, workers_per_node: 1, ..LocalConfig::default() }).unwrap();
//! let inputs = [Input::new("a", "To be, or not to be"), Input::new("b", &b"NOT\xff again"[..])];
//! let options = RunOptions { splits: 4, reducers: 2, ..RunOptions::default() };
//! let out = executor.word_count(&inputs, &options).await.unwrap();
//! assert_eq!(out.entries, reference_word_count(&inputs));
//! assert_eq!(out.entries[2], ("not".to_owned(), 2));
//! executor.shutdown().await;
//! # }
//! ```

mod builtins;
mod cluster;
mod corpus;
mod driver;
mod error;
mod fetch;
mod handlers;
mod local;
mod node;
mod reference;
mod report;
mod source;
mod spec;
mod split;
mod store;
mod task;
mod wire;
mod words;

pub use builtins::{InvertedIndex, Posting, SplitPositions, WordCount};
pub use cluster::{ClusterMapReduce, NoObserver, RunEvent, RunObserver};
pub use corpus::{generate_corpus, generate_inputs, CorpusConfig};
pub use driver::{DriverConfig, DriverStats, MapReduceDriver, OutputLocation, Phase, TaskProgress};
pub use error::MapReduceError;
pub use fetch::{FetchConfig, RouterFetcher, MAX_CHUNK, PARTITIONS};
pub use handlers::MapReduceWorker;
pub use local::{
    stage_inputs, LocalConfig, LocalExecutor, MapReduceOutput, PhaseTimings, RunOptions,
};
pub use node::{MapReduceNode, MapReduceNodeConfig};
pub use reference::{reference_inverted_index, reference_word_count, top_words};
pub use report::NodeTasks;
pub use spec::{MapInput, MapOutput, MapReduce, MapReduceRegistry, ReduceContext, SplitInfo};
pub use split::{plan_splits, split_bytes, Input, SplitSpec};
pub use store::{
    BlobId, FetchError, InMemoryFetcher, PartitionFetcher, PartitionStore, Stage, StoreError,
};
pub use task::{MAP_KIND, MAX_REDUCERS, REDUCE_KIND};
pub use wire::WireError;
pub use words::{
    is_word_byte, normalize, normalize_into, partition_of, stable_hash, words, ShuffleKey, Words,
};
