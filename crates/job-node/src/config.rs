//! The node's configuration: command line over environment over config file
//! over defaults, then checked.
//!
//! Each source becomes a [`ConfigLayer`] (every field optional);
//! [`ConfigLayer::over`] stacks them and [`NodeConfig::from_layer`] applies
//! the defaults and the rules: a valid node name, `ws://` seed URLs, a
//! secret on any non-loopback address, a non-empty secret file.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::StartArgs;
use crate::secret::{ClusterSecret, SecretError, SecretSource};

/// How long finished job records are kept by default.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How many bytes of finished job records are kept by default.
pub(crate) const DEFAULT_RETENTION_BYTES: u64 = 256 << 20;

/// The most threads `--threads` may ask for.
pub(crate) const MAX_THREADS: usize = 1024;

/// The default cluster listen address.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7700);

/// One source of settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigLayer {
    /// Node name.
    pub name: Option<String>,
    /// Cluster listen address.
    pub listen: Option<SocketAddr>,
    /// Seed URLs.
    pub join: Option<Vec<String>>,
    /// Offered tags.
    pub tags: Option<Vec<String>>,
    /// Concurrent jobs.
    pub workers: Option<usize>,
    /// Threads of the async runtime.
    pub threads: Option<usize>,
    /// Secret file.
    pub secret_file: Option<PathBuf>,
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Journal directory.
    pub data_dir: Option<PathBuf>,
    /// Programs `exec` may run.
    pub allow_exec: Option<Vec<String>>,
    /// Kinds whose jobs may get speculative backups.
    pub idempotent: Option<Vec<String>>,
    /// TLS certificate chain (PEM file).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM file).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM file) peers must chain to.
    pub tls_ca: Option<PathBuf>,
    /// Require the client token on a loopback HTTP API too.
    pub http_auth: Option<bool>,
    /// Serve /metrics without the token.
    pub metrics_open: Option<bool>,
    /// Refuse external worker registrations.
    pub no_external_workers: Option<bool>,
    /// The only kinds external workers may register for.
    pub external_kinds: Option<Vec<String>>,
    /// Seconds to try to authenticate with a seed before exiting.
    pub join_timeout: Option<f64>,
    /// Retention of finished job records, by age.
    pub retention: Option<Span>,
    /// Retention of finished job records, by bytes.
    pub retention_bytes: Option<ByteSize>,
    /// Cluster-wide limits per job kind.
    pub limits: Option<Vec<LimitSpec>>,
}

/// A cluster-wide limit written `kind=sleep,running=2,rate=50`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct LimitSpec(pub job_queue::KindLimit);

impl std::str::FromStr for LimitSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse()
            .map(LimitSpec)
            .map_err(|e| format!("limit {text:?}: {e}"))
    }
}

impl TryFrom<String> for LimitSpec {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// A duration written `90`, `90s`, `15m`, `24h` or `7d` (at least 1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TextOrNumber")]
pub(crate) struct Span(pub Duration);

/// A size written `1000`, `64KiB`, `256MiB` or `1GiB` (`K`, `M`, `G`,
/// `KB`, `MB`, `GB` are the same binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TextOrNumber")]
pub(crate) struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Number(u64),
}

/// Splits `12h` into (12, "h").
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = text[..at].parse().ok()?;
    Some((number, text[at..].trim()))
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a duration like 90s, 15m, 24h or 7d");
        let (n, unit) = number_and_unit(text).ok_or_else(bad)?;
        let secs = match unit {
            "" | "s" => Some(n),
            "m" => n.checked_mul(60),
            "h" => n.checked_mul(3600),
            "d" => n.checked_mul(86_400),
            _ => None,
        }
        .filter(|s| *s >= 1)
        .ok_or_else(bad)?;
        Ok(Span(Duration::from_secs(secs)))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a size like 1000, 64KiB, 256MiB or 1GiB");
        let (n, unit) = number_and_unit(text).ok_or_else(bad)?;
        let shift = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            _ => return Err(bad()),
        };
        n.checked_mul(1u64 << shift).map(ByteSize).ok_or_else(bad)
    }
}

impl TryFrom<TextOrNumber> for Span {
    type Error = String;

    fn try_from(value: TextOrNumber) -> Result<Self, String> {
        match value {
            TextOrNumber::Text(text) => text.parse(),
            TextOrNumber::Number(n) => n.to_string().parse(),
        }
    }
}

impl TryFrom<TextOrNumber> for ByteSize {
    type Error = String;

    fn try_from(value: TextOrNumber) -> Result<Self, String> {
        match value {
            TextOrNumber::Text(text) => text.parse(),
            TextOrNumber::Number(n) => Ok(ByteSize(n)),
        }
    }
}

