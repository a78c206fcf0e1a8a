//! The command line, as clap derive structs.
//!
//! Parsing only: turning [`StartArgs`] into a checked node configuration
//! (with the environment and the config file underneath) is
//! [`crate::config`]'s job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `job-node`: one node of a jobmesh cluster, and the tools to use one.
#[derive(Debug, Parser)]
#[command(
    name = "job-node",
    version,
    about = "A node of a distributed job queue, and the client tools to use a cluster",
    long_about = "A node of a distributed job queue, and the client tools to use a cluster.\n\n\
                  Without a subcommand, `job-node` runs `demo`: a local cluster of several \
                  node processes running a real workload.\n\n\
                  Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change the level."
)]
pub struct Cli {
    /// What to do (default: `demo`).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

impl Cli {
    /// Threads for the process's async runtime: `start`'s `--threads` (or
    /// `JOBMESH_THREADS`, or the config file's `threads`), the hidden
    /// `bench-echo`'s `--threads`; `None` (one per
    /// CPU) for every other command, or when `start`'s settings do not
    /// resolve (the command then reports why).
    pub fn runtime_threads(&self) -> Option<usize> {
        match &self.command {
            Some(Command::Start(args)) => crate::config::NodeConfig::resolve(args)
                .ok()
                .and_then(|config| config.threads),
            Some(Command::BenchEcho { threads }) => Some((*threads).max(1)),
            _ => None,
        }
    }
}

/// The subcommands (parsed once per process: the size of `start`'s many
/// options does not matter).
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Run a node until SIGINT/SIGTERM, then drain and leave the cluster.
    Start(StartArgs),
    /// Submit jobs to a cluster and print the results as JSON lines.
    Submit(SubmitArgs),
    /// Show a cluster's members, tags, load and per-node statistics.
    Status(StatusArgs),
    /// Print the records of jobs (any node answers for any job) as JSON lines.
    Get(IdsArgs),
    /// Follow one job until it is final, with progress, then print its result.
    Watch(WatchArgs),
    /// Cancel jobs (queued ones never start; running ones are told to stop).
    Cancel(IdsArgs),
    /// List, resubmit or discard dead-lettered jobs.
    Dead(DeadArgs),
    /// Add, list or remove recurring jobs (cron expressions, seconds first).
    Recurring(crate::recurring_cmd::RecurringArgs),
    /// Start a local cluster of node processes and run a workload on it.
    Demo(DemoArgs),
    /// Run a map-shuffle-reduce job (word count, inverted index) over files.
    Mapreduce(crate::mapreduce_cmd::MapReduceArgs),
    /// Measure a cluster end to end (a local one by default): throughput,
    /// latency with one job in flight, and raw WebSocket baselines.
    Bench(crate::bench_cmd::BenchArgs),
    /// `bench`'s raw baseline: a WebSocket echo server on loopback in its
    /// own process; prints its address on stdout, exits when stdin closes.
    #[command(hide = true)]
    BenchEcho {
        /// Async runtime threads (as many as a node of the bench's cluster).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// `job-node start`. Every option may also come from the environment
/// (`JOBMESH_*`) or from the `--config` TOML file; the command line wins,
/// then the environment, then the file, then the defaults.
#[derive(Debug, Clone, Default, Args, PartialEq)]
pub(crate) struct StartArgs {
    /// TOML config file with the same keys as the long options
    /// (name, listen, join, tags, workers, threads, secret_file, http, data_dir,
    /// allow_exec, retention, retention_bytes). [env: JOBMESH_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Node name, 1..=64 of [A-Za-z0-9_.-] (default: node-PORT).
    /// [env: JOBMESH_NAME]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Address for cluster links (default 127.0.0.1:7700). [env: JOBMESH_LISTEN]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Seed node URL to join (ws://host:port), repeatable.
    /// [env: JOBMESH_JOIN, comma-separated]
    #[arg(long, value_name = "URL")]
    pub join: Option<Vec<String>>,
    /// Tags this node offers, comma-separated (e.g. gpu,ssd). [env: JOBMESH_TAGS]
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    pub tags: Option<Vec<String>>,
    /// Concurrent jobs on this node (default: number of CPUs). [env: JOBMESH_WORKERS]
    #[arg(long, value_name = "K")]
    pub workers: Option<usize>,
    /// Threads of the node's async runtime (networking, coordinator,
    /// worker pool); CPU-heavy job kinds run on a separate blocking pool
    /// either way (default: number of CPUs; the nodes of a local cluster
    /// share the machine's CPUs). [env: JOBMESH_THREADS]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// File holding the cluster secret (trimmed, non-empty). Required to
    /// listen on a non-loopback address. [env: JOBMESH_SECRET_FILE]
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Serve the HTTP API and /metrics on this address. [env: JOBMESH_HTTP]
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<SocketAddr>,
    /// Directory for the job journal (jobs survive a restart). [env: JOBMESH_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long records of finished jobs are kept: 90s, 15m, 24h, 7d
    /// (default 24h). [env: JOBMESH_RETENTION]
    #[arg(long, value_name = "AGE")]
    pub retention: Option<crate::config::Span>,
    /// Most bytes of finished job records kept, oldest evicted first:
    /// 1000, 64KiB, 256MiB, 1GiB (default 256MiB). [env: JOBMESH_RETENTION_BYTES]
    #[arg(long, value_name = "BYTES")]
    pub retention_bytes: Option<crate::config::ByteSize>,
    /// Programs the `exec` job kind may run, comma-separated, exact match
    /// (default: none). [env: JOBMESH_ALLOW_EXEC]
    #[arg(long, value_name = "PROG,...", value_delimiter = ',')]
    pub allow_exec: Option<Vec<String>>,
    /// Job kinds that are idempotent, comma-separated: an attempt of such
    /// a kind that straggles (runs past 3x the kind's p95 on its node) gets
    /// a speculative backup on another node, the first result wins
    /// (default: none; a job can ask for it with `speculative`).
    /// [env: JOBMESH_IDEMPOTENT]
    #[arg(long, value_name = "KIND,...", value_delimiter = ',')]
    pub idempotent: Option<Vec<String>>,
    /// TLS certificate chain (PEM) to serve cluster links, clients and the
    /// HTTP API with (`wss://`, `https://`); needs --tls-key. [env: JOBMESH_TLS_CERT]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert. [env: JOBMESH_TLS_KEY]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that other nodes' certificates must chain to;
    /// needed to join through wss:// seeds. [env: JOBMESH_TLS_CA]
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Require the client token (`Authorization: Bearer`) on the HTTP API
    /// also on a loopback address (always required on any other address).
    /// [env: JOBMESH_HTTP_AUTH=true]
    #[arg(long)]
    pub http_auth: bool,
    /// Serve /metrics without the token even when the HTTP API requires it.
    /// [env: JOBMESH_METRICS_OPEN=true]
    #[arg(long)]
    pub metrics_open: bool,
    /// Refuse clients that register as external workers (docs/wire.md,
    /// "External workers"); by default any client of this node may.
    /// [env: JOBMESH_NO_EXTERNAL_WORKERS=true]
    #[arg(long)]
    pub no_external_workers: bool,
    /// The only kinds external workers may register for, comma-separated
    /// (default: any kind this node does not serve itself).
    /// [env: JOBMESH_EXTERNAL_KINDS]
    #[arg(long, value_name = "KIND,...", value_delimiter = ',')]
    pub external_kinds: Option<Vec<String>>,
    /// With --join: how long to try to authenticate with a seed before
    /// giving up and exiting non-zero, in seconds (default 60).
    /// [env: JOBMESH_JOIN_TIMEOUT]
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub join_timeout: Option<Duration>,
    /// Flow control of WebSocket clients: at most this many unanswered
    /// messages per client; its socket is not read further until answers
    /// are written back (default 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub client_window: Option<u64>,
    /// Close (1013) a WebSocket client that reads nothing for this many
    /// seconds while answers wait for it (default 30).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub client_idle_limit: Option<Duration>,
    /// A cluster-wide limit on a job kind, e.g. `kind=sleep,running=2,rate=50`
    /// (at most 2 running across the cluster, at most 50 starts per second;
    /// `burst=B` sizes the bucket); repeat for more kinds. Give every node
    /// the same limits (where they differ the stricter wins).
    /// [env: JOBMESH_LIMITS, `;`-separated]
    #[arg(long = "limit", value_name = "kind=K,running=N,rate=R")]
    pub limits: Option<Vec<crate::config::LimitSpec>>,
    /// Run under a supervisor (`demo`): print a JSON readiness line on
    /// stdout once up, and drain and exit when stdin closes.
    #[arg(long, hide = true)]
    pub supervised: bool,
}

/// Where a client command finds the cluster.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct ClusterArgs {
    /// WebSocket URL of any node (ws://host:port).
    #[arg(long, value_name = "URL", env = "JOBMESH_CLUSTER")]
    pub cluster: String,
    /// File holding the cluster secret (default: the development secret).
    #[arg(long, value_name = "FILE", env = "JOBMESH_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// How long to wait for the cluster to answer, in seconds.
    #[arg(long, value_name = "S", default_value = "10", value_parser = parse_seconds)]
    pub connect_timeout: Duration,
    /// CA certificates (PEM) the node's certificate must chain to, for a
    /// wss:// --cluster URL.
    #[arg(long, value_name = "FILE", env = "JOBMESH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl ClusterArgs {
    /// The TLS settings for `--cluster wss://...` (`None` without `--tls-ca`).
    ///
    /// # Errors
    ///
    /// An unreadable or invalid CA file.
    pub(crate) fn tls(
        &self,
    ) -> Result<Option<cluster_router::TlsConfig>, cluster_router::TlsError> {
        self.tls_ca
            .as_deref()
            .map(|ca| cluster_router::TlsConfig::from_files(None, None, Some(ca)))
            .transpose()
    }
}

/// `job-node submit`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct SubmitArgs {
    /// The cluster to submit to.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Job kind (echo, sleep, sha256, exec, or any kind the workers register).
    #[arg(
        long,
        value_name = "KIND",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub kind: Option<String>,
    /// Job data (a string; JSON for structured kinds; default empty).
    #[arg(long, value_name = "DATA", conflicts_with = "file")]
    pub data: Option<String>,
    /// Read jobs from a JSON-lines file instead: one job object per line,
    /// e.g. {"kind":"echo","data":"hi","tags":["gpu"]}.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Tags a worker node must have, comma-separated.
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Per-attempt timeout in seconds (default: the cluster's, 30 s).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// Attempts before the job is dead-lettered (default 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: Option<u32>,
    /// Priority: higher starts first among jobs waiting for a node
    /// (default 0; a waiting job gains one level per second, so lower
    /// priorities are delayed, never starved).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Start no earlier than S seconds after the job is accepted
    /// (fractions allowed, e.g. 0.5).
    #[arg(long, value_name = "S", value_parser = parse_delay)]
    pub delay: Option<Duration>,
    /// The job is idempotent: an attempt that straggles (runs past 3x its
    /// kind's p95 on its node) may get a speculative backup on another
    /// node; the first result wins.
    #[arg(long)]
    pub speculative: bool,
    /// Wait for the results and print them; otherwise print the job ids.
    #[arg(long)]
    pub wait: bool,
    /// Prefix of the ids given to jobs without one: `<prefix>-<n>`, `n`
    /// counting the jobs from 1 (default: random per run).
    #[arg(long, value_name = "PREFIX")]
    pub id_prefix: Option<String>,
    /// Append each job's id to FILE as it is sent.
    #[arg(long, value_name = "FILE")]
    pub ids_out: Option<PathBuf>,
    /// Resume an earlier run of the same file (same ids: the file's, or the
    /// same --id-prefix): submit only the jobs the cluster does not know,
    /// and collect every result. Nothing runs twice.
    #[arg(long, requires = "wait", requires = "file")]
    pub resume: bool,
    /// Most jobs sent and not yet answered.
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub window: u32,
}

/// `job-node get` and `job-node cancel`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct IdsArgs {
    /// The cluster to ask.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Job ids.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

/// `job-node watch`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct WatchArgs {
    /// The cluster to ask.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The job id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `job-node dead`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct DeadArgs {
    /// The cluster to ask.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: DeadAction,
}

