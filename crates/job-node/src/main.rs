//! The `job-node` binary: run a node, submit jobs, show a cluster's status,
//! or run the local demo (the default). See `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;
use job_node::cli::{Cli, Command, DemoArgs};
use job_node::config::NodeConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    job_node::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("job-node: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A blocking read of stdin (the supervised node's parent watch) never
    // ends by itself: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("job-node: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Start(args) => job_node::node::run(NodeConfig::resolve(&args)?).await,
        Command::Submit(args) => job_node::commands::submit(args).await,
        Command::Status(args) => job_node::commands::status(args).await,
        Command::Demo(args) => job_node::demo_run::run(args).await,
        Command::Mapreduce(args) => job_node::mapreduce_cmd::run(args).await,
    }
}
