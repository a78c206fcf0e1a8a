//! `job-node mapreduce wordcount|index INPUT...`: a map-shuffle-reduce job
//! over files, on a cluster.
//!
//! **Where the driver runs.** This process joins the cluster as a node of
//! its own (named `mr-cli-<pid>-<hex>`, listening on `--listen`, default
//! `127.0.0.1:0`) for the duration of the command, without a worker pool:
//! it never runs tasks. It runs a [`Coordinator`] and the
//! [`ClusterMapReduce`] driver, and its `partitions@` actor serves the input
//! splits staged in its memory to the map tasks (so the inputs are held
//! once, here, and each map task pulls only its own split). The reduce
//! outputs come back here for the merge; then every node drops the job's
//! data and this node leaves the cluster gracefully.
//!
//! **Without `--cluster`**, it first starts a local cluster of `--nodes`
//! separate `job-node start` processes (like `job-node demo`, with a random
//! secret in a private temporary directory) and joins it. Every `job-node`
//! registers the `mr.map` / `mr.reduce` handlers and its `partitions`
//! actor at start, so any cluster of `job-node`s runs map-reduce jobs.
//!
//! With `--cluster`, the nodes must be able to dial this process back:
//! give `--listen` an address they can reach (and `--secret-file`).

mod progress;
mod render;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use cluster_router::{Router, RouterConfig, Secret};
use job_queue::mapreduce::{
    ClusterMapReduce, Input, InvertedIndex, MapReduceNode, MapReduceNodeConfig, MapReduceRegistry,
    RunOptions, WordCount, MAX_REDUCERS,
};
use job_queue::{Coordinator, CoordinatorOptions, HandlerRegistry, WorkerPool, WorkerPoolConfig};

use crate::cli::parse_seconds;
use crate::local_cluster::{LaunchOptions, LocalCluster};
use crate::secret::ClusterSecret;

pub(crate) use progress::BarObserver;
pub(crate) use render::{render_index, render_summary, render_word_counts};

/// How long each local node may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the local nodes may take to drain and exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// How long the graceful leave of the driver node may take.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// `job-node mapreduce`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct MapReduceArgs {
    /// The job to run.
    #[command(subcommand)]
    pub job: MapReduceJob,
}

/// The built-in map-reduce jobs.
#[derive(Debug, Clone, Subcommand, PartialEq)]
pub(crate) enum MapReduceJob {
    /// Count the words of the inputs: `word count` lines sorted by word
    /// (or the --top K most frequent). A word is a run of ASCII letters,
    /// lowercased; every other byte separates words (input need not be UTF-8).
    Wordcount(WordCountArgs),
    /// Inverted index of the inputs: `word file:pos,...` lines sorted by
    /// word, where pos is the 0-based index of the word in that file.
    Index(IndexArgs),
}

/// `job-node mapreduce wordcount`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct WordCountArgs {
    /// Inputs and where to run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Print only the K most frequent words, most frequent first.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
}

/// `job-node mapreduce index`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct IndexArgs {
    /// Inputs and where to run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What every map-reduce command takes.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct RunArgs {
    /// Input files.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// WebSocket URL of a node of the cluster to run on (default: start a
    /// local cluster of node processes).
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// File holding the cluster secret (with --cluster; default: the
    /// development secret).
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub secret_file: Option<PathBuf>,
    /// Address this process listens on while it is a member of the cluster
    /// (the nodes must reach it).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Target number of input splits (map tasks).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub splits: u32,
    /// Number of reducers (partitions).
    #[arg(long, value_name = "R", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=MAX_REDUCERS as i64))]
    pub reducers: u32,
    /// Write the result to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Start a local cluster of N node processes and run there (without
    /// --cluster; default: run in this process, which is then the whole
    /// cluster).
    #[arg(long, value_name = "N", conflicts_with = "cluster",
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: Option<u16>,
    /// Concurrent tasks per local node (without --cluster; default: one per
    /// CPU core in this process, 2 per node process with --nodes).
    #[arg(long, value_name = "K", conflicts_with = "cluster",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Per-attempt timeout of each task, in seconds.
    #[arg(long, value_name = "S", default_value = "60", value_parser = parse_seconds)]
    pub task_timeout: Duration,
    /// How long to wait for the cluster (joining, workers showing up), in
    /// seconds.
    #[arg(long, value_name = "S", default_value = "20", value_parser = parse_seconds)]
    pub connect_timeout: Duration,
}

