//! `job-node demo` from start to end: a random cluster secret in a private
//! temporary directory, [`LocalCluster::launch`], a wait for the cluster to
//! form, the [`workload`] with a progress bar, a check of every result,
//! per-node statistics, and a clean shutdown — also on Ctrl-C.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::RngCore;

use crate::cli::DemoArgs;
use crate::http::JobSubmission;
use crate::local_cluster::{LaunchOptions, LocalCluster};
use crate::progress_bar::progress_bar;
use crate::remote::{JobReply, Session};
use crate::secret::ClusterSecret;
use crate::status_table::render_status;
use crate::supervise::ChildExit;

/// How long each node may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the cluster may take to form (every node up, kinds advertised).
const FORM_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the nodes may take to drain and exit before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// Timeout of single requests (connect, membership, statistics).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A private temporary directory holding the demo's cluster secret,
/// removed on drop.
#[derive(Debug)]
struct SecretDir {
    dir: PathBuf,
    file: PathBuf,
}

impl SecretDir {
    fn create() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let dir = std::env::temp_dir().join(format!(
            "jobmesh-demo-{}-{}",
            std::process::id(),
            hex::encode(&bytes[..4])
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let guard = SecretDir {
            file: dir.join("cluster-secret"),
            dir,
        };
        restrict(&guard.dir, 0o700)?;
        std::fs::write(&guard.file, hex::encode(bytes))
            .with_context(|| format!("cannot write {}", guard.file.display()))?;
        restrict(&guard.file, 0o600)?;
        Ok(guard)
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the workload produced.
#[derive(Debug, Default)]
struct Tally {
    succeeded: usize,
    failed: usize,
    wrong: usize,
    refused: usize,
}

/// Runs the demo.
///
/// # Errors
///
/// A node that does not come up, a cluster that does not form, a lost
/// connection, wrong results, or Ctrl-C.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let secret_dir = SecretDir::create()?;
    let secret = ClusterSecret::from_file(&secret_dir.file)?;
    let options = LaunchOptions {
        exe: std::env::current_exe().context("cannot find the job-node executable")?,
        nodes: args.nodes,
        workers: args.workers,
        http: match (args.http, args.dashboard) {
            (None, true) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            (http, _) => http,
        },
        secret_file: Some(secret_dir.file.clone()),
        ready_timeout: READY_TIMEOUT,
        data_dir: None,
    };
    println!(
        "jobmesh demo: starting {} node processes with {} workers each (random cluster secret)",
        args.nodes, args.workers
    );
    let cluster = tokio::select! {
        launched = LocalCluster::launch(&options) => launched?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while starting the nodes"),
    };
    for (i, node) in cluster.nodes().iter().enumerate() {
        let mut line = format!("  {}  {}", node.node, node.url);
        if let Some(http) = node.http {
            let _ = write!(line, "  http://{http}");
        }
        if i == 0 {
            line.push_str("  (seed)");
        }
        println!("{line}");
    }
    let outcome = tokio::select! {
        outcome = run_workload(&cluster, &secret, &args) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    let outcome = match outcome {
        Some(outcome) if args.dashboard => keep_up_for_the_dashboard(&cluster, outcome).await,
        other => other,
    };
    if outcome.is_none() {
        println!("interrupted: stopping the nodes");
    }
    let exits = cluster.shutdown(SHUTDOWN_GRACE).await;
    println!("{}", describe_exits(&exits));
    drop(secret_dir);
    match outcome {
        None => anyhow::bail!("interrupted"),
        Some(outcome) => outcome,
    }
}

/// `--dashboard`: prints the dashboard's URL and keeps the cluster up until
/// Ctrl-C; the run's outcome stands (`None` if there is no dashboard).
async fn keep_up_for_the_dashboard(
    cluster: &LocalCluster,
    outcome: anyhow::Result<()>,
) -> Option<anyhow::Result<()>> {
    if let Err(err) = &outcome {
        println!("the run failed ({err:#}); the cluster stays up to look into it");
    }
    let Some(http) = cluster.nodes().first().and_then(|node| node.http) else {
        println!("the first node reported no HTTP address: no dashboard");
        return Some(outcome);
    };
    println!("\ndashboard: http://{http}/  (the cluster stays up; press Ctrl-C to stop it)");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping the nodes");
    Some(outcome)
}

async fn run_workload(
    cluster: &LocalCluster,
    secret: &ClusterSecret,
    args: &DemoArgs,
) -> anyhow::Result<()> {
    let seed = cluster.seed_url().context("the cluster has no nodes")?;
    let mut status = Session::connect(seed, secret, REQUEST_TIMEOUT).await?;
    wait_until_formed(&mut status, usize::from(args.nodes)).await?;
    println!(
        "cluster formed: {} members up; running {} jobs through coordinator@{} \
         (60% sha256 x1000 rounds, 30% echo, 10% sleep 5-20 ms)",
        args.nodes,
        args.jobs,
        status.node()
    );
    let jobs = workload(args.jobs);
    let bar = progress_bar(jobs.len() as u64, "jobs");
    let mut tally = Tally::default();
    let started = Instant::now();
    let submitter = Session::connect(seed, secret, REQUEST_TIMEOUT).await?;
    submitter
        .submit_jobs(jobs, true, |_, job, reply| {
            tally.record(job, &reply);
            bar.inc(1);
        })
        .await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    println!(
        "{} jobs in {:.2} s ({:.0} jobs/s): {} succeeded, {} failed, {} refused, {} wrong results",
        args.jobs,
        elapsed.as_secs_f64(),
        f64::from(args.jobs) / elapsed.as_secs_f64().max(1e-9),
        tally.succeeded,
        tally.failed,
        tally.refused,
        tally.wrong
    );
    let cluster_view = settled_view(&mut status).await?;
    let stats = status.stats(REQUEST_TIMEOUT).await?;
    println!("\n{}", render_status(&cluster_view, &stats));
    if tally.failed + tally.refused + tally.wrong > 0 {
        anyhow::bail!(
            "{} jobs failed, {} were refused, {} gave wrong results",
            tally.failed,
            tally.refused,
            tally.wrong
        );
    }
    Ok(())
}

/// Polls the membership until `nodes` members are up and serve the
/// built-in kinds.
async fn wait_until_formed(session: &mut Session, nodes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let view = session.cluster(REQUEST_TIMEOUT).await?;
        let ready = view
            .members
            .iter()
            .filter(|m| m.status == "up" && m.tags.iter().any(|t| t == "kind:sha256"))
            .count();
        if ready >= nodes {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the cluster did not form within {FORM_TIMEOUT:?}: {ready} of {nodes} nodes ready"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The membership once every node's gossiped load shows it idle (the
/// load is published twice a second), or after two seconds regardless.
async fn settled_view(session: &mut Session) -> anyhow::Result<crate::http::ClusterView> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let view = session.cluster(REQUEST_TIMEOUT).await?;
        let idle = view
            .members
            .iter()
            .all(|m| m.load.in_flight == 0 && m.load.queue_depth == 0);
        if idle || Instant::now() >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Tally {
    fn record(&mut self, job: &JobSubmission, reply: &JobReply) {
        match reply {
            JobReply::Refused(_) => self.refused += 1,
            JobReply::Result { success: false, .. } => self.failed += 1,
            JobReply::Result { json, .. } => {
                self.succeeded += 1;
                if !result_is_right(job, json) {
                    self.wrong += 1;
                }
            }
        }
    }
}

/// Checks a workload result: echo and sleep give their data back, sha256 a
/// 64-digit lowercase hex digest.
fn result_is_right(job: &JobSubmission, json: &str) -> bool {
    let result = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("result").and_then(|r| r.as_str()).map(str::to_owned));
    let Some(result) = result else {
        return false;
    };
    match job.kind.as_str() {
        "echo" | "sleep" => result == job.data,
        "sha256" => {
            result.len() == 64
                && result
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => false,
    }
}

fn describe_exits(exits: &[ChildExit]) -> String {
    let parts: Vec<String> = exits
        .iter()
        .map(|exit| {
            let how = match (&exit.status, exit.killed) {
                (_, true) => "killed after the grace period".to_owned(),
                (Some(status), false) => match status.code() {
                    Some(code) => format!("exited {code}"),
                    None => format!("ended by {status}"),
                },
                (None, false) => "ended (status unknown)".to_owned(),
            };
            format!("{} {how}", exit.label)
        })
        .collect();
    format!("nodes stopped: {}", parts.join(", "))
}

/// The demo workload: `jobs` jobs, 60 % `sha256` (1,000 rounds), 30 %
/// `echo`, 10 % `sleep` (5..=20 ms), with ids `demo-<n>`.
pub(crate) fn workload(jobs: u32) -> Vec<JobSubmission> {
    (0..jobs)
        .map(|n| {
            let mut job = match n % 10 {
                0..=5 => JobSubmission::new(
                    "sha256",
                    serde_json::json!({ "input": format!("demo-{n}"), "rounds": 1000 }).to_string(),
                ),
                6..=8 => JobSubmission::new("echo", format!("hello {n}")),
                _ => JobSubmission::new("sleep", (5 + n % 16).to_string()),
            };
            job.id = Some(format!("demo-{n}"));
            job
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_checked_per_kind() {
        let echo = JobSubmission::new("echo", "hello 7");
        assert!(result_is_right(&echo, r#"{"id":"d","result":"hello 7"}"#));
        assert!(!result_is_right(&echo, r#"{"id":"d","result":"hello 8"}"#));
        let sha = JobSubmission::new("sha256", "{}");
        let digest = format!(r#"{{"result":"{}"}}"#, "ab".repeat(32));
        assert!(result_is_right(&sha, &digest));
        assert!(!result_is_right(&sha, r#"{"result":"XYZ"}"#));
        assert!(!result_is_right(&sha, "not json"));
    }

    #[test]
    fn the_secret_directory_is_private_and_removed() {
        let secret = SecretDir::create().unwrap();
        let text = std::fs::read_to_string(&secret.file).unwrap();
        assert_eq!(text.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret.file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let dir = secret.dir.clone();
        drop(secret);
        assert!(!dir.exists());
    }

    #[test]
    fn workload_mix() {
        let jobs = workload(100);
        assert_eq!(jobs.len(), 100);
        let count = |kind: &str| jobs.iter().filter(|j| j.kind == kind).count();
        assert_eq!(
            (count("sha256"), count("echo"), count("sleep")),
            (60, 30, 10)
        );
        assert_eq!(jobs[42].id.as_deref(), Some("demo-42"));
        assert!(jobs.iter().filter(|j| j.kind == "sleep").all(|j| {
            let ms: u64 = j.data.parse().unwrap();
            (5..=20).contains(&ms)
        }));
    }
}
