//! `job-node bench`: end-to-end figures of a cluster as a client sees them,
//! in the spirit of `redis-benchmark` or `nats bench`.
//!
//! It starts a local cluster of node processes (`--nodes`, re-executing
//! this binary as `job-node start`; `--journal` gives each node a data
//! directory) or uses a running one (`--cluster URL`), and measures from
//! this process, through the client library that `submit` uses:
//!
//! * **throughput**: `--jobs` jobs of `--kind` with `--payload` bytes of
//!   data, at most `--window` unanswered ([`stream_jobs`], exactly what
//!   `submit --file --wait` does), over `--clients` connections (each with
//!   its share; to the local nodes in turn, to URL, or with `--spread` to
//!   a running cluster's members in turn);
//! * **latency** with one job in flight: `--rounds` round trips (client ->
//!   coordinator -> worker -> client), p50 / p99 / p99.9;
//! * the **raw baselines of the same run**: a WebSocket echo server on
//!   loopback in its own process (this binary as the hidden `bench-echo`,
//!   with a node's runtime threads), driven the same way: a pipelined echo
//!   of as many envelopes as jobs with the same window, and a ping-pong
//!   with one envelope in flight for as many rounds.
//!
//! With a local cluster it also reports the CPU time that the node
//! processes and this process used during the throughput run, per job (in
//! all and, in `--json`, per process), and
//! the machine's one-minute load average before the run (`/proc/loadavg`),
//! since on a shared machine the figures move with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::http::JobSubmission;
use crate::local_cluster::{self, LaunchOptions, LocalCluster};
use crate::remote::{job_reply, JobReply, Session};
use crate::secret::ClusterSecret;
use crate::submit_stream::{stream_jobs, Outcome, StreamOptions};
use crate::supervise::ProcessGroup;

/// How long each local node may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the local cluster may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the local nodes may take to drain and exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// `job-node bench`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct BenchArgs {
    /// Measure this running cluster (ws://host:port of any node) instead
    /// of starting a local one.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// File holding the secret of --cluster (default: the development secret).
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub secret_file: Option<PathBuf>,
    /// CA certificates (PEM) for a wss:// --cluster URL.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub tls_ca: Option<PathBuf>,
    /// Node processes of the local cluster.
    #[arg(long, default_value_t = 3, conflicts_with = "cluster",
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// Workers per local node.
    #[arg(long, default_value_t = 4, conflicts_with = "cluster",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Give every local node a data directory: jobs are journaled before
    /// they are acknowledged.
    #[arg(long, conflicts_with = "cluster")]
    pub journal: bool,
    /// Jobs of the throughput run.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub jobs: u32,
    /// Most jobs sent and not yet answered during the throughput run.
    #[arg(long, default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub window: u32,
    /// Connections the throughput run is spread over, each with its share
    /// of --jobs and --window (all in this process). A local cluster's
    /// clients connect to its nodes in turn, so each node coordinates the
    /// jobs of its own clients; with --cluster all connect to URL (or, with
    /// --spread, to its members in turn).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// With --cluster: connect the clients to every member that is up, in
    /// turn, at the URL it advertises (as a local cluster's clients are),
    /// instead of all to URL.
    #[arg(long, requires = "cluster")]
    pub spread: bool,
    /// Job kind.
    #[arg(long, value_name = "KIND", default_value = "echo")]
    pub kind: String,
    /// Bytes of job data (the letter x repeated).
    #[arg(long, value_name = "BYTES", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub payload: u32,
    /// The job data verbatim instead (e.g. `--kind sleep --data 1`).
    #[arg(long, value_name = "DATA", conflicts_with = "payload")]
    pub data: Option<String>,
    /// Round trips with one job in flight (and of the ping-pong baseline).
    #[arg(long, default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rounds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Percentiles of round trips, in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Percentiles {
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_nanos() as f64 / 1e3
        };
        if samples.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
        }
    }
}

