//! The binary's one entry point: runs a parsed command line.

use crate::cli::{Cli, Command, DemoArgs};
use crate::config::NodeConfig;

/// Runs what `cli` asks for (`demo` without a subcommand) to its end: a node
/// until SIGINT/SIGTERM, a submission until every result is in, ...
///
/// # Errors
///
/// Whatever stops the command, with context for the user (bad settings,
/// an unreachable cluster, a failed job, ...).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Start(args) => crate::node::run(NodeConfig::resolve(&args)?).await,
        Command::Submit(args) => crate::commands::submit(args).await,
        Command::Status(args) => crate::commands::status(args).await,
        Command::Get(args) => crate::commands::get(args).await,
        Command::Watch(args) => crate::commands::watch(args).await,
        Command::Cancel(args) => crate::commands::cancel(args).await,
        Command::Dead(args) => crate::commands::dead(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Mapreduce(args) => crate::mapreduce_cmd::run(args).await,
        Command::Bench(args) => crate::bench_cmd::run(args).await,
    }
}
