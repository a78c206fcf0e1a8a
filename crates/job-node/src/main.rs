//! The `job-node` binary: run a node, submit jobs, show a cluster's status,
//! or run the local demo (the default). See `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;
use job_node::Cli;

/// With the `mimalloc` feature, mimalloc instead of the system allocator:
/// a node allocates and frees small buffers for every job, and glibc's
/// malloc was a fifth of a coordinator's CPU; but mimalloc holds more
/// memory per idle client connection, so it is off by default
/// (docs/performance.md).
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
    let outcome = runtime.block_on(job_node::run(cli));
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