/// The most programs `--allow-exec` may list: each is advertised as an
/// `accept:exec:<program>` tag, and a node's gossiped tags are bounded.
pub(crate) const MAX_EXEC_PROGRAMS: usize = 64;
/// Most kinds `--external-kinds` may list.
pub(crate) const MAX_EXTERNAL_KINDS: usize = 256;

/// The most kinds `--idempotent` may list.
pub(crate) const MAX_IDEMPOTENT_KINDS: usize = 256;

/// The longest program name `--allow-exec` may list (its tag stays under
/// the gossip's 256-byte tag limit).
pub(crate) const MAX_EXEC_PROGRAM_LEN: usize = 200;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("invalid config file {}: {source}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// Two limits for one job kind.
    #[error("two limits for job kind {0:?}: give one limit per kind (running=, rate= and burst= together)")]
    DuplicateLimit(String),
    /// An environment variable has a value that does not parse.
    #[error("invalid value {value:?} in ${var}: expected {expected}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The node name breaks the naming rule.
    #[error("invalid node name {0:?}: use 1 to 64 characters of A-Z a-z 0-9 _ . -")]
    InvalidName(String),
    /// A tag breaks the naming rule.
    #[error("invalid tag {0:?}: use 1 to 64 characters of A-Z a-z 0-9 _ . -")]
    InvalidTag(String),
    /// `--external-kinds` is empty, too long, or names a bad kind.
    #[error("invalid --external-kinds: {0}")]
    ExternalKinds(String),
    /// A seed URL is not a WebSocket URL.
    #[error("invalid --join URL {0:?}: expected ws://HOST:PORT or wss://HOST:PORT")]
    InvalidJoinUrl(String),
    /// `workers` is zero.
    #[error("--workers must be at least 1")]
    ZeroWorkers,
    /// `threads` out of range.
    #[error("--threads must be 1 to {MAX_THREADS}, not {0}")]
    Threads(usize),
    /// A non-loopback listen address without a secret.
    #[error(
        "refusing to listen on {0} without a cluster secret: pass --secret-file \
         (or JOBMESH_SECRET_FILE), or listen on a loopback address"
    )]
    SecretRequired(SocketAddr),
    /// The secret file could not be used.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The TLS files could not be used.
    #[error("TLS settings: {0}")]
    Tls(#[from] cluster_router::TlsError),
    /// Only one of --tls-cert and --tls-key.
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
    /// The `--allow-exec` list is longer than a node can advertise, or a
    /// program name is empty or too long.
    #[error(
        "invalid --allow-exec {0:?}: at most {max} programs of 1 to {len} bytes each \
         (each is advertised to the cluster as a tag)",
        max = MAX_EXEC_PROGRAMS,
        len = MAX_EXEC_PROGRAM_LEN
    )]
    AllowExec(String),
    /// The `--idempotent` list is too long, or a kind name is empty or
    /// too long.
    #[error(
        "invalid --idempotent {0:?}: at most {max} kinds of 1 to 64 bytes each",
        max = MAX_IDEMPOTENT_KINDS
    )]
    Idempotent(String),
    /// A join timeout that is not a positive number of seconds.
    #[error("invalid join timeout {0}: expected more than 0 and at most 86400 seconds")]
    JoinTimeout(f64),
}

impl ConfigLayer {
    /// The settings given on the command line.
    pub(crate) fn from_args(args: &StartArgs) -> Self {
        ConfigLayer {
            name: args.name.clone(),
            listen: args.listen,
            join: args.join.clone(),
            tags: args.tags.clone(),
            workers: args.workers,
            threads: args.threads,
            secret_file: args.secret_file.clone(),
            http: args.http,
            data_dir: args.data_dir.clone(),
            allow_exec: args.allow_exec.clone(),
            idempotent: args.idempotent.clone(),
            tls_cert: args.tls_cert.clone(),
            tls_key: args.tls_key.clone(),
            tls_ca: args.tls_ca.clone(),
            http_auth: args.http_auth.then_some(true),
            metrics_open: args.metrics_open.then_some(true),
            no_external_workers: args.no_external_workers.then_some(true),
            external_kinds: args.external_kinds.clone(),
            join_timeout: args.join_timeout.map(|d| d.as_secs_f64()),
            retention: args.retention,
            retention_bytes: args.retention_bytes,
            limits: args.limits.clone(),
        }
    }

