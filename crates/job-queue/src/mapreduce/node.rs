//! [`MapReduceNode`]: a node's share of map-shuffle-reduce on a cluster —
//! its [`PartitionStore`], the `partitions@<node>` actor serving it, and
//! the `mr.map` / `mr.reduce` handlers.

use std::fmt;
use std::sync::Arc;

use actor_core::{spawn_with, ActorRef, SpawnOptions};
use cluster_router::{Envelope, Router};

use crate::handler::HandlerRegistry;

use super::error::MapReduceError;
use super::fetch::{FetchConfig, RouterFetcher};
use super::handlers::MapReduceWorker;
use super::server::{PartitionServer, PARTITIONS};
use super::spec::MapReduceRegistry;
use super::store::PartitionStore;

/// Settings of a [`MapReduceNode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapReduceNodeConfig {
    /// Byte limit of the node's store (a blob past it fails its task with
    /// a retryable error). Default: unlimited.
    pub store_limit: usize,
    /// How this node fetches blobs from others.
    pub fetch: FetchConfig,
    /// Capacity of the partition actor's mailbox. Default 1024.
    pub mailbox: usize,
}

impl Default for MapReduceNodeConfig {
    fn default() -> Self {
        MapReduceNodeConfig {
            store_limit: usize::MAX,
            fetch: FetchConfig::default(),
            mailbox: 1024,
        }
    }
}

/// One node's map-shuffle-reduce runtime: a [`PartitionStore`], the
/// `partitions@<node>` actor that serves it to other nodes, a fetcher to
/// read theirs (through the router, see [`FetchConfig`]), and the
/// `mr.map` / `mr.reduce` handlers.
///
/// Every node that runs tasks registers the handlers into the handler
/// registry of its [`WorkerPool`](crate::WorkerPool) (which then advertises
/// `kind:mr.map` and `kind:mr.reduce`); a node that only drives jobs (a
/// [`ClusterMapReduce`](super::ClusterMapReduce)) needs the node without the
/// handlers, to serve its staged inputs.
///
/// ```
/// use cluster_router::{Router, RouterConfig};
/// use job_queue::mapreduce::MapReduceNode;
/// use job_queue::{HandlerRegistry, WorkerPool, WorkerPoolConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let router = Router::start(RouterConfig::new("node-a", "cookie")).await.unwrap();
/// let mut handlers = HandlerRegistry::new();
/// let mapreduce = MapReduceNode::install(&router, &mut handlers).unwrap();
/// assert_eq!(handlers.kinds(), ["mr.map", "mr.reduce"]);
/// let pool = WorkerPool::start(&router, handlers, WorkerPoolConfig::default()).await.unwrap();
/// assert!(router.local_actors().contains(&"partitions".to_owned()));
/// pool.shutdown().await;
/// mapreduce.shutdown();
/// router.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct MapReduceNode {
    router: Router,
    store: PartitionStore,
    fetcher: Arc<RouterFetcher>,
    jobs: Arc<MapReduceRegistry>,
    actor: ActorRef<Envelope>,
}

impl fmt::Debug for MapReduceNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReduceNode")
            .field("node", self.router.node_id())
            .field("jobs", &self.jobs)
            .field("store_bytes", &self.store.bytes())
            .finish_non_exhaustive()
    }
}

impl MapReduceNode {
    /// Starts the partition actor of a new store on `router`, registered as
    /// `partitions@<node>`, for the jobs of `jobs`.
    ///
    /// # Errors
    ///
    /// [`MapReduceError::Router`] if the name is taken on this router,
    /// [`MapReduceError::Spawn`] outside a Tokio runtime.
    pub fn start(
        router: &Router,
        jobs: MapReduceRegistry,
        config: MapReduceNodeConfig,
    ) -> Result<Self, MapReduceError> {
        let store = PartitionStore::with_limit(config.store_limit);
        let server = PartitionServer::new(router.clone(), store.clone());
        let name = format!("{PARTITIONS}@{}", router.node_id());
        let opts = SpawnOptions::default().capacity(config.mailbox.max(16));
        let actor = spawn_with(name, server, opts)?;
        if let Err(err) = router.register(PARTITIONS, actor.clone()) {
            actor.stop();
            return Err(err.into());
        }
        let fetcher = RouterFetcher::new(router.clone(), store.clone(), config.fetch);
        Ok(MapReduceNode {
            router: router.clone(),
            store,
            fetcher: Arc::new(fetcher),
            jobs: Arc::new(jobs),
            actor,
        })
    }

    /// The one call a worker node needs: starts the node with the built-in
    /// jobs and default settings, and registers the `mr.map` / `mr.reduce`
    /// handlers into `handlers` (start the [`WorkerPool`](crate::WorkerPool)
    /// with them afterwards).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn install(
        router: &Router,
        handlers: &mut HandlerRegistry,
    ) -> Result<Self, MapReduceError> {
        let node = MapReduceNode::start(
            router,
            MapReduceRegistry::with_builtins(),
            MapReduceNodeConfig::default(),
        )?;
        node.register_handlers(handlers);
        Ok(node)
    }

    /// Registers the `mr.map` and `mr.reduce` handlers, running on this
    /// node's store and fetching through the router.
    pub fn register_handlers(&self, handlers: &mut HandlerRegistry) {
        self.worker().register(handlers);
    }

    /// The handlers' implementation.
    pub(crate) fn worker(&self) -> MapReduceWorker {
        MapReduceWorker::new(self.jobs.clone(), self.store.clone(), self.fetcher.clone())
    }

    /// This node's store.
    pub fn store(&self) -> &PartitionStore {
        &self.store
    }

    /// The fetcher reading other nodes' stores.
    pub(crate) fn fetcher(&self) -> &Arc<RouterFetcher> {
        &self.fetcher
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The jobs this node runs.
    pub fn jobs(&self) -> &Arc<MapReduceRegistry> {
        &self.jobs
    }

    /// Unregisters and stops the partition actor (other nodes can no longer
    /// fetch from this store).
    pub fn shutdown(&self) {
        self.router.unregister(PARTITIONS);
        self.actor.stop();
    }
}
