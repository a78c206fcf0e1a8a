//! An in-process map-reduce cluster for the `mapreduce_*` tests, built from
//! job-queue's public API only: a driver node (router, `MapReduceNode`,
//! coordinator, `ClusterMapReduce`) and N worker nodes (router,
//! `MapReduceNode`, worker pool serving `mr.map` / `mr.reduce`), linked over
//! loopback WebSockets with fast membership timings.

use std::time::Duration;

use cluster_router::{Router, RouterConfig};
use job_queue::mapreduce::{
    ClusterMapReduce, FetchConfig, MapReduceNode, MapReduceNodeConfig, MapReduceRegistry,
    RunOptions,
};
use job_queue::{Coordinator, CoordinatorOptions, HandlerRegistry, WorkerPool, WorkerPoolConfig};

use super::{fast_router, until_members, within};

/// The cluster secret of every map-reduce test.
pub const SECRET: &str = "mapreduce-test";

/// Bound of every single await in these tests (a whole run included).
pub const STEP: Duration = Duration::from_secs(120);

/// How a [`MrCluster`] is built.
pub struct MrSettings {
    /// Worker node names (`w1`, `w2`, ... by default: 3 of them).
    pub workers: Vec<String>,
    /// Worker loops per worker node.
    pub loops: usize,
    /// The jobs each worker node runs (called once per node).
    pub jobs: Box<dyn Fn() -> MapReduceRegistry>,
    /// Fetch chunk size: small, so that splits and partitions take several
    /// requests.
    pub chunk: u32,
}

impl Default for MrSettings {
    fn default() -> Self {
        MrSettings {
            workers: ["w1", "w2", "w3"].map(String::from).to_vec(),
            loops: 2,
            jobs: Box::new(MapReduceRegistry::with_builtins),
            chunk: 64 * 1024,
        }
    }
}

impl MrSettings {
    /// `n` worker nodes (`w1` ..= `wn`) with `loops` worker loops each.
    pub fn nodes(n: usize, loops: usize) -> Self {
        MrSettings {
            workers: (1..=n).map(|i| format!("w{i}")).collect(),
            loops,
            ..MrSettings::default()
        }
    }

    /// These settings with each worker node running the jobs of `jobs()`.
    pub fn jobs(mut self, jobs: impl Fn() -> MapReduceRegistry + 'static) -> Self {
        self.jobs = Box::new(jobs);
        self
    }
}

/// [`fast_router`] with [`SECRET`] and a 500 ms link wait.
fn fast(name: &str) -> RouterConfig {
    let mut cfg = fast_router(name, SECRET);
    cfg.link_wait = Duration::from_millis(500);
    cfg
}

fn node_config(chunk: u32) -> MapReduceNodeConfig {
    MapReduceNodeConfig {
        fetch: FetchConfig {
            chunk,
            timeout: Duration::from_secs(5),
            ..FetchConfig::default()
        },
        ..MapReduceNodeConfig::default()
    }
}

/// A worker node: router, map-reduce runtime, worker pool.
pub struct MrWorker {
    /// The node's name.
    pub name: String,
    /// Its router.
    pub router: Router,
    /// Its worker pool (serving `mr.map` and `mr.reduce`).
    pub pool: WorkerPool,
    /// Its map-reduce runtime (store and `partitions` actor).
    pub mapreduce: MapReduceNode,
}

impl MrWorker {
    /// Stops the node as if it died: its router first (links close, its
    /// store becomes unreachable), then its pool.
    pub async fn kill(self) {
        within(STEP, "router shutdown", self.router.shutdown()).await;
        within(STEP, "pool shutdown", self.pool.shutdown()).await;
    }
}

/// A driver node and its worker nodes.
pub struct MrCluster {
    /// The driver node's router.
    pub driver_router: Router,
    /// The driver node's coordinator (every task goes through it).
    pub coordinator: Coordinator,
    /// The map-reduce driver on the driver node.
    pub driver: ClusterMapReduce,
    /// The worker nodes.
    pub workers: Vec<MrWorker>,
}

