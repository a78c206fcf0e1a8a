//! The node runtime behind `job-node start`: a Router, a Coordinator, a
//! WorkerPool of the built-in kinds, the optional HTTP API, and the drain
//! that ends it all.
//!
//! [`Node::start`] brings the pieces up in dependency order; [`run`] adds
//! the ready line and the signal handling; [`Node::drain`] stops taking
//! work, lets what the node holds finish (or hands it back), and leaves the
//! cluster gracefully.

mod api;
pub(crate) mod convert;

pub(crate) use api::NodeApi;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actor_core::AskError;
use cluster_router::{Router, RouterConfig, RouterError, Secret};
use job_queue::mapreduce::{MapReduceError, MapReduceNode};
use job_queue::{
    accept_tag, Coordinator, CoordinatorConfig, CoordinatorOptions, HandlerRegistry, Job, JobError,
    WorkerPool, WorkerPoolConfig,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::builtin::register_builtins_observed;
use crate::config::NodeConfig;
use crate::kinds::{exec_program, ExecPolicy};
use crate::metrics::Metrics;
use crate::ready::ReadyReport;

/// How long a drain waits for running jobs before cancelling them.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(30);
/// How long the worker pool's shutdown lets running jobs go on: none, since
/// the drain already gave them its grace; whatever still runs when the pool
/// is shut down is cancelled and reported as a retryable `node_down`.
const POOL_CANCEL_GRACE: Duration = Duration::ZERO;
/// A safety net around the graceful leave. Nothing depends on it for
/// correctness: the pool and coordinator are idle by then and late
/// dispatches are refused at no cost. But `Router::leave` waits for each
/// peer's acknowledgement, step by step, up to the router's request timeout
/// (5 s), and a peer that is itself going away may never answer; the node
/// must still end promptly, so the router is then shut down anyway (the
/// peers have heard of the leave, or will see the node gone).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long in-progress HTTP requests may run after the drain.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NodeError {
    /// The router (cluster listener, membership) could not start.
    #[error("cannot start the cluster router on {listen}: {source}")]
    Router {
        /// The listen address.
        listen: SocketAddr,
        /// The router's error.
        #[source]
        source: RouterError,
    },
    /// The coordinator or worker pool could not start.
    #[error("cannot start the job service: {0}")]
    Jobs(#[from] JobError),
    /// The map-reduce partition actor could not start.
    #[error("cannot start the map-reduce service: {0}")]
    MapReduce(#[from] MapReduceError),
    /// The HTTP API could not bind its address.
    #[error("cannot serve the HTTP API on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory cannot be created.
    #[error("cannot use data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A running node.
#[derive(Debug)]
pub(crate) struct Node {
    router: Router,
    coordinator: Coordinator,
    pool: WorkerPool,
    mapreduce: MapReduceNode,
    http: Option<HttpServer>,
}

/// What a drain left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DrainReport {
    /// Jobs this node's workers finished over its life.
    pub jobs_run: u64,
    /// Jobs of this node's coordinator still unfinished when it stopped
    /// (their submitters get no result).
    pub abandoned: u64,
}

impl Node {
    /// Starts the router (joining the seeds), the coordinator, the worker
    /// pool of the built-in kinds and, if configured, the HTTP API.
    ///
    /// # Errors
    ///
    /// [`NodeError`]; whatever was started is stopped again.
    pub(crate) async fn start(config: &NodeConfig) -> Result<Node, NodeError> {
        if let Some(dir) = &config.data_dir {
            prepare_data_dir(dir)?;
        }
        let mut router_config =
            RouterConfig::new(config.name.clone(), Secret::from(config.secret.expose()))
                .seeds(config.join.clone())
                .tags(node_tags(config));
        router_config.listen = config.listen;
        router_config.transport.tls = config.tls.clone();
        router_config.transport.client_window = config.clients.window;
        router_config.transport.client_idle_limit = config.clients.idle_limit;
        let router = Router::start(router_config)
            .await
            .map_err(|source| NodeError::Router {
                listen: config.listen,
                source,
            })?;
        match Self::start_services(config, &router).await {
            Ok(node) => Ok(node),
            Err(err) => {
                router.shutdown().await;
                Err(err)
            }
        }
    }

    async fn start_services(config: &NodeConfig, router: &Router) -> Result<Node, NodeError> {
        let metrics = Arc::new(Metrics::new());
        let mut registry = HandlerRegistry::new();
        let observer_metrics = Arc::clone(&metrics);
        let node_name = config.name.clone();
        register_builtins_observed(
            &mut registry,
            ExecPolicy::allow(config.allow_exec.iter().cloned()),
            Arc::new(move |kind, _ok, elapsed| {
                observer_metrics.observe_attempt(kind, &node_name, elapsed);
            }),
        );
        // mr.map / mr.reduce, and partitions@<node> serving this node's
        // shuffle data (see crate::mapreduce_cmd).
        let mapreduce = MapReduceNode::install(router, &mut registry)?;
        let pool_config = WorkerPoolConfig {
            workers: config.workers,
            shutdown_grace: POOL_CANCEL_GRACE,
            external_workers: config.external_workers,
            external_kinds: config.external_kinds.clone(),
            ..WorkerPoolConfig::default()
        };
        // The pool first: it advertises the kinds, which the coordinator's
        // first look at the membership then sees.
        let pool = match WorkerPool::start(router, registry, pool_config).await {
            Ok(pool) => pool,
            Err(err) => {
                mapreduce.shutdown();
                return Err(err.into());
            }
        };
        let mut core = CoordinatorConfig::default();
        core.speculation.idempotent_kinds = config.idempotent.clone();
        core.selectors
            .insert("exec", |job: &Job| exec_program(&job.data));
        core.limits.kinds = config.limits.clone();
        let options = CoordinatorOptions {
            core,
            data_dir: config.data_dir.clone(),
            retention: config.retention,
            retention_bytes: config.retention_bytes,
            ..CoordinatorOptions::default()
        };
        let coordinator = match Coordinator::start(router, options).await {
            Ok(coordinator) => coordinator,
            Err(err) => {
                pool.shutdown().await;
                return Err(err.into());
            }
        };
        let api = Arc::new(NodeApi::new(coordinator.clone(), router.clone()));
        let resumed = api.track_resumed().await;
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished jobs from the journal");
        }
        let http = match config.http {
            Some(addr) => match start_http(addr, config, &api, &metrics).await {
                Ok(server) => Some(server),
                Err(err) => {
                    pool.shutdown().await;
                    coordinator.shutdown().await;
                    return Err(err);
                }
            },
            None => None,
        };
        tracing::info!(node = %config.name, url = %router.url(),
            http = ?http.as_ref().map(|h| h.addr), workers = config.workers, "node up");
        Ok(Node {
            router: router.clone(),
            coordinator,
            pool,
            mapreduce,
            http,
        })
    }

    /// The node's cluster URL (`ws://IP:PORT`, the real port when the
    /// configuration said port 0).
    pub(crate) fn url(&self) -> String {
        self.router.url()
    }

    /// The HTTP API's bound address, if it serves one.
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr)
    }

    /// With seeds configured: waits until another member is Up (this node
    /// authenticated with a seed and joined), at most `join_timeout`.
    ///
    /// # Errors
    ///
    /// Why no seed could be joined (each seed's last failure, with a hint
    /// for a wrong secret, a name clash or a version mismatch).
    pub(crate) async fn wait_joined(&self, config: &NodeConfig) -> Result<(), String> {
        let own = self.router.url();
        let seeds: Vec<&String> = config.join.iter().filter(|u| **u != own).collect();
        if seeds.is_empty() {
            return Ok(());
        }
        let me = self.router.node_id().clone();
        let joined = || {
            self.router
                .members()
                .iter()
                .any(|m| m.node != me && m.status == cluster_router::MemberStatus::Up)
        };
        let mut events = self.router.subscribe();
        let deadline = tokio::time::Instant::now() + config.join_timeout;
        while !joined() {
            // Membership events wake us; the periodic look covers lags.
            let wake = tokio::time::timeout(Duration::from_millis(250), events.recv());
            if tokio::time::timeout_at(deadline, wake).await.is_err() {
                return Err(join_failure(config, &self.router.seed_errors()));
            }
        }
        Ok(())
    }

    /// The readiness line's content.
    pub(crate) fn ready_report(&self) -> ReadyReport {
        ReadyReport::new(
            self.router.node_id().to_string(),
            self.url(),
            self.http_addr(),
        )
    }

    /// Drains the node and leaves the cluster:
    ///
    /// 1. the coordinator and the worker pool start draining at once: the
    ///    coordinator refuses new submissions from every source (HTTP
    ///    answers `503`; WebSocket clients and other nodes get "coordinator
    ///    on node X is draining"), and the pool stops advertising its job
    ///    kinds and answers dispatches that still arrive with `refused`,
    ///    which their coordinator re-places elsewhere without counting an
    ///    attempt;
    /// 2. the jobs queued or running in the pool finish, and the jobs the
    ///    coordinator holds run to their results on the other nodes — for
    ///    at most `grace`. A job still running in the pool then is
    ///    cancelled and reported as a retryable `node_down` (its
    ///    coordinator retries it elsewhere); the coordinator's unfinished
    ///    jobs are abandoned (with a data directory they stay in the
    ///    journal and resume when the node starts again on it);
    /// 3. the node leaves the cluster (`Leaving`, then `Left`: the pool
    ///    keeps refusing until the peers know), the HTTP server closes and
    ///    the services stop.
    pub(crate) async fn drain(self, grace: Duration) -> DrainReport {
        let deadline = tokio::time::Instant::now() + grace;
        let (abandoned, pool_drained) = tokio::join!(
            drain_coordinator(&self.coordinator, deadline),
            tokio::time::timeout_at(deadline, self.pool.drain()),
        );
        let jobs_run = self.pool.finished();
        // The pool stays registered (and refusing) through the leave if it
        // is idle; jobs still running past the grace are cancelled now, so
        // that their `node_down` results reach their coordinators while the
        // links are up.
        let idle_pool = if pool_drained.is_ok() {
            Some(self.pool)
        } else {
            tracing::warn!(
                running = self.pool.in_flight() + self.pool.queue_depth(),
                "drain grace over: cancelling the jobs still running here"
            );
            self.pool.shutdown().await;
            None
        };
        if abandoned > 0 {
            tracing::warn!(abandoned, "drain grace over: unfinished jobs abandoned");
        }
        if tokio::time::timeout(LEAVE_TIMEOUT, self.router.leave())
            .await
            .is_err()
        {
            tracing::debug!("leave not acknowledged in time; shutting the router down");
            self.router.shutdown().await;
        }
        if let Some(http) = self.http {
            http.close().await;
        }
        if let Some(pool) = idle_pool {
            pool.shutdown().await;
        }
        self.mapreduce.shutdown();
        self.coordinator.shutdown().await;
        DrainReport {
            jobs_run,
            abandoned,
        }
    }
}