/// Runs `job-node mapreduce`.
///
/// # Errors
///
/// Unreadable inputs, a cluster that cannot be started or joined, a job
/// that fails, an unwritable output, or Ctrl-C.
pub(crate) async fn run(args: MapReduceArgs) -> anyhow::Result<()> {
    let (run, top) = match &args.job {
        MapReduceJob::Wordcount(a) => (&a.run, a.top),
        MapReduceJob::Index(a) => (&a.run, None),
    };
    let inputs = read_inputs(&run.inputs)?;
    let (local, target) = match (&run.cluster, run.nodes) {
        (None, None) => {
            let workers = run.workers.map_or_else(default_workers, usize::from);
            return tokio::select! {
                outcome = drive_embedded(&args.job, run, top, &inputs, workers) => outcome,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            };
        }
        (None, Some(nodes)) => {
            let local = LocalSetup::launch(run, nodes).await?;
            let target = Target {
                seed: local.cluster.seed_url().unwrap_or_default().to_owned(),
                secret: local.secret.clone(),
                workers: usize::from(nodes),
            };
            (Some(local), target)
        }
        (Some(url), _) => {
            let target = Target {
                seed: url.clone(),
                secret: ClusterSecret::for_client(run.secret_file.as_deref())?,
                workers: 1,
            };
            (None, target)
        }
    };
    let outcome = tokio::select! {
        outcome = drive(&args.job, run, top, &inputs, &target) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(local) = local {
        local.shutdown().await;
    }
    outcome.unwrap_or_else(|| anyhow::bail!("interrupted"))
}

/// Opens every input file, naming each by its path as given. Only the
/// files' sizes are read here: the driver reads each split from its file
/// when a map task fetches it, so the inputs are never held in memory.
///
/// # Errors
///
/// The first file that cannot be opened, with its path.
pub(crate) fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    paths
        .iter()
        .map(|path| {
            if path.is_dir() {
                anyhow::bail!("input {} is a directory, not a file", path.display());
            }
            Input::open(path).with_context(|| format!("cannot read input {}", path.display()))
        })
        .collect()
}

/// Tasks at once in this process without `--workers`: one per core.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Runs the job with this process as the whole cluster: no child process,
/// no link; the map tasks read their splits from the input files directly
/// (this node's own store) and the shuffle stays in memory.
async fn drive_embedded(
    job: &MapReduceJob,
    run: &RunArgs,
    top: Option<u64>,
    inputs: &[Input],
    workers: usize,
) -> anyhow::Result<()> {
    let member = DriverNode::embedded(run.listen, workers).await?;
    let outcome = execute(&member.driver, job, run, top, inputs).await;
    member.leave().await;
    outcome
}

/// The cluster to join.
struct Target {
    seed: String,
    secret: ClusterSecret,
    /// How many nodes serving map-reduce tasks to wait for.
    workers: usize,
}

/// Joins the cluster, runs the job, writes the result and the summary.
async fn drive(
    job: &MapReduceJob,
    run: &RunArgs,
    top: Option<u64>,
    inputs: &[Input],
    target: &Target,
) -> anyhow::Result<()> {
    let member = DriverNode::join(&target.seed, &target.secret, run.listen).await?;
    let outcome = async {
        member
            .wait_for_workers(target.workers, run.connect_timeout)
            .await
            .with_context(|| format!("cannot use the cluster at {}", target.seed))?;
        execute(&member.driver, job, run, top, inputs).await
    }
    .await;
    member.leave().await;
    outcome
}

