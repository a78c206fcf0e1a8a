//! Runs every example binary (`examples/*.rs`) and checks that it exits with
//! status 0 within a bounded time and prints its characteristic line.
//!
//! The binaries are the ones cargo builds next to this test: `cargo test`
//! builds every example into `target/<profile>/examples/` before it runs the
//! tests. When one is missing (`cargo test --test examples_run` alone builds
//! no examples), this test builds it with `cargo build --example NAME`,
//! using the cargo that runs the tests. A binary that is present is used as
//! it is: after editing an example, run the whole suite (or
//! `cargo build --examples`) so that it is rebuilt.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// Bound of one example's run (they take a few seconds in debug; the margin
/// is for a loaded 2-core machine running tests in parallel).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Serialises the builds of missing examples (one cargo at a time).
static BUILD: Mutex<()> = Mutex::new(());

/// `target/<profile>/examples`, from this test binary's path
/// (`target/<profile>/deps/examples_run-<hash>`).
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    profile_dir.join("examples")
}

/// The example binary `name`, built if missing.
fn example_binary(name: &str) -> PathBuf {
    let dir = examples_dir();
    let binary = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let _guard = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if binary.exists() {
        return binary;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "-p", "jobmesh", "--example", name]);
    if dir.parent().and_then(Path::file_name) == Some("release".as_ref()) {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name}: {status}");
    assert!(
        binary.exists(),
        "cargo built example {name}, but not at {} (a custom --target-dir or --target?)",
        binary.display()
    );
    binary
}

/// Runs example `name` to completion and checks its exit status and that
/// one line of its standard output contains `expected`.
async fn run_example(name: &str, expected: &str) {
    let binary = example_binary(name);
    let started = Instant::now();
    let child = Command::new(&binary)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A run that overruns the limit is killed when its future is dropped.
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
    let output = match tokio::time::timeout(RUN_LIMIT, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|err| panic!("wait for {name}: {err}")),
        Err(_) => panic!("example {name} did not finish within {RUN_LIMIT:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "example {name} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.lines().any(|line| line.contains(expected)),
        "example {name} printed no line containing {expected:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("example {name}: ok in {:?}", started.elapsed());
}

#[tokio::test]
async fn actor_core_basics() {
    run_example(
        "actor_core_basics",
        "supervisor gave up on supervised-summer",
    )
    .await;
}

#[tokio::test]
async fn transport_link() {
    run_example("transport_link", "node-b received 10000 envelopes").await;
}

#[tokio::test]
async fn router_nodes() {
    run_example("router_nodes", r#""correlation_id":7"#).await;
}

#[tokio::test]
async fn custom_job_kind() {
    run_example(
        "custom_job_kind",
        "2000 quotes match the direct computation",
    )
    .await;
}

#[tokio::test]
async fn custom_mapreduce() {
    run_example("custom_mapreduce", "matches the direct computation").await;
}

#[tokio::test]
async fn cluster_strategies() {
    run_example("cluster_strategies", "all 3600 jobs succeeded").await;
}

#[tokio::test]
async fn local_cluster() {
    run_example("local_cluster", "dead letter").await;
}