/// The throughput run.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Throughput {
    jobs: u32,
    window: u32,
    /// Connections the jobs were spread over (`--clients`).
    clients: u32,
    seconds: f64,
    jobs_per_second: f64,
    succeeded: u64,
    failed: u64,
    refused: u64,
    /// CPU time (user + system) of the local nodes and this process during
    /// the run, per job; `None` for a remote cluster.
    cpu_us_per_job: Option<f64>,
    /// The same, split: each local node process (in start order) and this
    /// process (the clients); empty for a remote cluster.
    cpu_us_per_job_nodes: Vec<f64>,
    cpu_us_per_job_client: Option<f64>,
    /// Each client's share and outcome, in client order.
    per_client: Vec<ClientRun>,
}

/// One client of the throughput run.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct ClientRun {
    /// The node it connected to.
    url: String,
    jobs: u32,
    window: u32,
    /// From the run's start until its last answer.
    seconds: f64,
    succeeded: u64,
    failed: u64,
    refused: u64,
}

/// The one-in-flight run.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Latency {
    rounds: u32,
    failed: u64,
    #[serde(flatten)]
    percentiles: Percentiles,
}

/// The raw WebSocket baselines of the same run.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Baseline {
    /// Envelopes echoed per second, pipelined with the same window.
    ws_echo_messages_per_second: f64,
    /// CPU time (user + system) of the echo server's process and this
    /// process during the echo run, per envelope echoed; `None` where it
    /// cannot be read (it is the floor of a job's CPU: its envelope's trip
    /// to a process and back, with no node in between).
    ws_echo_cpu_us_per_message: Option<f64>,
    /// One envelope in flight.
    ws_ping_pong: Percentiles,
}

/// Everything `bench` measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Report {
    /// `local` or the --cluster URL.
    cluster: String,
    nodes: u16,
    workers: Option<u16>,
    journal: bool,
    kind: String,
    data_bytes: usize,
    /// One-minute load average before the throughput run.
    load_average: Option<f64>,
    throughput: Throughput,
    latency: Latency,
    baseline: Baseline,
}

/// A temporary directory removed on drop (the local nodes' journals).
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `job-node bench`.
///
/// # Errors
///
/// A local cluster that does not start or form, an unreachable cluster, a
/// lost connection, or Ctrl-C.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = match &args.cluster {
        Some(url) => {
            let secret = ClusterSecret::for_client(args.secret_file.as_deref())?;
            let tls = args
                .tls_ca
                .as_deref()
                .map(|ca| cluster_router::TlsConfig::from_files(None, None, Some(ca)))
                .transpose()?;
            let target = Target {
                url: url.clone(),
                client_urls: vec![url.clone()],
                secret,
                tls,
                pids: Vec::new(),
            };
            measure(&args, &target, url.clone()).await?
        }
        None => run_local(&args).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    let bad = report.throughput.failed + report.throughput.refused + report.latency.failed;
    if bad > 0 {
        anyhow::bail!("{bad} jobs failed or were refused");
    }
    Ok(())
}

