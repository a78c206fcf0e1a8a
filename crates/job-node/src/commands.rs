//! The client commands: `submit`, `status`, `get`, `watch`, `cancel` and
//! `dead`.

use std::io::Write;

use anyhow::Context as _;

use crate::cli::{ClusterArgs, DeadAction, DeadArgs, IdsArgs, StatusArgs, SubmitArgs, WatchArgs};
use crate::http::JobSubmission;
use crate::jobs_file::{check_jobs, JobLines};
use crate::progress_bar::progress_counter;
use crate::remote::{job_reply, JobReply, Session, MAX_IDS};
use crate::secret::ClusterSecret;
use crate::status_table::render_status;
use crate::submit_stream::{stream_jobs, Outcome, StreamOptions};

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

/// Applies `--tags`, `--timeout`, `--max-attempts`, `--priority`,
/// `--speculative` and `--delay` to one job (tags are added; the others fill in what a line
/// leaves unset).
fn apply_flags(args: &SubmitArgs, mut job: JobSubmission) -> JobSubmission {
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
    job.priority = job.priority.or(args.priority);
    job.speculative |= args.speculative;
    if job.delay_ms.is_none() && job.not_before_ms.is_none() {
        job.delay_ms = args
            .delay
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    job
}

/// The jobs `submit` sends, one at a time: the `--file` lines or the one
/// `--kind` job, with the flags applied ([`apply_flags`]).
///
/// # Errors
///
/// An unreadable jobs file (later lines fail as they are read).
pub(crate) fn jobs_to_submit(
    args: &SubmitArgs,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<JobSubmission>> + Send>> {
    let flags = args.clone();
    match (&args.file, &args.kind) {
        (Some(path), _) => Ok(Box::new(
            JobLines::open(path)?.map(move |job| Ok(apply_flags(&flags, job?))),
        )),
        (None, Some(kind)) => {
            let job = JobSubmission::new(kind.clone(), args.data.clone().unwrap_or_default());
            Ok(Box::new(std::iter::once(Ok(apply_flags(&flags, job)))))
        }
        (None, None) => anyhow::bail!("give --kind or --file"),
    }
}

/// Reads the whole jobs file once before anything is sent: a file with bad
/// lines is refused whole, every bad line reported on stderr (line number
/// and reason; the first [`BAD_LINES_LISTED`](crate::jobs_file::BAD_LINES_LISTED), then a count).
///
/// # Errors
///
/// An unreadable file, or bad lines ("nothing was submitted").
async fn check_file(path: std::path::PathBuf, flags: SubmitArgs) -> anyhow::Result<()> {
    let shown = path.clone();
    let found = tokio::task::spawn_blocking(move || {
        check_jobs(&path, |job| {
            crate::node::convert::job_from_submission(apply_flags(&flags, job))
                .map(drop)
                .map_err(|e| e.to_string())
        })
    })
    .await
    .context("the jobs file check stopped")??;
    if found.bad_total == 0 {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    for (line, reason) in &found.bad {
        let _ = writeln!(err, "job-node: {}:{line}: {reason}", shown.display());
    }
    if found.bad_total > found.bad.len() {
        let _ = writeln!(
            err,
            "job-node: ... and {} more bad lines",
            found.bad_total - found.bad.len()
        );
    }
    anyhow::bail!(
        "{} of {} jobs in {} are not valid; nothing was submitted",
        found.bad_total,
        found.bad_total + found.jobs,
        shown.display()
    )
}

/// A random id prefix for one run (`r<8 hex digits>`).
fn random_prefix() -> String {
    format!("r{:08x}", rand::random::<u32>())
}

/// `job-node submit`: prints one JSON line per job on stdout (its result
/// with `--wait`, else `{"id": ...}`) and refusals on stderr. Jobs stream
/// from the file with a window of unanswered ones (`--window`), in bounded
/// memory.
///
/// # Errors
///
/// Connection failures, and — after every line is printed — when any job
/// was refused or (with `--wait`) failed.
pub(crate) async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.file {
        check_file(path.clone(), args.clone()).await?;
    }
    let jobs = jobs_to_submit(&args)?;
    let secret = ClusterSecret::for_client(args.cluster.secret_file.as_deref())?;
    let ids_out: Option<Box<dyn Write + Send>> = match &args.ids_out {
        Some(path) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --ids-out {}", path.display()))?,
        )),
        None => None,
    };
    let bar = if args.file.is_some() && args.wait {
        progress_counter("results")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let opts = StreamOptions {
        window: args.window as usize,
        wait: args.wait,
        resume: args.resume,
        timeout: args.cluster.connect_timeout,
        tls: args.cluster.tls()?,
        ..StreamOptions::new(args.id_prefix.clone().unwrap_or_else(random_prefix))
    };
    let (mut done, mut refused, mut failed) = (0usize, 0usize, 0usize);
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let url = &args.cluster.cluster;
    let streamed = stream_jobs(url, &secret, jobs, ids_out, opts, |outcome| match outcome {
        Outcome::Sent(id) => {
            let _ = writeln!(out, "{}", serde_json::json!({ "id": id }));
        }
        Outcome::Result { json, success } => {
            failed += usize::from(!success);
            done += 1;
            let _ = writeln!(out, "{json}");
            if done % 4096 == 0 {
                let _ = out.flush();
            }
            bar.inc(1);
        }
        Outcome::Refused { id, reason } => {
            refused += 1;
            bar.suspend(|| eprintln!("job-node: job {id} refused: {reason}"));
        }
    })
    .await;
    out.flush().context("cannot write the results")?;
    drop(out);
    bar.finish_and_clear();
    streamed?;
    if refused > 0 {
        anyhow::bail!("{refused} jobs were refused");
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {done} jobs failed");
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

/// `job-node get`: each known job's record as one JSON line; unknown ids on
/// stderr (exit 1 if any).
///
/// # Errors
///
/// Connection failures and unexpected answers; unknown ids.
pub(crate) async fn get(args: IdsArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    let mut unknown = 0usize;
    for chunk in args.ids.chunks(MAX_IDS) {
        let found = session.get(chunk, timeout).await?;
        for record in &found.records {
            print_line(&record.to_string());
        }
        for id in &found.unknown {
            eprintln!("job-node: job {id} is unknown");
        }
        unknown += found.unknown.len();
    }
    if unknown > 0 {
        anyhow::bail!("{unknown} of {} jobs are unknown", args.ids.len());
    }
    Ok(())
}

/// `job-node cancel`: one JSON line per chunk of ids,
/// `{"cancelled":[..],"final":[..],"unknown":[..]}`; exit 1 if any is unknown.
///
/// # Errors
///
/// Connection failures and unexpected answers; unknown ids.
pub(crate) async fn cancel(args: IdsArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    let mut unknown = 0usize;
    for chunk in args.ids.chunks(MAX_IDS) {
        let answer = session
            .command(&serde_json::json!({"cmd": "cancel", "ids": chunk}), timeout)
            .await?;
        unknown += answer["unknown"].as_array().map_or(0, Vec::len);
        print_line(&answer.to_string());
    }
    if unknown > 0 {
        anyhow::bail!("{unknown} of {} jobs are unknown", args.ids.len());
    }
    Ok(())
}

/// How often `watch` asks for a running job's progress.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `job-node watch`: progress lines on stderr while the job runs (asked of
/// any node), then its result on stdout (attached at its owner); exit 1 if
/// it failed.
///
/// # Errors
///
/// Unknown job, connection failures, a failed job.
pub(crate) async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    let ids = [args.id.clone()];
    let record = lookup_one(&mut session, &args.id, timeout).await?;
    if let Some(result) = record.get("result").filter(|r| !r.is_null()) {
        return finish_watch(&result.to_string());
    }
    let owner = record["owner"].as_str().unwrap_or_default().to_owned();
    let cluster = session.cluster(timeout).await?;
    let url = cluster
        .members
        .iter()
        .find(|m| m.node == owner)
        .map(|m| m.url.clone())
        .with_context(|| format!("the owner {owner:?} of job {} is not a member", args.id))?;
    let secret = ClusterSecret::for_client(args.cluster.secret_file.as_deref())?;
    let tls = args.cluster.tls()?;
    let mut at_owner = Session::connect_with(&url, &secret, timeout, tls.as_ref()).await?;
    let (tag, attached) = at_owner.attach(&ids, timeout).await?;
    if attached.attached.is_empty() {
        anyhow::bail!("job {} is not known to its owner {owner}", args.id);
    }
    let mut shown = record.get("progress").cloned();
    show_progress(&record);
    let mut poll = tokio::time::interval(WATCH_POLL);
    let result = loop {
        tokio::select! {
            answer = at_owner.answer_to(tag, None) => break answer?,
            _ = poll.tick() => {
                let record = lookup_one(&mut session, &args.id, timeout).await?;
                if record.get("progress") != shown.as_ref() {
                    shown = record.get("progress").cloned();
                    show_progress(&record);
                }
            }
        }
    };
    match job_reply(&result) {
        JobReply::Result { json, .. } => finish_watch(&json),
        JobReply::Refused(reason) => anyhow::bail!("job {}: {reason}", args.id),
    }
}

async fn lookup_one(
    session: &mut Session,
    id: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<serde_json::Value> {
    let found = session.get(&[id.to_owned()], timeout).await?;
    found
        .records
        .into_iter()
        .next()
        .with_context(|| format!("job {id} is unknown"))
}

fn show_progress(record: &serde_json::Value) {
    let line = serde_json::json!({
        "id": record["id"],
        "state": record["state"],
        "attempt": record["attempt"],
        "progress": record.get("progress").cloned().unwrap_or(serde_json::Value::Null),
    });
    eprintln!("{line}");
}

fn finish_watch(result: &str) -> anyhow::Result<()> {
    print_line(result);
    let value: serde_json::Value = serde_json::from_str(result).unwrap_or_default();
    if value.get("error").is_some_and(|e| !e.is_null()) {
        anyhow::bail!("the job failed");
    }
    Ok(())
}

/// `job-node dead list|resubmit|discard`.
///
/// # Errors
///
/// Connection failures and refusals (an id that is not a dead letter).
pub(crate) async fn dead(args: DeadArgs) -> anyhow::Result<()> {
    let timeout = args.cluster.connect_timeout;
    let mut session = connect(&args.cluster).await?;
    match args.action {
        DeadAction::List => {
            let answer = session
                .command(&serde_json::json!({"cmd": "dead_letters"}), timeout)
                .await?;
            match answer.as_array() {
                Some(letters) => letters.iter().for_each(|l| print_line(&l.to_string())),
                None => print_line(&answer.to_string()),
            }
        }
        DeadAction::Resubmit { id } => {
            let to = format!("coordinator@{}", session.node());
            let cmd = serde_json::json!({"cmd": "resubmit", "id": id}).to_string();
            let tag = session.send(&to, &cmd).await?;
            let answer = session.answer_to(tag, None).await?;
            print_line(&answer.payload);
        }
        DeadAction::Discard { id } => {
            let answer = session
                .command(&serde_json::json!({"cmd": "discard", "id": id}), timeout)
                .await?;
            print_line(&answer.to_string());
            if answer["discarded"] != serde_json::Value::Bool(true) {
                anyhow::bail!("job {id} is not a dead letter");
            }
        }
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
        .unwrap()
        .collect::<anyhow::Result<Vec<_>>>()
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
        .unwrap()
        .collect::<anyhow::Result<Vec<_>>>()
        .unwrap();
        assert_eq!(jobs[0].timeout_ms, Some(7));
        assert_eq!(jobs[1].timeout_ms, Some(2000));
        assert_eq!(jobs[1].tags, ["ssd"], "no duplicate tag");
        assert!(jobs.iter().all(|j| j.max_attempts == Some(4)));
    }
}
