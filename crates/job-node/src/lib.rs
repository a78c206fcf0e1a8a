//! The pieces of the `job-node` binary: command line, configuration,
//! built-in job kinds, HTTP API, metrics, the cluster client and the
//! process supervision behind `job-node demo`.
//!
//! The library exists for the binary (`main.rs` parses a [`Cli`], calls
//! [`init_logging`] and [`run`]) and for the process tests in `tests/`,
//! which start `job-node` processes and talk to them as a client does: a
//! [`Session`] authenticated with a [`ClusterSecret`], a [`JobSubmission`]
//! per job, [`stream_jobs`] for many, the [`ReadyReport`] line a node
//! prints when it serves. Every
//! module is private; embedding a node in another program is job-queue's
//! business (`job_queue::Coordinator`, `job_queue::WorkerPool`).
//!
//! # Layout
//!
//! * `cli` — clap definitions of `start`, `submit`, `status`, `get`,
//!   `watch`, `cancel`, `dead`, `demo`.
//! * `config` — `start`'s settings: command line over `JOBMESH_*`
//!   environment over the `--config` TOML file over defaults, checked
//!   (node name, seed URLs, a secret on any non-loopback address).
//! * `secret` — the cluster secret, from a file or the built-in
//!   development secret (loopback only); never printed.
//! * `kinds` — `echo`, `sleep`, `sha256` and the allow-listed `exec`, as
//!   plain async functions over the job data; `builtin` registers them
//!   into the job queue's handler registry.
//! * `http` — the axum API over the `http::Api` backend trait, and
//!   `metrics` — the Prometheus registry behind `GET /metrics`.
//! * `node` — the runtime of `start`: Router, Coordinator, WorkerPool,
//!   HTTP API, and the drain on SIGINT/SIGTERM.
//! * The client library of the edge protocol, used by the CLI, the process
//!   tests and the benches: `client` — the WebSocket connection
//!   ([`ClusterClient`]: connect, authenticate, frames); `remote` — a
//!   [`Session`] with one node: requests, the coordinator's commands (`get`,
//!   `attach`, ...) and the system actor's; `submit_stream` —
//!   [`stream_jobs`], any number of jobs with a window of unanswered ones,
//!   client-side ids and resume; `commands` — `submit`, `status`, `get`,
//!   `watch`, `cancel` and `dead` on top of them.
//! * `supervise`, `ready` and `local_cluster` — child processes that die
//!   with their parent, the line a supervised node prints once it serves,
//!   and a local cluster of node processes; `demo` — the demo on one.
//! * `mapreduce_cmd` — `mapreduce wordcount|index`: this process joins
//!   the cluster (or a local one it starts) as a driver node.
//! * `jobs_file` (the JSON-lines file of `submit --file`), `status_table`
//!   (what `status` prints), `progress_bar` and `logging` — what the
//!   commands read, print and log; `signals` — when a node should stop.
//! * `bench_cmd` — `bench`: end-to-end throughput and latency of a local
//!   (or given) cluster through `stream_jobs` and a `Session`, next to raw
//!   WebSocket baselines measured in the same run.
//! * `run` — the entry point: a parsed command line to the command's end.

mod bench_cmd;
mod builtin;
mod cli;
mod client;
mod commands;
mod config;
mod demo;
mod http;
mod jobs_file;
mod kinds;
mod local_cluster;
mod logging;
mod mapreduce_cmd;
mod metrics;
mod node;
mod progress_bar;
mod ready;
mod recurring_cmd;
mod remote;
mod run;
mod secret;
mod signals;
mod status_table;
mod submit_stream;
mod supervise;

#[cfg(test)]
mod test_util;

// What main.rs needs.
pub use cli::Cli;
pub use logging::init as init_logging;
pub use run::{error_text, run};
// What the process tests need to talk to a node, and the types its
// answers and errors carry.
pub use client::{
    ClientEnvelope, ClientError, ClientFrame, ClientReceiver, ClientSender, ClusterClient,
};
pub use http::{ClusterView, JobSubmission, LoadView, MemberView};
pub use ready::ReadyReport;
pub use remote::{Attached, JobReply, Lookup, RemoteError, Session, MAX_IDS};
pub use secret::ClusterSecret;
pub use submit_stream::{stream_jobs, Outcome, StreamOptions};

// The crate's README, tested as doctests (it does not replace the guide above).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