#[cfg(unix)]
fn private(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn private(_path: &std::path::Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Starts the local cluster, measures, and stops it however it went.
async fn run_local(args: &BenchArgs) -> anyhow::Result<Report> {
    // A private directory for a random cluster secret and the journals.
    let dir = TempDir(std::env::temp_dir().join(format!(
        "jobmesh-bench-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )));
    let secret_file = dir.0.join("cluster-secret");
    std::fs::create_dir_all(&dir.0)
        .and_then(|()| private(&dir.0, 0o700))
        .and_then(|()| std::fs::write(&secret_file, format!("{:032x}", rand::random::<u128>())))
        .and_then(|()| private(&secret_file, 0o600))
        .with_context(|| format!("cannot write {}", secret_file.display()))?;
    let options = LaunchOptions {
        exe: std::env::current_exe().context("cannot find the job-node executable")?,
        nodes: args.nodes,
        workers: args.workers,
        http: None,
        secret_file: Some(secret_file.clone()),
        ready_timeout: READY_TIMEOUT,
        data_dir: args.journal.then(|| dir.0.join("data")),
    };
    if !args.json {
        eprintln!(
            "starting {} local node processes with {} workers each{}",
            args.nodes,
            args.workers,
            if args.journal { ", journaled" } else { "" }
        );
    }
    let cluster = tokio::select! {
        launched = LocalCluster::launch(&options) => launched?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while starting the nodes"),
    };
    let target = Target {
        url: cluster.seed_url().context("no nodes")?.to_owned(),
        client_urls: cluster.nodes().iter().map(|n| n.url.clone()).collect(),
        secret: ClusterSecret::from_file(&secret_file)?,
        tls: None,
        pids: cluster.pids().to_vec(),
    };
    let outcome = tokio::select! {
        outcome = async {
            wait_formed(&target, usize::from(args.nodes), &args.kind).await?;
            measure(args, &target, "local".to_owned()).await
        } => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    cluster.shutdown(SHUTDOWN_GRACE).await;
    drop(dir);
    outcome.map(|mut report| {
        report.workers = Some(args.workers);
        report.journal = args.journal;
        report
    })
}

/// The cluster measured.
#[derive(Clone)]
struct Target {
    /// Where the session and the one-in-flight run connect (the first node).
    url: String,
    /// Where the throughput run's clients connect, in turn: every local
    /// node, or the --cluster URL alone.
    client_urls: Vec<String>,
    secret: ClusterSecret,
    tls: Option<cluster_router::TlsConfig>,
    /// The local node processes (empty for `--cluster`).
    pids: Vec<u32>,
}

impl Target {
    async fn session(&self) -> anyhow::Result<Session> {
        let timeout = Duration::from_secs(10);
        Ok(Session::connect_with(&self.url, &self.secret, timeout, self.tls.as_ref()).await?)
    }
}

/// Waits until `nodes` members are up and serve `kind`.
async fn wait_formed(target: &Target, nodes: usize, kind: &str) -> anyhow::Result<()> {
    let mut session = target.session().await?;
    let tag = format!("kind:{kind}");
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let view = session.cluster(Duration::from_secs(10)).await?;
        let ready = view
            .members
            .iter()
            .filter(|m| m.status == "up" && m.tags.contains(&tag))
            .count();
        if ready >= nodes {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{ready} of {nodes} nodes serve {kind} after {FORM_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs every measurement against `target`.
async fn measure(args: &BenchArgs, target: &Target, cluster: String) -> anyhow::Result<Report> {
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| "x".repeat(args.payload as usize));
    let prefix = format!("bench-{:08x}", rand::random::<u32>());
    let mut session = target.session().await?;
    let view = session.cluster(Duration::from_secs(10)).await?;
    let nodes = view.members.len();
    let spread_target;
    let target = if args.spread {
        // The members' advertised URLs, the connected node's first.
        let mut up: Vec<_> = view.members.iter().filter(|m| m.status == "up").collect();
        up.sort_by_key(|m| m.node != view.node);
        let client_urls: Vec<String> = up.iter().map(|m| m.url.clone()).collect();
        anyhow::ensure!(!client_urls.is_empty(), "no member of {} is up", target.url);
        spread_target = Target {
            client_urls,
            ..target.clone()
        };
        &spread_target
    } else {
        target
    };
    let node = session.node().to_owned();
    // A job's envelope, as the baselines send it (same size as the jobs').
    let mut sample = JobSubmission::new(args.kind.clone(), data.clone());
    sample.id = Some(format!("{prefix}-l-1"));
    let envelope = format!(
        r#"{{"to":"coordinator@{node}","from":"","payload":{},"id":1}}"#,
        serde_json::to_string(&sample)?
    );
    let load_average = load_average();
    let throughput = throughput(args, target, &data, &prefix).await?;
    let latency = latency(args, &mut session, &data, &prefix).await?;
    let mut echo = EchoProcess::start(local_cluster::threads_per_node(args.nodes)).await?;
    let baseline = async {
        let cpu_before = echo.pid.and_then(|pid| cpu_seconds(&[pid]));
        let ws_echo_messages_per_second =
            ws_echo(echo.addr, &envelope, args.jobs, args.window).await?;
        let cpu_after = echo.pid.and_then(|pid| cpu_seconds(&[pid]));
        let ws_echo_cpu_us_per_message = cpu_us_per(cpu_before, cpu_after, args.jobs);
        anyhow::Ok(Baseline {
            ws_echo_messages_per_second,
            ws_echo_cpu_us_per_message,
            ws_ping_pong: ws_ping_pong(echo.addr, &envelope, args.rounds).await?,
        })
    }
    .await;
    echo.stop().await;
    let baseline = baseline?;
    Ok(Report {
        cluster,
        nodes: u16::try_from(nodes).unwrap_or(u16::MAX),
        workers: None,
        journal: false,
        kind: args.kind.clone(),
        data_bytes: data.len(),
        load_average,
        throughput,
        latency,
        baseline,
    })
}

/// `--jobs` jobs through [`stream_jobs`] with a window of `--window`,
/// spread over `--clients` connections.
async fn throughput(
    args: &BenchArgs,
    target: &Target,
    data: &str,
    prefix: &str,
) -> anyhow::Result<Throughput> {
    let shares = client_shares(args.jobs, args.window, args.clients);
    let clients = u32::try_from(shares.len()).unwrap_or(u32::MAX);
    let split_before = cpu_split(&target.pids);
    let started = Instant::now();
    let runs = shares.into_iter().enumerate().map(|(i, (jobs, window))| {
        let url = &target.client_urls[i % target.client_urls.len().max(1)];
        let (kind, data) = (args.kind.clone(), data.to_owned());
        let submissions =
            (0..jobs).map(move |_| Ok(JobSubmission::new(kind.clone(), data.clone())));
        let opts = StreamOptions {
            window: window as usize,
            tls: target.tls.clone(),
            // Only counted: whether each job succeeded, not its text.
            result_json: false,
            ..StreamOptions::new(format!("{prefix}-t{i}"))
        };
        async move {
            let mut tally = ClientRun {
                url: url.clone(),
                jobs,
                window,
                ..ClientRun::default()
            };
            stream_jobs(
                url,
                &target.secret,
                submissions,
                None,
                opts,
                |outcome| match outcome {
                    Outcome::Result { success: true, .. } => tally.succeeded += 1,
                    Outcome::Result { success: false, .. } => tally.failed += 1,
                    Outcome::Refused { .. } => tally.refused += 1,
                    _ => {}
                },
            )
            .await
            .with_context(|| format!("client {i} (of {clients}) to {url}"))?;
            tally.seconds = started.elapsed().as_secs_f64();
            anyhow::Ok(tally)
        }
    });
    let tallies = futures_util::future::try_join_all(runs).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let split_after = cpu_split(&target.pids);
    let mut total = Throughput {
        jobs: args.jobs,
        window: args.window,
        clients,
        seconds: elapsed,
        jobs_per_second: f64::from(args.jobs) / elapsed.max(1e-9),
        ..Throughput::default()
    };
    for tally in &tallies {
        total.succeeded += tally.succeeded;
        total.failed += tally.failed;
        total.refused += tally.refused;
    }
    total.per_client = tallies;
    if !target.pids.is_empty() {
        if let (Some(before), Some(after)) = (split_before, split_after) {
            let sum = |split: &[f64]| Some(split.iter().sum());
            total.cpu_us_per_job = cpu_us_per(sum(&before), sum(&after), args.jobs);
            let per_job = |b: f64, a: f64| (a - b) * 1e6 / f64::from(args.jobs.max(1));
            total.cpu_us_per_job_client = Some(per_job(before[0], after[0]));
            total.cpu_us_per_job_nodes = before[1..]
                .iter()
                .zip(&after[1..])
                .map(|(&b, &a)| per_job(b, a))
                .collect();
        }
    }
    Ok(total)
}

/// Each client's jobs and window: `jobs` and `window` split as evenly as
/// they go (the first clients take the remainders), every window at least
/// one; never more clients than jobs.
fn client_shares(jobs: u32, window: u32, clients: u32) -> Vec<(u32, u32)> {
    let clients = clients.clamp(1, jobs.max(1));
    let share = |total: u32, i: u32| total / clients + u32::from(i < total % clients);
    (0..clients)
        .map(|i| (share(jobs, i), share(window, i).max(1)))
        .collect()
}

/// `--rounds` jobs one at a time (after a short warm-up).
async fn latency(
    args: &BenchArgs,
    session: &mut Session,
    data: &str,
    prefix: &str,
) -> anyhow::Result<Latency> {
    let to = format!("coordinator@{}", session.node());
    let warm_up = (args.rounds / 10).min(200);
    let mut samples = Vec::with_capacity(args.rounds as usize);
    let mut failed = 0;
    for n in 0..warm_up + args.rounds {
        let mut job = JobSubmission::new(args.kind.clone(), data.to_owned());
        job.id = Some(format!("{prefix}-l-{n}"));
        let payload = serde_json::to_string(&job)?;
        let started = Instant::now();
        let tag = session.send(&to, &payload).await?;
        let answer = session.answer_to(tag, Some(Duration::from_secs(30))).await;
        let elapsed = started.elapsed();
        let ok = matches!(
            answer.as_ref().map(job_reply),
            Ok(JobReply::Result { success: true, .. })
        );
        if n >= warm_up {
            samples.push(elapsed);
            failed += u64::from(!ok);
        }
    }
    Ok(Latency {
        rounds: args.rounds,
        failed,
        percentiles: Percentiles::of(samples),
    })
}

/// The raw baselines' echo server: this binary again as `bench-echo`, so
/// that a ping-pong crosses processes as a job's round trip does (in this
/// process it would share the client's runtime thread and measure no
/// wake-up at all), with as many runtime threads as a local node.
struct EchoProcess {
    group: ProcessGroup,
    addr: SocketAddr,
    pid: Option<u32>,
}

impl EchoProcess {
    async fn start(threads: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the job-node executable")?;
        let mut command = tokio::process::Command::new(exe);
        command.args(["bench-echo", "--threads", &threads.to_string()]);
        let mut group = ProcessGroup::new();
        let child = group
            .spawn("the echo server", command)
            .context("cannot start the echo server")?;
        let pid = child.id();
        let line = child.ready_line(READY_TIMEOUT).await?;
        let addr = serde_json::from_str::<EchoReady>(&line)
            .with_context(|| format!("the echo server said {line:?}"))?
            .listen;
        Ok(EchoProcess { group, addr, pid })
    }

    async fn stop(&mut self) {
        self.group.shutdown(SHUTDOWN_GRACE).await;
    }
}

/// The echo server's one line on stdout.
#[derive(serde::Serialize, serde::Deserialize)]
struct EchoReady {
    listen: SocketAddr,
}

/// `job-node bench-echo`: serves [`echo_server`] until stdin closes.
///
/// # Errors
///
/// When it cannot listen on loopback or print its address.
pub(crate) async fn echo_process() -> anyhow::Result<()> {
    let (addr, server) = echo_server().await?;
    println!("{}", serde_json::to_string(&EchoReady { listen: addr })?);
    crate::signals::wait_for_eof(tokio::io::stdin()).await;
    server.abort();
    Ok(())
}

/// A WebSocket echo server on loopback: every text frame is sent back,
/// written out whenever no further frame is ready.
async fn echo_server() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut frames) = ws.split();
                let mut next = frames.next().await;
                while let Some(Ok(message)) = next {
                    if message.is_text() && sink.feed(message).await.is_err() {
                        return;
                    }
                    next = match frames.next().now_or_never() {
                        Some(item) => item,
                        None => {
                            if sink.flush().await.is_err() {
                                return;
                            }
                            frames.next().await
                        }
                    };
                }
            });
        }
    });
    Ok((addr, task))
}

type RawWs = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn raw_client(addr: SocketAddr) -> anyhow::Result<RawWs> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await?;
    Ok(ws)
}

