//! `job-node recurring add|list|remove`: recurring jobs (cron expressions,
//! seconds resolution, UTC) kept by the connected node's coordinator.

use std::io::Write;

use clap::{Args, Subcommand};

use crate::cli::ClusterArgs;
use crate::commands::connect;

/// `job-node recurring`.
#[derive(Debug, Clone, Args, PartialEq)]
pub(crate) struct RecurringArgs {
    /// The cluster to ask (the connected node's coordinator keeps them).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: RecurringAction,
}

/// `job-node recurring add|list|remove`.
#[derive(Debug, Clone, Subcommand, PartialEq)]
pub(crate) enum RecurringAction {
    /// Add (or replace, by name) a recurring job; prints its next fire time.
    Add {
        /// Its name (1 to 48 of A-Z a-z 0-9 _ . -); fired jobs get the id
        /// `<name>-<fire unix ms>`.
        #[arg(long)]
        name: String,
        /// Cron expression, seconds first, UTC: `sec min hour day month
        /// weekday [year]`, e.g. "*/10 * * * * *" (every 10 s).
        #[arg(long)]
        cron: String,
        /// Job kind.
        #[arg(long)]
        kind: String,
        /// Job data (default empty).
        #[arg(long, default_value = "")]
        data: String,
        /// Priority of the fired jobs.
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
    },
    /// Print the recurring jobs as JSON lines (with `next_ms`).
    List,
    /// Remove a recurring job (jobs it already fired go on).
    Remove {
        /// Its name.
        name: String,
    },
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

/// Runs `job-node recurring`.
///
/// # Errors
///
/// Connection failures and refusals (a bad expression, name or job).
pub(crate) async fn run(args: RecurringArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    let removing = match &args.action {
        RecurringAction::Remove { name } => Some(name.clone()),
        _ => None,
    };
    let command = match args.action {
        RecurringAction::Add {
            name,
            cron,
            kind,
            data,
            priority,
        } => {
            let mut job = serde_json::json!({"kind": kind, "data": data});
            if let Some(priority) = priority {
                job["priority"] = priority.into();
            }
            serde_json::json!({"cmd": "recurring_add",
                "recurring": {"name": name, "cron": cron, "job": job}})
        }
        RecurringAction::List => serde_json::json!({"cmd": "recurring_list"}),
        RecurringAction::Remove { name } => {
            serde_json::json!({"cmd": "recurring_remove", "name": name})
        }
    };
    let answer = session.command(&command, timeout).await?;
    match answer.as_array() {
        Some(list) => list.iter().for_each(|r| print_line(&r.to_string())),
        None => print_line(&answer.to_string()),
    }
    if let Some(name) = removing {
        if answer["removed"] != serde_json::Value::Bool(true) {
            anyhow::bail!("no recurring job named {name}");
        }
    }
    Ok(())
}