    /// The settings in `JOBMESH_*` variables, read through `var` (pass
    /// `|k| std::env::var(k).ok()` for the real environment). Lists are
    /// comma-separated; empty variables count as unset.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BadEnv`] when a value does not parse.
    pub(crate) fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let list = |name: &str| get(name).map(|v| split_list(&v));
        Ok(ConfigLayer {
            name: get("JOBMESH_NAME"),
            listen: parse_env(&get, "JOBMESH_LISTEN", "IP:PORT")?,
            join: list("JOBMESH_JOIN"),
            tags: list("JOBMESH_TAGS"),
            workers: parse_env(&get, "JOBMESH_WORKERS", "a whole number")?,
            threads: parse_env(&get, "JOBMESH_THREADS", "a whole number")?,
            secret_file: get("JOBMESH_SECRET_FILE").map(PathBuf::from),
            http: parse_env(&get, "JOBMESH_HTTP", "IP:PORT")?,
            data_dir: get("JOBMESH_DATA_DIR").map(PathBuf::from),
            allow_exec: list("JOBMESH_ALLOW_EXEC"),
            idempotent: list("JOBMESH_IDEMPOTENT"),
            tls_cert: get("JOBMESH_TLS_CERT").map(PathBuf::from),
            tls_key: get("JOBMESH_TLS_KEY").map(PathBuf::from),
            tls_ca: get("JOBMESH_TLS_CA").map(PathBuf::from),
            http_auth: parse_env(&get, "JOBMESH_HTTP_AUTH", "true or false")?,
            metrics_open: parse_env(&get, "JOBMESH_METRICS_OPEN", "true or false")?,
            no_external_workers: parse_env(&get, "JOBMESH_NO_EXTERNAL_WORKERS", "true or false")?,
            external_kinds: list("JOBMESH_EXTERNAL_KINDS"),
            join_timeout: parse_env(&get, "JOBMESH_JOIN_TIMEOUT", "a number of seconds")?,
            retention: parse_env(&get, "JOBMESH_RETENTION", "a duration like 24h")?,
            retention_bytes: parse_env(&get, "JOBMESH_RETENTION_BYTES", "a size like 256MiB")?,
            limits: get("JOBMESH_LIMITS")
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse().map_err(|_| ConfigError::BadEnv {
                                var: "JOBMESH_LIMITS",
                                value: v.clone(),
                                expected: "limits like kind=sleep,running=2;kind=io,rate=50",
                            })
                        })
                        .collect::<Result<Vec<LimitSpec>, ConfigError>>()
                })
                .transpose()?,
        })
    }

    /// The settings in a TOML file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ReadFile`] or [`ConfigError::ParseFile`].
    pub(crate) fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source,
        })
    }

    /// The settings in TOML text.
    ///
    /// # Errors
    ///
    /// The parser's error for bad TOML or unknown keys.
    pub(crate) fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// `self` where set, `lower` elsewhere.
    pub(crate) fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            name: self.name.or(lower.name),
            listen: self.listen.or(lower.listen),
            join: self.join.or(lower.join),
            tags: self.tags.or(lower.tags),
            workers: self.workers.or(lower.workers),
            threads: self.threads.or(lower.threads),
            secret_file: self.secret_file.or(lower.secret_file),
            http: self.http.or(lower.http),
            data_dir: self.data_dir.or(lower.data_dir),
            allow_exec: self.allow_exec.or(lower.allow_exec),
            idempotent: self.idempotent.or(lower.idempotent),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_ca: self.tls_ca.or(lower.tls_ca),
            http_auth: self.http_auth.or(lower.http_auth),
            metrics_open: self.metrics_open.or(lower.metrics_open),
            no_external_workers: self.no_external_workers.or(lower.no_external_workers),
            external_kinds: self.external_kinds.or(lower.external_kinds),
            join_timeout: self.join_timeout.or(lower.join_timeout),
            retention: self.retention.or(lower.retention),
            retention_bytes: self.retention_bytes.or(lower.retention_bytes),
            limits: self.limits.or(lower.limits),
        }
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_env<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    get(var)
        .map(|value| {
            value.trim().parse().map_err(|_| ConfigError::BadEnv {
                var,
                value: value.clone(),
                expected,
            })
        })
        .transpose()
}