/// `count` envelopes through the echo server with at most `window` unanswered.
async fn ws_echo(addr: SocketAddr, envelope: &str, count: u32, window: u32) -> anyhow::Result<f64> {
    let (mut sink, mut frames) = raw_client(addr).await?.split();
    let room = Arc::new(Semaphore::new(window as usize));
    let text = envelope.to_owned();
    let sender_room = Arc::clone(&room);
    let started = Instant::now();
    let sending = tokio::spawn(async move {
        for _ in 0..count {
            if sender_room.available_permits() == 0 {
                sink.flush().await?;
            }
            sender_room.acquire().await?.forget();
            sink.feed(Message::text(text.clone())).await?;
        }
        sink.flush().await?;
        Ok::<_, anyhow::Error>(sink)
    });
    for _ in 0..count {
        match frames.next().await {
            Some(Ok(_)) => room.add_permits(1),
            other => anyhow::bail!("the echo baseline ended early: {other:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut sink = sending.await??;
    let _ = sink.close().await;
    Ok(f64::from(count) / elapsed.max(1e-9))
}

/// `rounds` envelopes through the echo server, one at a time.
async fn ws_ping_pong(
    addr: SocketAddr,
    envelope: &str,
    rounds: u32,
) -> anyhow::Result<Percentiles> {
    let mut ws = raw_client(addr).await?;
    let warm_up = (rounds / 10).min(200);
    let mut samples = Vec::with_capacity(rounds as usize);
    for n in 0..warm_up + rounds {
        let started = Instant::now();
        ws.send(Message::text(envelope.to_owned())).await?;
        match ws.next().await {
            Some(Ok(_)) => {}
            other => anyhow::bail!("the ping-pong baseline ended early: {other:?}"),
        }
        if n >= warm_up {
            samples.push(started.elapsed());
        }
    }
    let _ = ws.close(None).await;
    Ok(Percentiles::of(samples))
}

/// Microseconds of CPU per unit of `count`, from CPU seconds before and
/// after (`None` if either could not be read).
fn cpu_us_per(before: Option<f64>, after: Option<f64>, count: u32) -> Option<f64> {
    Some((after? - before?) * 1e6 / f64::from(count.max(1)))
}

/// CPU seconds (user + system) used so far by `pids` and this process.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    Some(cpu_split(pids)?.iter().sum())
}

/// CPU seconds of this process, then of each of `pids`.
fn cpu_split(pids: &[u32]) -> Option<Vec<f64>> {
    std::iter::once("self".to_owned())
        .chain(pids.iter().map(u32::to_string))
        .map(|pid| proc_cpu_seconds(&pid))
        .collect()
}

/// A process's CPU seconds: the sum of its threads' time on a CPU in
/// nanoseconds (`/proc/<pid>/task/*/schedstat`), or where that cannot be
/// read, its user + system time in clock ticks (`/proc/<pid>/stat`). The
/// ticks count in 10 ms steps: too coarse for a run of a few tens of
/// milliseconds such as the echo baseline's. (A thread that exits during
/// a run takes its time out of the sum; a node's and this process's
/// runtime threads live as long as they do.)
fn proc_cpu_seconds(pid: &str) -> Option<f64> {
    threads_cpu_seconds(pid).or_else(|| ticks_cpu_seconds(pid))
}

fn threads_cpu_seconds(pid: &str) -> Option<f64> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        // A thread that exited since the listing has nothing left to read.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(nanos as f64 / 1e9)
}

fn ticks_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, may hold spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    // Clock ticks; USER_HZ is 100 on every Linux architecture in use.
    Some((user + system) / 100.0)
}

