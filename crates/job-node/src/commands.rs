//! The client commands: `submit` and `status`.

use std::io::Write as _;

use anyhow::Context as _;

use crate::cli::{ClusterArgs, StatusArgs, SubmitArgs};
use crate::http::JobSubmission;
use crate::jobs_file::read_jobs_file;
use crate::progress_bar::progress_bar;
use crate::remote::{JobReply, Session};
use crate::secret::ClusterSecret;
use crate::status_table::render_status;

/// Connects to the cluster named by `args`.
///
/// # Errors
///
/// An unreadable secret file, or the connection error.
pub(crate) async fn connect(args: &ClusterArgs) -> anyhow::Result<Session> {
    let secret = ClusterSecret::for_client(args.secret_file.as_deref())?;
    let tls = args.tls()?;
    Ok(Session::connect_with(&args.cluster, &secret, args.connect_timeout, tls.as_ref()).await?)
}

/// The jobs `submit` sends: the `--file` lines or the one `--kind` job,
/// with `--tags`, `--timeout` and `--max-attempts` applied to every job
/// (tags are added; the timeout and attempts fill in what a line leaves
/// unset).
///
/// # Errors
///
/// An unreadable or invalid jobs file.
pub(crate) fn jobs_to_submit(args: &SubmitArgs) -> anyhow::Result<Vec<JobSubmission>> {
    let mut jobs = match (&args.file, &args.kind) {
        (Some(path), _) => read_jobs_file(path)?,
        (None, Some(kind)) => vec![JobSubmission::new(
            kind.clone(),
            args.data.clone().unwrap_or_default(),
        )],
        (None, None) => anyhow::bail!("give --kind or --file"),
    };
    for job in &mut jobs {
        for tag in &args.tags {
            if !job.tags.contains(tag) {
                job.tags.push(tag.clone());
            }
        }
        if job.timeout_ms.is_none() {
            job.timeout_ms = args
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        job.max_attempts = job.max_attempts.or(args.max_attempts);
    }
    Ok(jobs)
}

/// `job-node submit`: prints one JSON line per job on stdout (its result
/// with `--wait`, else `{"id": ...}`) and refusals on stderr.
///
/// # Errors
///
/// Connection failures, and — after every line is printed — when any job
/// was refused or (with `--wait`) failed.
pub(crate) async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let jobs = jobs_to_submit(&args)?;
    let total = jobs.len();
    let session = connect(&args.cluster).await?;
    let bar = if args.file.is_some() {
        progress_bar(total as u64, "jobs")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut refused, mut failed) = (Vec::new(), 0usize);
    let wait = args.wait;
    let jobs = session
        .submit_jobs(jobs, wait, |_, job, reply| {
            let id = job.id.clone().unwrap_or_default();
            match reply {
                JobReply::Result { json, success } => {
                    failed += usize::from(!success);
                    if wait {
                        bar.suspend(|| print_line(&json));
                    }
                }
                JobReply::Refused(reason) => {
                    bar.suspend(|| eprintln!("job-node: job {id} refused: {reason}"));
                    refused.push(id);
                }
            }
            bar.inc(1);
        })
        .await?;
    bar.finish_and_clear();
    if !wait {
        for job in &jobs {
            let id = job.id.clone().unwrap_or_default();
            if !refused.contains(&id) {
                print_line(&serde_json::json!({ "id": id }).to_string());
            }
        }
    }
    if !refused.is_empty() {
        anyhow::bail!("{} of {total} jobs were refused", refused.len());
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {total} jobs failed");
    }
    Ok(())
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

/// `job-node status`: the members table and the connected node's
/// coordinator statistics, or both as JSON with `--json`.
///
/// # Errors
///
/// Connection failures and unexpected answers.
pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    let cluster = session
        .cluster(timeout)
        .await
        .context("cannot read the membership")?;
    let stats = session
        .stats(timeout)
        .await
        .context("cannot read the coordinator's statistics")?;
    if args.json {
        let both = serde_json::json!({ "cluster": cluster, "stats": stats });
        print_line(&both.to_string());
    } else {
        print!("{}", render_status(&cluster, &stats));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use clap::Parser;

    fn submit_args(args: &[&str]) -> SubmitArgs {
        let cli = crate::cli::Cli::try_parse_from(
            ["job-node", "submit", "--cluster", "ws://127.0.0.1:1"]
                .iter()
                .chain(args),
        )
        .unwrap();
        match cli.command {
            Some(crate::cli::Command::Submit(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_job_from_the_flags() {
        let jobs = jobs_to_submit(&submit_args(&[
            "--kind",
            "sleep",
            "--data",
            "5",
            "--tags",
            "gpu",
            "--timeout",
            "1.5",
        ]))
        .unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].kind.as_str(), jobs[0].data.as_str()),
            ("sleep", "5")
        );
        assert_eq!(jobs[0].tags, ["gpu"]);
        assert_eq!(jobs[0].timeout_ms, Some(1500));
    }

    #[test]
    fn file_lines_keep_their_own_settings() {
        let dir = TempDir::new();
        let path = dir.write(
            "jobs.jsonl",
            "{\"kind\":\"echo\",\"timeout_ms\":7}\n{\"kind\":\"echo\",\"tags\":[\"ssd\"]}\n",
        );
        let jobs = jobs_to_submit(&submit_args(&[
            "--file",
            path.to_str().unwrap(),
            "--tags",
            "ssd",
            "--timeout",
            "2",
            "--max-attempts",
            "4",
        ]))
        .unwrap();
        assert_eq!(jobs[0].timeout_ms, Some(7));
        assert_eq!(jobs[1].timeout_ms, Some(2000));
        assert_eq!(jobs[1].tags, ["ssd"], "no duplicate tag");
        assert!(jobs.iter().all(|j| j.max_attempts == Some(4)));
    }
}