async fn execute(
    driver: &ClusterMapReduce,
    job: &MapReduceJob,
    run: &RunArgs,
    top: Option<u64>,
    inputs: &[Input],
) -> anyhow::Result<()> {
    let options = RunOptions {
        splits: run.splits as usize,
        reducers: run.reducers,
        task_timeout: run.task_timeout,
        ..RunOptions::default()
    };
    let bytes: u64 = inputs.iter().map(Input::len).sum();
    let mut bars = BarObserver::new();
    let started = Instant::now();
    let (text, stats, timings, nodes) = match job {
        MapReduceJob::Wordcount(_) => {
            let out = driver.run(&WordCount, inputs, &options, &mut bars).await;
            bars.finish();
            let out = out.context("the word count failed")?;
            let text = render_word_counts(&out.entries, top.map(|k| k as usize));
            (text, out.stats, out.timings, out.nodes)
        }
        MapReduceJob::Index(_) => {
            let out = driver
                .run(&InvertedIndex, inputs, &options, &mut bars)
                .await;
            bars.finish();
            let out = out.context("the inverted index failed")?;
            let text = render_index(&out.entries, &out.inputs);
            (text, out.stats, out.timings, out.nodes)
        }
    };
    let elapsed = started.elapsed();
    write_output(run.output.as_ref(), &text)?;
    eprint!(
        "{}",
        render_summary(bytes, elapsed, &stats, &timings, &nodes)
    );
    Ok(())
}

fn write_output(path: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match path {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A closed pipe (`| head`) is not an error.
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(err).context("cannot write the result to stdout")
                }
                _ => Ok(()),
            }
        }
    }
}

/// The first seed's handshake refusal, with what to check.
fn seed_refusal(router: &Router) -> Option<String> {
    router
        .seed_errors()
        .into_iter()
        .find(|(_, why)| why.contains("handshake failed"))
        .map(|(_, why)| match crate::node::join_hint(&why) {
            Some(hint) => format!("{why} ({hint})"),
            None => why,
        })
}

/// This process as a member of the cluster: a driver, and without
/// `--cluster` and `--nodes` also the worker (`pool`).
struct DriverNode {
    router: Router,
    coordinator: Coordinator,
    mapreduce: MapReduceNode,
    driver: ClusterMapReduce,
    /// The worker pool of an embedded cluster (none when joining one).
    pool: Option<WorkerPool>,
}

