//! A local cluster of node processes, for `job-node demo` and `job-node
//! mapreduce` without `--join`.
//!
//! [`LocalCluster::launch`] re-executes this binary as `job-node start
//! --supervised` on `127.0.0.1:0` once per node. Each node reports a
//! [`ReadyReport`] line on stdout; the first node is the seed the others
//! join. The processes live in a [`ProcessGroup`], so they end with the
//! command however it ends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::ready::ReadyReport;
use crate::supervise::{ChildExit, ProcessGroup};

/// Why the local cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LaunchError {
    /// A node process could not be spawned.
    #[error("cannot start {node} ({}): {source}", exe.display())]
    Spawn {
        /// The node.
        node: String,
        /// The executable.
        exe: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A node did not report readiness.
    #[error("{node} did not come up: {source}")]
    NotReady {
        /// The node.
        node: String,
        /// What went wrong (timeout, early exit).
        #[source]
        source: std::io::Error,
    },
    /// A node printed something other than a ready report.
    #[error("{node} sent an unexpected readiness line: {line:?}")]
    BadReport {
        /// The node.
        node: String,
        /// The line.
        line: String,
    },
}

/// How to launch the local cluster.
#[derive(Debug, Clone)]
pub(crate) struct LaunchOptions {
    /// The `job-node` executable (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// How many nodes.
    pub nodes: u16,
    /// Workers per node.
    pub workers: u16,
    /// HTTP address of the first node, if any.
    pub http: Option<SocketAddr>,
    /// The cluster secret file every node reads (`None`: the development
    /// secret).
    pub secret_file: Option<PathBuf>,
    /// How long each node may take to come up.
    pub ready_timeout: Duration,
    /// Journal the jobs: node `node-i` gets the data directory
    /// `<data_dir>/node-i` (`None`: no journal).
    pub data_dir: Option<PathBuf>,
}

/// The async runtime threads of each of `nodes` nodes on this machine:
/// they share its CPUs (at least one each). Three nodes that each took
/// every CPU would hand their work between more threads than cores, and
/// every hand-over between threads of a process is a wake-up.
pub(crate) fn threads_per_node(nodes: u16) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / usize::from(nodes.max(1))).max(1)
}

/// The `start` command line for one demo node.
fn node_command(
    options: &LaunchOptions,
    name: &str,
    join: Option<&str>,
    http: Option<SocketAddr>,
    data_dir: Option<&Path>,
) -> Command {
    let mut command = Command::new(&options.exe);
    command
        .arg("start")
        .args(["--name", name, "--listen", "127.0.0.1:0", "--supervised"])
        .args(["--workers", &options.workers.to_string()])
        .args(["--threads", &threads_per_node(options.nodes).to_string()]);
    if let Some(seed) = join {
        command.args(["--join", seed]);
    }
    if let Some(addr) = http {
        command.args(["--http", &addr.to_string()]);
    }
    if let Some(file) = &options.secret_file {
        command.arg("--secret-file").arg(file);
    }
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    // Only the demo's own output and the nodes' own warnings unless the
    // user asked for node logs.
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "error,job_node=warn");
    }
    // The demo's nodes must not pick up a user's node settings.
    for var in [
        "JOBMESH_CONFIG",
        "JOBMESH_NAME",
        "JOBMESH_LISTEN",
        "JOBMESH_JOIN",
        "JOBMESH_TAGS",
        "JOBMESH_WORKERS",
        "JOBMESH_THREADS",
        "JOBMESH_SECRET_FILE",
        "JOBMESH_HTTP",
        "JOBMESH_DATA_DIR",
        "JOBMESH_ALLOW_EXEC",
    ] {
        command.env_remove(var);
    }
    command
}

/// A running local cluster.
#[derive(Debug)]
pub(crate) struct LocalCluster {
    group: ProcessGroup,
    nodes: Vec<ReadyReport>,
    pids: Vec<u32>,
}

impl LocalCluster {
    /// Starts `options.nodes` node processes, the first as the seed, and
    /// waits for each to report readiness.
    ///
    /// # Errors
    ///
    /// [`LaunchError`]; every node already started is killed.
    pub(crate) async fn launch(options: &LaunchOptions) -> Result<LocalCluster, LaunchError> {
        let mut cluster = LocalCluster {
            group: ProcessGroup::new(),
            nodes: Vec::new(),
            pids: Vec::new(),
        };
        for index in 1..=options.nodes {
            let name = format!("node-{index}");
            let seed = cluster.nodes.first().map(|n| n.url.clone());
            let http = if index == 1 { options.http } else { None };
            let data_dir = options.data_dir.as_ref().map(|dir| dir.join(&name));
            let command = node_command(options, &name, seed.as_deref(), http, data_dir.as_deref());
            let child = cluster
                .group
                .spawn(name.clone(), command)
                .map_err(|source| LaunchError::Spawn {
                    node: name.clone(),
                    exe: options.exe.clone(),
                    source,
                })?;
            cluster.pids.extend(child.id());
            let line = child
                .ready_line(options.ready_timeout)
                .await
                .map_err(|source| LaunchError::NotReady {
                    node: name.clone(),
                    source,
                })?;
            let report =
                ReadyReport::parse(&line).ok_or(LaunchError::BadReport { node: name, line })?;
            tracing::debug!(node = %report.node, url = %report.url, "demo node up");
            cluster.nodes.push(report);
        }
        Ok(cluster)
    }

