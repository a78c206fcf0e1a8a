//! The `job-node` binary: run a node, submit jobs, show a cluster's status,
//! or run the local demo (the default). See `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;
use job_node::Cli;

/// jemalloc (the default `jemalloc` feature) instead of the system
/// allocator: a node allocates and frees small buffers for every job, and
/// glibc's malloc was a fifth of a coordinator's CPU; with jemalloc a job
/// costs about a fifth less CPU end to end, and an idle client connection
/// the same memory (docs/performance.md, "Allocator"). Built with
/// `--no-default-features`, the binary uses the system allocator.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// With the `mimalloc` feature, mimalloc instead (it wins over `jemalloc`
/// when both are enabled, so `--features mimalloc` is enough to select it).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    job_node::init_logging();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.runtime_threads() {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("job-node: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs as a task on the runtime's threads, not on this
    // one: a reply read by a runtime thread then wakes the task where it
    // is, instead of waking this thread too (one wake-up less per answer,
    // ~10 µs of a one-job round trip; docs/performance.md, "Eighth round").
    let outcome = match runtime.block_on(runtime.spawn(job_node::run(cli))) {
        Ok(outcome) => outcome,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(anyhow::anyhow!("the command was cancelled: {err}")),
    };
    // A blocking read of stdin (the supervised node's parent watch) never
    // ends by itself: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("job-node: {}", job_node::error_text(&err));
            ExitCode::FAILURE
        }
    }
}