/// A checked node configuration.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// Node name.
    pub name: String,
    /// Cluster listen address.
    pub listen: SocketAddr,
    /// Seed URLs.
    pub join: Vec<String>,
    /// Offered tags.
    pub tags: Vec<String>,
    /// Concurrent jobs.
    pub workers: usize,
    /// Threads of the async runtime (`None`: one per CPU).
    pub threads: Option<usize>,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Journal directory.
    pub data_dir: Option<PathBuf>,
    /// Programs `exec` may run.
    pub allow_exec: Vec<String>,
    /// Kinds whose jobs may get speculative backups (they are idempotent).
    pub idempotent: Vec<String>,
    /// Report readiness on stdout and exit when stdin closes.
    pub supervised: bool,
    /// TLS for the cluster listener, seeds and the HTTP API.
    pub tls: Option<cluster_router::TlsConfig>,
    /// Whether the HTTP API requires the client token (always on a
    /// non-loopback address; on loopback with --http-auth).
    pub http_auth: bool,
    /// Whether /metrics is served without the token.
    pub metrics_open: bool,
    /// Whether clients may register as external workers.
    pub external_workers: bool,
    /// The only kinds they may register for (`None`: any kind the node
    /// does not serve itself).
    pub external_kinds: Option<Vec<String>>,
    /// How long a joining node tries to authenticate with a seed.
    pub join_timeout: std::time::Duration,
    /// The name is the default `node-PORT` (no `--name`).
    pub default_name: bool,
    /// How long finished job records are kept.
    pub retention: Duration,
    /// Most bytes of finished job records kept.
    pub retention_bytes: u64,
    /// Cluster-wide limits per job kind (`--limit`).
    pub limits: Vec<job_queue::KindLimit>,
    /// Flow control of WebSocket clients (`--client-window`,
    /// `--client-idle-limit`; command line only).
    pub clients: ClientLimits,
}

/// Flow control of a node's WebSocket clients (see `docs/wire.md`, "Slow
/// clients and flow control").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientLimits {
    /// Most unanswered messages per client.
    pub window: usize,
    /// A client that reads nothing this long while answers wait is closed.
    pub idle_limit: std::time::Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            window: 10_000,
            idle_limit: std::time::Duration::from_secs(30),
        }
    }
}

