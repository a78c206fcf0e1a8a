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
        Command::Recurring(args) => crate::recurring_cmd::run(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Mapreduce(args) => crate::mapreduce_cmd::run(args).await,
        Command::Bench(args) => crate::bench_cmd::run(args).await,
        Command::BenchEcho { .. } => crate::bench_cmd::echo_process().await,
    }
}

/// `err` and its causes on one line, `outer: inner: root`, each cause
/// once: many error types already show their source in their own message
/// (`cannot read jobs file x: No such file or directory (os error 2)`), and
/// printing the chain as well would repeat it.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let line = cause.to_string();
        if line.is_empty() || text.contains(&line) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Shows {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Hides {
        #[source]
        source: std::io::Error,
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (os error 2)")
    }

    #[test]
    fn every_cause_is_printed_once() {
        let shows = anyhow::Error::new(Shows {
            path: "jobs.jsonl",
            source: io(),
        });
        assert_eq!(
            error_text(&shows),
            "cannot read jobs.jsonl: no such file (os error 2)"
        );
        let hides = anyhow::Error::new(Hides { source: io() }).context("node-1");
        assert_eq!(
            error_text(&hides),
            "node-1: cannot start: no such file (os error 2)"
        );
    }
}
