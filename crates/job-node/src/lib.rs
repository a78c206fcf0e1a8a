//! The pieces of the `job-node` binary: command line, configuration,
//! built-in job kinds, HTTP API, metrics, the cluster client and the
//! process supervision behind `job-node demo`.
//!
//! # Layout
//!
//! * [`cli`] — clap definitions of `start`, `submit`, `status`, `demo`.
//! * [`config`] — `start`'s settings: command line over `JOBMESH_*`
//!   environment over the `--config` TOML file over defaults, checked
//!   (node name, seed URLs, a secret on any non-loopback address).
//! * [`secret`] — the cluster secret, from a file or the built-in
//!   development secret (loopback only); never printed.
//! * [`kinds`] — `echo`, `sleep`, `sha256` and the allow-listed `exec`, as
//!   plain async functions over the job data; [`builtin`] registers them
//!   into the job queue's handler registry.
//! * [`http`] — the axum API over the [`http::Api`] backend trait, and
//!   [`metrics`] — the Prometheus registry behind `GET /metrics`.
//! * [`node`] — the runtime of `start`: Router, Coordinator, WorkerPool,
//!   HTTP API, and the drain on SIGINT/SIGTERM.
//! * [`client`] — the WebSocket client of the cluster's client edge;
//!   [`remote`] — the job and status protocols over it; [`commands`] —
//!   `submit` and `status`.
//! * [`supervise`], [`demo`] and [`demo_run`] — child processes that die
//!   with their parent, the local cluster the demo runs on, and the demo.
//! * [`mapreduce_cmd`] — `mapreduce wordcount|index`: this process joins
//!   the cluster (or a local one it starts) as a driver node.
//! * [`output`] and [`logging`] — what the commands print and log;
//!   [`signals`] — when a node should stop.
//!
//! # Example
//!
//! Settings from the command line win over the environment, which wins
//! over the config file:
//!
//! ```
//! use job_node::config::{ConfigLayer, NodeConfig};
//!
//! let file = ConfigLayer::from_toml("name = \"from-file\"\nworkers = 2\ntags = [\"gpu\"]").unwrap();
//! let env = ConfigLayer::from_env(|var| (var == "JOBMESH_WORKERS").then(|| "8".to_owned())).unwrap();
//! let cli = ConfigLayer { name: Some("node-a".into()), ..ConfigLayer::default() };
//!
//! let config = NodeConfig::from_layer(cli.over(env.over(file))).unwrap();
//! assert_eq!((config.name.as_str(), config.workers), ("node-a", 8));
//! assert_eq!(config.tags, ["gpu"]);
//! assert!(config.uses_development_secret()); // loopback default: 127.0.0.1:7700
//! ```
//!
//! And a built-in kind is an ordinary async function:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let digest = job_node::kinds::sha256(r#"{"input":"abc","rounds":1}"#).await.unwrap();
//! assert!(digest.starts_with("ba7816bf"));
//! # }
//! ```

pub mod builtin;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod demo_run;
pub mod http;
pub mod kinds;
pub mod logging;
pub mod mapreduce_cmd;
pub mod metrics;
pub mod node;
pub mod output;
pub mod remote;
pub mod secret;
pub mod signals;
pub mod supervise;

#[cfg(test)]
mod test_util;