/// The one-minute load average (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The table `bench` prints.
fn render(r: &Report) -> String {
    let t = &r.throughput;
    let l = &r.latency.percentiles;
    let b = &r.baseline.ws_ping_pong;
    let setup = match r.workers {
        Some(workers) => format!(
            "{} local node processes, {workers} workers each, {}",
            r.nodes,
            if r.journal { "journaled" } else { "no journal" }
        ),
        None => format!("{} ({} members)", r.cluster, r.nodes),
    };
    let load = r
        .load_average
        .map_or("unknown".to_owned(), |l| format!("{l:.2}"));
    let cpu = t
        .cpu_us_per_job
        .map_or("-".to_owned(), |c| format!("{c:.1} µs"));
    let rows = [
        (
            String::new(),
            "end to end".to_owned(),
            "raw baseline (same run: WebSocket echo on loopback)".to_owned(),
        ),
        (
            format!(
                "throughput: {} {} jobs, {} B, window {}{}",
                t.jobs,
                r.kind,
                r.data_bytes,
                t.window,
                if t.clients > 1 {
                    format!(", {} clients", t.clients)
                } else {
                    String::new()
                }
            ),
            format!("{:.0} jobs/s", t.jobs_per_second),
            format!(
                "{:.0} envelopes/s echoed",
                r.baseline.ws_echo_messages_per_second
            ),
        ),
        (
            format!("one in flight: {} round trips", r.latency.rounds),
            format!(
                "p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
                l.p50_us, l.p99_us, l.p999_us
            ),
            format!(
                "ping-pong p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
                b.p50_us, b.p99_us, b.p999_us
            ),
        ),
        (
            "CPU per job (nodes + this client)".to_owned(),
            cpu,
            r.baseline
                .ws_echo_cpu_us_per_message
                .map_or(String::new(), |c| {
                    format!("{c:.1} µs per envelope echoed (echo server + this client)")
                }),
        ),
    ];
    let mut out = format!(
        "jobmesh bench, end to end: {setup}; client in this process; \
         load average {load} before the run\n\n"
    );
    for (what, figure, baseline) in rows {
        out.push_str(format!("{what:<50}{figure:<44}{baseline}").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "\nthroughput: {} succeeded, {} failed, {} refused in {:.2} s; \
         one in flight: {} failed\n",
        t.succeeded, t.failed, t.refused, t.seconds, r.latency.failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_share_jobs_and_window() {
        assert_eq!(client_shares(10, 5, 1), vec![(10, 5)]);
        assert_eq!(client_shares(10, 5, 3), vec![(4, 2), (3, 2), (3, 1)]);
        // Every window at least one; no client without a job.
        assert_eq!(client_shares(2, 1, 4), vec![(1, 1), (1, 1)]);
        let shares = client_shares(1_000_003, 5_000, 7);
        assert_eq!(
            shares.iter().map(|s| u64::from(s.0)).sum::<u64>(),
            1_000_003
        );
        assert_eq!(shares.iter().map(|s| s.1).sum::<u32>(), 5_000);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let p = Percentiles::of(samples);
        assert_eq!((p.p50_us, p.p99_us, p.p999_us), (500.0, 990.0, 999.0));
        let one = Percentiles::of(vec![Duration::from_micros(7)]);
        assert_eq!((one.p50_us, one.p999_us), (7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()).p50_us, 0.0);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_load_average() {
        assert!(cpu_seconds(&[]).is_some_and(|s| s >= 0.0));
        assert!(load_average().is_some());
        // The threads' nanosecond sum is what is read here, and it grows
        // with work done (the ticks only in 10 ms steps).
        let before = threads_cpu_seconds("self").expect("schedstat");
        let mut x = 0u64;
        while threads_cpu_seconds("self").expect("schedstat") <= before {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(ticks_cpu_seconds("self").is_some());
    }

    #[tokio::test]
    async fn the_baselines_run_on_loopback() {
        let limit = Duration::from_secs(30);
        let (addr, server) = echo_server().await.unwrap();
        let rate = tokio::time::timeout(limit, ws_echo(addr, "{\"x\":1}", 2000, 64))
            .await
            .unwrap()
            .unwrap();
        assert!(rate > 0.0);
        let p = tokio::time::timeout(limit, ws_ping_pong(addr, "{\"x\":1}", 50))
            .await
            .unwrap()
            .unwrap();
        assert!(p.p50_us > 0.0 && p.p50_us <= p.p99_us && p.p99_us <= p.p999_us);
        server.abort();
    }
}