/// Drains the coordinator until every job it holds is final or `deadline`
/// passes; returns how many it still holds then.
async fn drain_coordinator(coordinator: &Coordinator, deadline: tokio::time::Instant) -> u64 {
    loop {
        match tokio::time::timeout_at(deadline, coordinator.drain()).await {
            Ok(Ok(())) => return 0,
            // A mailbox full for a whole ask timeout: the request to drain
            // did not get in; ask again (until the deadline).
            Ok(Err(JobError::Ask(AskError::Full))) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, "drain: the coordinator did not drain");
                return unfinished(coordinator).await;
            }
            Err(_) => return unfinished(coordinator).await,
        }
    }
}

/// The jobs the coordinator still holds (0 if it does not answer).
async fn unfinished(coordinator: &Coordinator) -> u64 {
    match coordinator.stats().await {
        Ok(stats) => stats.in_progress,
        Err(err) => {
            tracing::warn!(%err, "drain: coordinator statistics unavailable");
            0
        }
    }
}

impl HttpServer {
    /// Stops accepting, lets requests in progress finish for
    /// [`HTTP_CLOSE_GRACE`], then ends the server.
    async fn close(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(HTTP_CLOSE_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

fn prepare_data_dir(dir: &std::path::Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
        path: dir.to_owned(),
        source,
    })
}

/// The HTTP API's authentication for `config` (see `crate::http`).
fn http_auth(config: &NodeConfig) -> crate::http::HttpAuth {
    if config.http_auth {
        let token = cluster_router::client_token(&Secret::from(config.secret.expose()));
        crate::http::HttpAuth::bearer(token, config.metrics_open)
    } else {
        crate::http::HttpAuth::open()
    }
}

async fn start_http(
    addr: SocketAddr,
    config: &NodeConfig,
    api: &Arc<NodeApi>,
    metrics: &Arc<Metrics>,
) -> Result<HttpServer, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Http { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| NodeError::Http { addr, source })?;
    let backend: Arc<dyn crate::http::Api> = api.clone();
    let router = crate::http::router(backend, Arc::clone(metrics));
    let auth = http_auth(config).with_secure_cookie(config.tls.is_some());
    let router = crate::http::guard(router, auth);
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let server_tls = config.tls.as_ref().and_then(|t| t.server_config());
    let task = match server_tls {
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let listener = crate::http::TlsListener::new(listener, acceptor)
                .map_err(|source| NodeError::Http { addr, source })?;
            tokio::spawn(crate::http::serve(listener, router, shutdown))
        }
        None => tokio::spawn(crate::http::serve(listener, router, shutdown)),
    };
    Ok(HttpServer {
        addr: bound,
        stop,
        task,
    })
}