/// `job-node dead list|resubmit|discard`.
#[derive(Debug, Clone, Subcommand, PartialEq)]
pub(crate) enum DeadAction {
    /// Print the connected node's dead letters as JSON lines.
    List,
    /// Run a dead-lettered job again.
    Resubmit {
        /// The job id.
        id: String,
    },
    /// Forget a dead-lettered job.
    Discard {
        /// The job id.
        id: String,
    },
}

/// `job-node status`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct StatusArgs {
    /// The cluster to ask.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `job-node demo`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct DemoArgs {
    /// How many node processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// How many jobs to run.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub jobs: u32,
    /// Workers per node.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Also serve the HTTP API of the first node on this address.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<SocketAddr>,
    /// Keep the cluster up after the run and print the web dashboard's URL
    /// (the first node's `--http`, a free loopback port unless `--http`
    /// says otherwise); Ctrl-C stops it.
    #[arg(long)]
    pub dashboard: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            nodes: 3,
            jobs: 3000,
            workers: 4,
            http: None,
            dashboard: false,
        }
    }
}

/// Parses a positive number of seconds, fractions allowed (`0.5`, `30`).
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "`{text}` must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `--delay`: a number of seconds, 0 to one year.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds.is_finite() && (0.0..=31_622_400.0).contains(&seconds)) {
        return Err(format!("`{text}` must be 0 to 31622400 seconds (a year)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("job-node").chain(args.iter().copied()))
    }

    #[test]
    fn help_names_each_environment_variable_once() {
        let mut root = Cli::command();
        for name in ["submit", "status", "get", "cancel", "watch"] {
            let help = root
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"))
                .render_long_help()
                .to_string();
            for var in ["JOBMESH_CLUSTER", "JOBMESH_SECRET_FILE", "JOBMESH_TLS_CA"] {
                assert_eq!(help.matches(var).count(), 1, "{name} --help: {var}\n{help}");
            }
        }
    }

    #[test]
    fn limits_repeat_and_are_checked() {
        let cli = parse(&[
            "start",
            "--limit",
            "kind=sleep,running=2",
            "--limit",
            "kind=io,rate=50",
        ])
        .unwrap();
        let Some(Command::Start(args)) = cli.command else {
            panic!("expected start");
        };
        let kinds: Vec<String> = args.limits.unwrap().into_iter().map(|l| l.0.kind).collect();
        assert_eq!(kinds, ["sleep", "io"]);
        let err = parse(&["start", "--limit", "kind=sleep"]).unwrap_err();
        assert!(err.to_string().contains("running=N or rate=R"), "{err}");
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_demo() {
        assert!(parse(&[]).unwrap().command.is_none());
    }

    #[test]
    fn start_with_everything() {
        let cli = parse(&[
            "start",
            "--name",
            "node-a",
            "--listen",
            "127.0.0.1:7800",
            "--join",
            "ws://127.0.0.1:7700",
            "--join",
            "ws://127.0.0.1:7701",
            "--tags",
            "gpu,ssd",
            "--workers",
            "8",
            "--secret-file",
            "/etc/jobmesh/secret",
            "--http",
            "127.0.0.1:8080",
            "--data-dir",
            "/var/lib/jobmesh",
            "--allow-exec",
            "echo,/bin/ls",
        ])
        .unwrap();
        let Some(Command::Start(args)) = cli.command else {
            panic!("expected start");
        };
        assert_eq!(args.name.as_deref(), Some("node-a"));
        assert_eq!(args.listen, Some("127.0.0.1:7800".parse().unwrap()));
        assert_eq!(
            args.join.unwrap(),
            ["ws://127.0.0.1:7700", "ws://127.0.0.1:7701"]
        );
        assert_eq!(args.tags.unwrap(), ["gpu", "ssd"]);
        assert_eq!(args.workers, Some(8));
        assert_eq!(args.http, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(args.allow_exec.unwrap(), ["echo", "/bin/ls"]);
        assert!(!args.supervised);
    }

    #[test]
    fn start_defaults_are_unset() {
        let Some(Command::Start(args)) = parse(&["start"]).unwrap().command else {
            panic!("expected start");
        };
        assert_eq!(args, StartArgs::default());
    }

    #[test]
    fn bad_start_arguments() {
        let cases: &[(&[&str], ErrorKind)] = &[
            (
                &["start", "--listen", "nowhere"],
                ErrorKind::ValueValidation,
            ),
            (
                &["start", "--listen", "127.0.0.1"],
                ErrorKind::ValueValidation,
            ),
            (&["start", "--workers", "-1"], ErrorKind::UnknownArgument),
            (&["start", "--workers", "many"], ErrorKind::ValueValidation),
            (&["start", "--bogus"], ErrorKind::UnknownArgument),
            (&["start", "--name"], ErrorKind::InvalidValue),
            (&["launch"], ErrorKind::InvalidSubcommand),
        ];
        for (args, kind) in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), *kind, "{args:?}: {err}");
        }
    }

    #[test]
    fn submit_single_and_file() {
        let Some(Command::Submit(args)) = parse(&[
            "submit",
            "--cluster",
            "ws://127.0.0.1:7700",
            "--kind",
            "sleep",
            "--data",
            "50",
            "--tags",
            "gpu",
            "--timeout",
            "1.5",
            "--max-attempts",
            "5",
            "--wait",
        ])
        .unwrap()
        .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.kind.as_deref(), Some("sleep"));
        assert_eq!(args.data.as_deref(), Some("50"));
        assert_eq!(args.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(args.max_attempts, Some(5));
        assert!(args.wait);
        assert_eq!(args.cluster.connect_timeout, Duration::from_secs(10));
        let Some(Command::Submit(args)) =
            parse(&["submit", "--cluster", "ws://h:1", "--file", "jobs.jsonl"])
                .unwrap()
                .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.file, Some(PathBuf::from("jobs.jsonl")));
        assert!(args.kind.is_none());
    }

    #[test]
    fn bad_submit_arguments() {
        let cases: &[(&[&str], ErrorKind)] = &[
            (
                &["submit", "--cluster", "ws://h:1"],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &[
                    "submit",
                    "--cluster",
                    "ws://h:1",
                    "--kind",
                    "echo",
                    "--file",
                    "f",
                ],
                ErrorKind::ArgumentConflict,
            ),
            (
                &[
                    "submit",
                    "--cluster",
                    "ws://h:1",
                    "--file",
                    "f",
                    "--data",
                    "x",
                ],
                ErrorKind::ArgumentConflict,
            ),
            (
                &[
                    "submit",
                    "--cluster",
                    "ws://h:1",
                    "--kind",
                    "e",
                    "--timeout",
                    "0",
                ],
                ErrorKind::ValueValidation,
            ),
            (
                &[
                    "submit",
                    "--cluster",
                    "ws://h:1",
                    "--kind",
                    "e",
                    "--timeout",
                    "abc",
                ],
                ErrorKind::ValueValidation,
            ),
            (
                &[
                    "submit",
                    "--cluster",
                    "ws://h:1",
                    "--kind",
                    "e",
                    "--max-attempts",
                    "0",
                ],
                ErrorKind::ValueValidation,
            ),
        ];
        for (args, kind) in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), *kind, "{args:?}: {err}");
        }
    }

    #[test]
    fn status_and_demo() {
        let Some(Command::Status(args)) = parse(&["status", "--cluster", "ws://h:1", "--json"])
            .unwrap()
            .command
        else {
            panic!("expected status");
        };
        assert!(args.json);
        let Some(Command::Demo(args)) = parse(&["demo"]).unwrap().command else {
            panic!("expected demo");
        };
        assert_eq!(args, DemoArgs::default());
        assert_eq!(
            parse(&["demo", "--nodes", "0"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["demo", "--nodes", "17"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn every_subcommand_has_help() {
        for sub in ["start", "submit", "status", "demo"] {
            let err = parse(&[sub, "--help"]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp);
            assert!(err.to_string().contains("Usage: job-node"), "{sub}");
        }
        let help = parse(&["start", "--help"]).unwrap_err().to_string();
        for needle in ["JOBMESH_NAME", "--allow-exec", "--secret-file", "--config"] {
            assert!(help.contains(needle), "start --help lacks {needle}");
        }
    }

    #[test]
    fn job_life_commands() {
        let Some(Command::Get(args)) = parse(&["get", "--cluster", "ws://h:1", "a-1", "a-2"])
            .unwrap()
            .command
        else {
            panic!("expected get");
        };
        assert_eq!(args.ids, ["a-1", "a-2"]);
        assert_eq!(
            parse(&["cancel", "--cluster", "ws://h:1"])
                .unwrap_err()
                .kind(),
            ErrorKind::MissingRequiredArgument
        );
        let Some(Command::Watch(args)) = parse(&["watch", "--cluster", "ws://h:1", "a-1"])
            .unwrap()
            .command
        else {
            panic!("expected watch");
        };
        assert_eq!(args.id, "a-1");
        let Some(Command::Dead(args)) = parse(&["dead", "--cluster", "ws://h:1", "discard", "x"])
            .unwrap()
            .command
        else {
            panic!("expected dead");
        };
        assert_eq!(args.action, DeadAction::Discard { id: "x".into() });
        for sub in ["get", "watch", "cancel", "dead"] {
            let err = parse(&[sub, "--help"]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{sub}");
        }
    }

    #[test]
    fn streaming_submit_flags() {
        let base = ["submit", "--cluster", "ws://h:1", "--file", "f"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        let Some(Command::Submit(args)) = with(&[
            "--wait",
            "--resume",
            "--id-prefix",
            "b7",
            "--ids-out",
            "ids",
            "--window",
            "100",
        ])
        .unwrap()
        .command
        else {
            panic!("expected submit");
        };
        assert!(args.resume && args.wait);
        assert_eq!(args.id_prefix.as_deref(), Some("b7"));
        assert_eq!(args.ids_out, Some(PathBuf::from("ids")));
        assert_eq!(args.window, 100);
        assert_eq!(
            with(&["--resume"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument,
            "--resume needs --wait"
        );
        assert_eq!(
            with(&["--window", "0"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        let Some(Command::Start(args)) = parse(&[
            "start",
            "--client-window",
            "50",
            "--client-idle-limit",
            "2.5",
        ])
        .unwrap()
        .command
        else {
            panic!("expected start");
        };
        assert_eq!(args.client_window, Some(50));
        assert_eq!(args.client_idle_limit, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn seconds_parser() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "NaN", "inf", "86401", "", "1s"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