impl DriverNode {
    async fn join(seed: &str, secret: &ClusterSecret, listen: SocketAddr) -> anyhow::Result<Self> {
        let name = format!(
            "mr-cli-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        );
        let mut config =
            RouterConfig::new(name, Secret::from(secret.expose())).seeds([seed.to_owned()]);
        config.listen = listen;
        let router = Router::start(config)
            .await
            .with_context(|| format!("cannot join the cluster at {seed}"))?;
        // A refused handshake (wrong secret, version, name) will not heal by
        // waiting: say so now.
        if let Some(refusal) = seed_refusal(&router) {
            router.shutdown().await;
            anyhow::bail!("cannot join the cluster at {seed}: {refusal}");
        }
        let started = async {
            let mapreduce = MapReduceNode::start(
                &router,
                MapReduceRegistry::with_builtins(),
                MapReduceNodeConfig::default(),
            )?;
            match Coordinator::start(&router, CoordinatorOptions::default()).await {
                Ok(coordinator) => Ok((mapreduce, coordinator)),
                Err(err) => {
                    mapreduce.shutdown();
                    Err(anyhow::Error::from(err))
                }
            }
        }
        .await;
        match started {
            Ok((mapreduce, coordinator)) => Ok(DriverNode {
                driver: ClusterMapReduce::new(mapreduce.clone(), coordinator.clone()),
                router,
                coordinator,
                mapreduce,
                pool: None,
            }),
            Err(err) => {
                router.shutdown().await;
                Err(err.context("cannot start the map-reduce driver"))
            }
        }
    }

    /// Waits until `expected` nodes serve `mr.map` (the membership comes
    /// from the seed; later nodes are used as they appear).
    async fn wait_for_workers(&self, expected: usize, limit: Duration) -> anyhow::Result<()> {
        let serving = |router: &Router| {
            router
                .get_all_peers()
                .iter()
                .filter(|m| m.tags.iter().any(|t| t == "kind:mr.map"))
                .count()
        };
        let mut events = self.router.subscribe();
        let waited = tokio::time::timeout(limit, async {
            while serving(&self.router) < expected {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = events.recv().await {
                    return;
                }
            }
        })
        .await;
        let found = serving(&self.router);
        if self.router.members().len() <= 1 {
            let why: Vec<String> = self
                .router
                .seed_errors()
                .into_iter()
                .map(|(seed, why)| format!("{seed}: {why}"))
                .collect();
            anyhow::bail!(
                "no node of the cluster answered within {limit:?}{}{}",
                if why.is_empty() { "" } else { ": " },
                why.join("; ")
            );
        }
        if waited.is_err() || found < expected {
            anyhow::bail!(
                "{found} of {expected} expected nodes serve map-reduce tasks after {limit:?} \
                 (is this a cluster of job-node processes, and can its nodes reach this one?)"
            );
        }
        Ok(())
    }

    /// This process as a cluster of one node with `workers` task slots,
    /// under a random secret: nobody else can join it.
    async fn embedded(listen: SocketAddr, workers: usize) -> anyhow::Result<Self> {
        let name = format!("mr-local-{}", std::process::id());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let mut config = RouterConfig::new(name, Secret::from(secret));
        config.listen = listen;
        let router = Router::start(config)
            .await
            .context("cannot start the map-reduce node")?;
        let started = async {
            let mut handlers = HandlerRegistry::new();
            let mapreduce = MapReduceNode::install(&router, &mut handlers)?;
            let pool_config = WorkerPoolConfig {
                workers,
                ..WorkerPoolConfig::default()
            };
            let pool = match WorkerPool::start(&router, handlers, pool_config).await {
                Ok(pool) => pool,
                Err(err) => {
                    mapreduce.shutdown();
                    return Err(anyhow::Error::from(err));
                }
            };
            match Coordinator::start(&router, CoordinatorOptions::default()).await {
                Ok(coordinator) => Ok((mapreduce, pool, coordinator)),
                Err(err) => {
                    pool.shutdown().await;
                    mapreduce.shutdown();
                    Err(anyhow::Error::from(err))
                }
            }
        }
        .await;
        match started {
            Ok((mapreduce, pool, coordinator)) => Ok(DriverNode {
                driver: ClusterMapReduce::new(mapreduce.clone(), coordinator.clone()),
                router,
                coordinator,
                mapreduce,
                pool: Some(pool),
            }),
            Err(err) => {
                router.shutdown().await;
                Err(err.context("cannot start the map-reduce node"))
            }
        }
    }

    async fn leave(self) {
        self.coordinator.shutdown().await;
        if let Some(pool) = self.pool {
            pool.shutdown().await;
            self.mapreduce.shutdown();
            // A cluster of one: nobody to tell.
            self.router.shutdown().await;
            return;
        }
        self.mapreduce.shutdown();
        if tokio::time::timeout(LEAVE_TIMEOUT, self.router.leave())
            .await
            .is_err()
        {
            self.router.shutdown().await;
        }
    }
}

/// The local cluster of node processes and its secret directory.
struct LocalSetup {
    cluster: LocalCluster,
    secret: ClusterSecret,
    dir: PathBuf,
}

impl LocalSetup {
    async fn launch(run: &RunArgs, nodes: u16) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "jobmesh-mr-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let file = write_secret(&dir)?;
        let secret = ClusterSecret::from_file(&file)?;
        let options = LaunchOptions {
            exe: std::env::current_exe().context("cannot find the job-node executable")?,
            nodes,
            workers: run.workers.unwrap_or(2),
            http: None,
            secret_file: Some(file),
            ready_timeout: READY_TIMEOUT,
            data_dir: None,
        };
        eprintln!(
            "starting a local cluster of {nodes} node processes with {} workers each",
            run.workers.unwrap_or(2)
        );
        match LocalCluster::launch(&options).await {
            Ok(cluster) => Ok(LocalSetup {
                cluster,
                secret,
                dir,
            }),
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(err.into())
            }
        }
    }

    async fn shutdown(self) {
        let exits = self.cluster.shutdown(SHUTDOWN_GRACE).await;
        for exit in exits.iter().filter(|e| e.killed) {
            eprintln!("job-node: {} had to be killed", exit.label);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A random secret in a new private directory `dir`; returns the file.
fn write_secret(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("cluster-secret");
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    std::io::Write::write_all(&mut out, hex::encode(secret).as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests;