/// The default of [`NodeConfig::join_timeout`].
pub(crate) const DEFAULT_JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl NodeConfig {
    /// Resolves `start`'s arguments with the real environment and the
    /// config file they (or `JOBMESH_CONFIG`) name.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`].
    pub(crate) fn resolve(args: &StartArgs) -> Result<NodeConfig, ConfigError> {
        Self::resolve_with(args, |k| std::env::var(k).ok())
    }

    /// [`NodeConfig::resolve`] with an explicit environment.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`].
    pub(crate) fn resolve_with(
        args: &StartArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let config_file = args.config.clone().or_else(|| {
            env("JOBMESH_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let file = match config_file {
            Some(path) => ConfigLayer::from_file(&path)?,
            None => ConfigLayer::default(),
        };
        let layer = ConfigLayer::from_args(args).over(ConfigLayer::from_env(env)?.over(file));
        let mut config = NodeConfig::from_layer(layer)?;
        config.supervised = args.supervised;
        if let Some(window) = args.client_window {
            config.clients.window = usize::try_from(window).unwrap_or(usize::MAX);
        }
        if let Some(idle) = args.client_idle_limit {
            config.clients.idle_limit = idle;
        }
        Ok(config)
    }

    /// Applies the defaults and the rules to merged settings.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`] but the file and environment ones.
    pub(crate) fn from_layer(layer: ConfigLayer) -> Result<NodeConfig, ConfigError> {
        let listen = layer.listen.unwrap_or(DEFAULT_LISTEN);
        let default_name = layer.name.is_none();
        let name = layer
            .name
            .unwrap_or_else(|| format!("node-{}", listen.port()));
        if !is_valid_name(&name) {
            return Err(ConfigError::InvalidName(name));
        }
        let tags = layer.tags.unwrap_or_default();
        if let Some(bad) = tags.iter().find(|t| !is_valid_name(t)) {
            return Err(ConfigError::InvalidTag(bad.clone()));
        }
        let allow_exec = layer.allow_exec.unwrap_or_default();
        if allow_exec.len() > MAX_EXEC_PROGRAMS {
            return Err(ConfigError::AllowExec(format!(
                "{} programs",
                allow_exec.len()
            )));
        }
        let too_long = |p: &&String| p.is_empty() || p.len() > MAX_EXEC_PROGRAM_LEN;
        if let Some(bad) = allow_exec.iter().find(too_long) {
            return Err(ConfigError::AllowExec(bad.clone()));
        }
        if let Some(kinds) = &layer.external_kinds {
            if kinds.is_empty() || kinds.len() > MAX_EXTERNAL_KINDS {
                return Err(ConfigError::ExternalKinds(format!(
                    "{} kinds (give 1 to {MAX_EXTERNAL_KINDS}, or --no-external-workers)",
                    kinds.len()
                )));
            }
            if let Some(bad) = kinds.iter().find(|k| !is_valid_name(k)) {
                return Err(ConfigError::ExternalKinds(format!(
                    "{bad:?} is not a kind name"
                )));
            }
        }
        let limits: Vec<job_queue::KindLimit> = layer
            .limits
            .unwrap_or_default()
            .into_iter()
            .map(|spec| spec.0)
            .collect();
        for (i, limit) in limits.iter().enumerate() {
            if limits[..i].iter().any(|l| l.kind == limit.kind) {
                return Err(ConfigError::DuplicateLimit(limit.kind.clone()));
            }
        }
        let idempotent = layer.idempotent.unwrap_or_default();
        if idempotent.len() > MAX_IDEMPOTENT_KINDS {
            return Err(ConfigError::Idempotent(format!(
                "{} kinds",
                idempotent.len()
            )));
        }
        let bad_kind = |k: &&String| k.is_empty() || k.len() > job_queue::Job::MAX_KIND_LEN;
        if let Some(bad) = idempotent.iter().find(bad_kind) {
            return Err(ConfigError::Idempotent(bad.clone()));
        }
        let join = layer.join.unwrap_or_default();
        if let Some(bad) = join.iter().find(|u| !is_ws_url(u)) {
            return Err(ConfigError::InvalidJoinUrl(bad.clone()));
        }
        let workers = layer.workers.unwrap_or_else(default_workers);
        if workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        if let Some(threads) = layer.threads.filter(|t| !(1..=MAX_THREADS).contains(t)) {
            return Err(ConfigError::Threads(threads));
        }
        // The HTTP API's token derives from the secret: a public API with
        // the well-known development secret would be open to anyone.
        let public_http = layer.http.filter(|a| !a.ip().is_loopback());
        let secret = match (&layer.secret_file, public_http) {
            (Some(path), _) => ClusterSecret::from_file(path)?,
            (None, Some(http)) => return Err(ConfigError::SecretRequired(http)),
            (None, None) if listen.ip().is_loopback() => ClusterSecret::development(),
            (None, None) => return Err(ConfigError::SecretRequired(listen)),
        };
        let tls = match (&layer.tls_cert, &layer.tls_key, &layer.tls_ca) {
            (None, None, None) => None,
            (Some(_), None, _) | (None, Some(_), _) => return Err(ConfigError::TlsPair),
            (cert, key, ca) => Some(cluster_router::TlsConfig::from_files(
                cert.as_deref(),
                key.as_deref(),
                ca.as_deref(),
            )?),
        };
        let join_timeout = match layer.join_timeout {
            None => DEFAULT_JOIN_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                std::time::Duration::from_secs_f64(s)
            }
            Some(s) => return Err(ConfigError::JoinTimeout(s)),
        };
        let http_auth =
            layer.http_auth.unwrap_or(false) || layer.http.is_some_and(|a| !a.ip().is_loopback());
        Ok(NodeConfig {
            default_name,
            tls,
            http_auth,
            metrics_open: layer.metrics_open.unwrap_or(false),
            external_workers: !layer.no_external_workers.unwrap_or(false),
            external_kinds: layer.external_kinds,
            join_timeout,
            name,
            listen,
            join,
            tags,
            workers,
            threads: layer.threads,
            secret,
            http: layer.http,
            data_dir: layer.data_dir,
            allow_exec,
            idempotent,
            supervised: false,
            retention: layer.retention.map_or(DEFAULT_RETENTION, |span| span.0),
            retention_bytes: layer
                .retention_bytes
                .map_or(DEFAULT_RETENTION_BYTES, |size| size.0),
            clients: ClientLimits::default(),
            limits,
        })
    }

    /// With port 0 and no `--name`: picks the port now (binding port 0 and
    /// releasing it) so that the default name `node-PORT` carries the real
    /// port, not `node-0`. Otherwise returns `self` unchanged.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub(crate) fn with_bound_port(mut self) -> std::io::Result<NodeConfig> {
        if self.listen.port() != 0 || !self.default_name {
            return Ok(self);
        }
        let port = std::net::TcpListener::bind(self.listen)?
            .local_addr()?
            .port();
        self.listen.set_port(port);
        self.name = format!("node-{port}");
        Ok(self)
    }

    /// Whether the node runs with the built-in development secret.
    pub(crate) fn uses_development_secret(&self) -> bool {
        self.secret.source() == &SecretSource::Development
    }
}

/// The node-name rule of the whole cluster: 1..=64 of `[A-Za-z0-9_.-]`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_ws_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.contains(char::is_whitespace))
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