/// `job-node start`: starts the node, prints the ready line on stdout,
/// runs until SIGINT/SIGTERM (or, supervised, until stdin closes), then
/// drains and leaves.
///
/// # Errors
///
/// The error installing the signal handlers, or a [`NodeError`] at start.
pub(crate) async fn run(config: NodeConfig) -> anyhow::Result<()> {
    if config.uses_development_secret() {
        tracing::warn!(
            listen = %config.listen,
            "no --secret-file: using the built-in development secret (loopback only)"
        );
    }
    let mut signals = crate::signals::ShutdownSignals::install(config.supervised)?;
    let config = config.with_bound_port()?;
    let node = Node::start(&config).await?;
    if let Err(why) = node.wait_joined(&config).await {
        // Never `ready` while alone against the configuration: say why, exit non-zero.
        node.drain(Duration::ZERO).await;
        return Err(anyhow::anyhow!(why));
    }
    print_ready(&node.ready_report());
    let reason = signals.wait().await;
    tracing::info!(%reason, "draining");
    let report = node.drain(DRAIN_GRACE).await;
    tracing::info!(
        jobs_run = report.jobs_run,
        abandoned = report.abandoned,
        "node left the cluster"
    );
    Ok(())
}

/// The message of a node that could not join through any seed.
fn join_failure(config: &NodeConfig, errors: &[(String, String)]) -> String {
    let mut text = format!(
        "could not join the cluster within {:?}: no seed accepted this node ({})",
        config.join_timeout,
        config.join.join(", ")
    );
    for (seed, why) in errors {
        text.push_str(&format!("\n  {seed}: {why}"));
        if let Some(hint) = join_hint(why) {
            text.push_str(&format!(" ({hint})"));
        }
    }
    if errors.is_empty() {
        text.push_str("\n  the seeds answered, but none admitted this node as a member");
    }
    text
}

/// What to check when joining through a seed failed with `why`.
pub(crate) fn join_hint(why: &str) -> Option<&'static str> {
    if why.contains("authentication failed") {
        Some("wrong cluster secret: this node and the seed do not share the secret; check --secret-file")
    } else if why.contains("version mismatch") {
        Some("the seed runs another protocol version; run the same job-node release")
    } else if why.contains("invalid peer node name") {
        Some("node name clash or invalid name: choose another --name")
    } else if why.contains("wss://") || why.contains("TLS") {
        Some("TLS: check --tls-ca and the seed's certificate")
    } else {
        None
    }
}

fn print_ready(report: &ReadyReport) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (nobody reads the ready line) is not an error.
    let _ = writeln!(stdout, "{}", report.to_line());
    let _ = stdout.flush();
}

/// The node's tags: the configured ones, and `accept:exec:<program>` for
/// every program `--allow-exec` lists, so that coordinators send an `exec`
/// job only to a node that runs its program (the list is bounded by the
/// configuration's checks).
fn node_tags(config: &NodeConfig) -> Vec<String> {
    let mut tags = config.tags.clone();
    tags.extend(config.allow_exec.iter().map(|p| accept_tag("exec", p)));
    tags
}