    /// The nodes, in start order.
    pub(crate) fn nodes(&self) -> &[ReadyReport] {
        &self.nodes
    }

    /// The process ids of the nodes, in start order.
    pub(crate) fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The URL of the first node.
    pub(crate) fn seed_url(&self) -> Option<&str> {
        self.nodes.first().map(|n| n.url.as_str())
    }

    /// Asks every node to drain and exit, kills those still running after
    /// `grace`, and reports how each ended.
    pub(crate) async fn shutdown(mut self, grace: Duration) -> Vec<ChildExit> {
        self.group.shutdown(grace).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A stand-in for `job-node`: records its arguments, reports ready
    /// with a URL derived from its name, and waits for stdin to close.
    fn fake_node(dir: &TempDir) -> PathBuf {
        let script = dir.write(
            "fake-node",
            &format!(
                "#!/bin/sh\necho \"$@\" >> {log}\nname=$3\n\
                 echo \"{{\\\"event\\\":\\\"ready\\\",\\\"node\\\":\\\"$name\\\",\\\"url\\\":\\\"ws://127.0.0.1:1/$name\\\"}}\"\n\
                 read -r line\nexit 0\n",
                log = dir.path().join("args.log").display()
            ),
        );
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        script
    }

    /// Launches; retries when exec hits ETXTBSY because another test's
    /// fork briefly inherited the just-written script's descriptor.
    async fn launch_retrying_busy(options: &LaunchOptions) -> LocalCluster {
        for _ in 0..20 {
            match timeout(LIMIT, LocalCluster::launch(options)).await.unwrap() {
                Err(LaunchError::Spawn { source, .. }) if source.raw_os_error() == Some(26) => {
                    tokio::task::yield_now().await;
                }
                other => return other.unwrap(),
            }
        }
        panic!("executable stayed busy");
    }

    #[tokio::test]
    async fn launches_seed_then_joiners_and_shuts_down() {
        let dir = TempDir::new();
        let options = LaunchOptions {
            exe: fake_node(&dir),
            nodes: 3,
            workers: 2,
            http: Some("127.0.0.1:9999".parse().unwrap()),
            secret_file: Some(PathBuf::from("/tmp/s")),
            ready_timeout: LIMIT,
            data_dir: Some(PathBuf::from("/tmp/d")),
        };
        let cluster = launch_retrying_busy(&options).await;
        let names: Vec<_> = cluster.nodes().iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["node-1", "node-2", "node-3"]);
        assert_eq!(cluster.seed_url(), Some("ws://127.0.0.1:1/node-1"));
        let exits = timeout(LIMIT, cluster.shutdown(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(exits
            .iter()
            .all(|e| !e.killed && e.status.is_some_and(|s| s.success())));
        let args = std::fs::read_to_string(dir.path().join("args.log")).unwrap();
        let lines: Vec<_> = args.lines().collect();
        let threads = threads_per_node(3);
        assert_eq!(
            lines[0],
            format!("start --name node-1 --listen 127.0.0.1:0 --supervised --workers 2 --threads {threads} --http 127.0.0.1:9999 --secret-file /tmp/s --data-dir /tmp/d/node-1")
        );
        assert_eq!(
            lines[2],
            format!("start --name node-3 --listen 127.0.0.1:0 --supervised --workers 2 --threads {threads} --join ws://127.0.0.1:1/node-1 --secret-file /tmp/s --data-dir /tmp/d/node-3")
        );
    }

    #[tokio::test]
    async fn a_node_that_fails_aborts_the_launch() {
        let dir = TempDir::new();
        let options = LaunchOptions {
            exe: dir.path().join("missing-binary"),
            nodes: 2,
            workers: 1,
            http: None,
            secret_file: None,
            ready_timeout: LIMIT,
            data_dir: None,
        };
        let err = timeout(LIMIT, LocalCluster::launch(&options))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, LaunchError::Spawn { .. }), "{err}");
        let options = LaunchOptions {
            exe: PathBuf::from("false"),
            ..options
        };
        let err = timeout(LIMIT, LocalCluster::launch(&options))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, LaunchError::NotReady { .. }), "{err}");
    }
}
