//! The node's configuration: command line over environment over config file
//! over defaults, then checked.
//!
//! Each source becomes a [`ConfigLayer`] (every field optional);
//! [`ConfigLayer::over`] stacks them and [`NodeConfig::from_layer`] applies
//! the defaults and the rules: a valid node name, `ws://` seed URLs, a
//! secret on any non-loopback address, a non-empty secret file.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::StartArgs;
use crate::secret::{ClusterSecret, SecretError, SecretSource};

/// The default cluster listen address.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7700);

/// One source of settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
    /// Secret file.
    pub secret_file: Option<PathBuf>,
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Journal directory.
    pub data_dir: Option<PathBuf>,
    /// Programs `exec` may run.
    pub allow_exec: Option<Vec<String>>,
}

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
    /// A seed URL is not a WebSocket URL.
    #[error("invalid --join URL {0:?}: expected ws://HOST:PORT or wss://HOST:PORT")]
    InvalidJoinUrl(String),
    /// `workers` is zero.
    #[error("--workers must be at least 1")]
    ZeroWorkers,
    /// A non-loopback listen address without a secret.
    #[error(
        "refusing to listen on {0} without a cluster secret: pass --secret-file \
         (or JOBMESH_SECRET_FILE), or listen on a loopback address"
    )]
    SecretRequired(SocketAddr),
    /// The secret file could not be used.
    #[error(transparent)]
    Secret(#[from] SecretError),
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
            secret_file: args.secret_file.clone(),
            http: args.http,
            data_dir: args.data_dir.clone(),
            allow_exec: args.allow_exec.clone(),
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
            secret_file: get("JOBMESH_SECRET_FILE").map(PathBuf::from),
            http: parse_env(&get, "JOBMESH_HTTP", "IP:PORT")?,
            data_dir: get("JOBMESH_DATA_DIR").map(PathBuf::from),
            allow_exec: list("JOBMESH_ALLOW_EXEC"),
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
            secret_file: self.secret_file.or(lower.secret_file),
            http: self.http.or(lower.http),
            data_dir: self.data_dir.or(lower.data_dir),
            allow_exec: self.allow_exec.or(lower.allow_exec),
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
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Journal directory.
    pub data_dir: Option<PathBuf>,
    /// Programs `exec` may run.
    pub allow_exec: Vec<String>,
    /// Report readiness on stdout and exit when stdin closes.
    pub supervised: bool,
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
        let join = layer.join.unwrap_or_default();
        if let Some(bad) = join.iter().find(|u| !is_ws_url(u)) {
            return Err(ConfigError::InvalidJoinUrl(bad.clone()));
        }
        let workers = layer.workers.unwrap_or_else(default_workers);
        if workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        let secret = match &layer.secret_file {
            Some(path) => ClusterSecret::from_file(path)?,
            None if listen.ip().is_loopback() => ClusterSecret::development(),
            None => return Err(ConfigError::SecretRequired(listen)),
        };
        Ok(NodeConfig {
            name,
            listen,
            join,
            tags,
            workers,
            secret,
            http: layer.http,
            data_dir: layer.data_dir,
            allow_exec: layer.allow_exec.unwrap_or_default(),
            supervised: false,
            clients: ClientLimits::default(),
        })
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