async fn start_worker(name: &str, seed: String, settings: &MrSettings) -> MrWorker {
    let router = within(STEP, "router", Router::start(fast(name).seeds([seed])))
        .await
        .expect("worker router starts");
    let mapreduce = MapReduceNode::start(&router, (settings.jobs)(), node_config(settings.chunk))
        .expect("map-reduce node starts");
    let mut handlers = HandlerRegistry::new();
    mapreduce.register_handlers(&mut handlers);
    let config = WorkerPoolConfig {
        workers: settings.loops,
        queue_capacity: 256,
        load_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(100),
        ..WorkerPoolConfig::default()
    };
    let pool = within(STEP, "pool", WorkerPool::start(&router, handlers, config))
        .await
        .expect("worker pool starts");
    MrWorker {
        name: name.to_owned(),
        router,
        pool,
        mapreduce,
    }
}

/// Waits until `router` sees every node of `names` advertising `mr.reduce`.
async fn converged(router: &Router, names: &[String]) {
    until_members(router, |r| {
        let peers = r.get_all_peers();
        names.iter().all(|n| {
            peers
                .iter()
                .any(|m| m.node == n.as_str() && m.tags.iter().any(|t| t == "kind:mr.reduce"))
        })
    })
    .await;
}

impl MrCluster {
    /// Starts the driver node, then every worker node joining through it;
    /// returns once the driver sees every worker serving `mr.reduce`.
    pub async fn start(settings: MrSettings) -> MrCluster {
        let driver_router = within(STEP, "driver router", Router::start(fast("driver")))
            .await
            .expect("driver router starts");
        let node = MapReduceNode::start(
            &driver_router,
            MapReduceRegistry::with_builtins(),
            node_config(settings.chunk),
        )
        .expect("driver map-reduce node starts");
        let mut workers = Vec::new();
        for name in &settings.workers {
            workers.push(start_worker(name, driver_router.url(), &settings).await);
        }
        within(
            STEP,
            "convergence",
            converged(&driver_router, &settings.workers),
        )
        .await;
        let mut options = CoordinatorOptions::default();
        options.core.backoff.base = Duration::from_millis(20);
        options.core.backoff.max = Duration::from_millis(200);
        let coordinator = within(
            STEP,
            "coordinator",
            Coordinator::start(&driver_router, options),
        )
        .await
        .expect("coordinator starts");
        let driver = ClusterMapReduce::new(node, coordinator.clone());
        MrCluster {
            driver_router,
            coordinator,
            driver,
            workers,
        }
    }

    /// Panics unless every node's store is empty (every run cleans up).
    pub fn assert_stores_empty(&self) {
        assert!(self.driver.node().store().is_empty(), "driver store");
        for worker in &self.workers {
            assert!(worker.mapreduce.store().is_empty(), "{}", worker.name);
        }
    }

    /// Removes worker `name` from the cluster and kills it; returns whether
    /// it was there.
    pub async fn kill(&mut self, name: &str) -> bool {
        match self.workers.iter().position(|w| w.name == name) {
            Some(at) => {
                self.workers.remove(at).kill().await;
                true
            }
            None => false,
        }
    }

    /// Shuts the coordinator down, then every worker, then the driver.
    pub async fn stop(self) {
        within(STEP, "coordinator shutdown", self.coordinator.shutdown()).await;
        for worker in self.workers {
            worker.kill().await;
        }
        within(STEP, "driver shutdown", self.driver_router.shutdown()).await;
    }
}

/// Run settings: `splits` and `reducers`, a 20 s task timeout (generous on a
/// loaded machine: a task of these tests takes milliseconds) and 4 attempts.
pub fn options(splits: usize, reducers: u32) -> RunOptions {
    RunOptions {
        splits,
        reducers,
        task_timeout: Duration::from_secs(20),
        max_attempts: 4,
    }
}
