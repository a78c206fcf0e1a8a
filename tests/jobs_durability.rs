//! Durability: a coordinator with a data directory journals every job
//! before acknowledging it; a coordinator restarted on the same directory
//! resumes the unfinished jobs, and each completes exactly once.

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use job_queue::{CoordinatorOptions, Job, JobId, StrategyKind};
use support::jobs::*;

fn data_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("jobs-durability-{}-{nanos}", std::process::id()))
}

/// Coordinator options with a journal in `dir`.
fn journaled(dir: &std::path::Path) -> CoordinatorOptions {
    CoordinatorOptions {
        data_dir: Some(dir.to_path_buf()),
        ..CoordinatorOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_resumes_every_unfinished_job_exactly_once() {
    let dir = data_dir();
    let options = journaled(&dir);
    // du-b is the only `slow` node, and it hangs every `stall` job.
    let mut nodes = cluster(&[("du-a", &[]), ("du-b", &["slow"])], "du-b").await;
    let first = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    let mut ids: Vec<JobId> = Vec::new();
    for i in 0..10 {
        let job = Job::new("stall", format!("{i}"))
            .with_tag("slow")
            .with_timeout(Duration::from_secs(60));
        // `submit` returns once the job is journaled.
        let pending = within(STEP, "submit", first.submit(job)).await.unwrap();
        ids.push(pending.id().clone());
    }
    within(STEP, "first coordinator stops", first.shutdown()).await;
    // The hanging node goes away; a healthy `slow` node joins.
    let b = nodes.pop().unwrap();
    within(STEP, "du-b pool stops", b.pool.shutdown()).await;
    within(STEP, "du-b stops", b.router.shutdown()).await;
    within(STEP, "du-b down", wait_down(&nodes[0].router, "du-b")).await;
    let seed = Some(nodes[0].router.url());
    let c = start_node(
        seed,
        "du-c",
        &["slow"],
        registry(""),
        Duration::from_millis(100),
    )
    .await;
    nodes.push(c);
    within(
        STEP,
        "du-c joins",
        converged(&nodes[0].router, &["du-a", "du-c"]),
    )
    .await;

    let second =
        coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    assert_eq!(second.resumed(), ids.as_slice());
    for id in &ids {
        let pending = within(STEP, "attach", second.attach(id.clone()))
            .await
            .unwrap();
        let result = within(STEP, "resumed result", pending.result())
            .await
            .unwrap();
        assert_eq!(result.outcome(), Ok("du-c"), "{result:?}");
        // Attaching again gets the same result from the job's record: the
        // job is not run again.
        let again = within(STEP, "attach again", second.attach(id.clone()))
            .await
            .unwrap();
        let same = within(STEP, "same result", again.result()).await.unwrap();
        assert_eq!(same, result);
    }
    let stats = within(STEP, "stats", second.stats()).await.unwrap();
    assert_eq!(
        (
            stats.submitted,
            stats.succeeded,
            stats.failed,
            stats.in_progress
        ),
        (10, 10, 0, 0)
    );
    // New jobs do not reuse the resumed ids, and nothing is left to resume.
    let fresh = within(STEP, "fresh job", second.run(Job::new("echo", "x")))
        .await
        .unwrap();
    assert!(!ids.contains(&fresh.id), "{} reused", fresh.id);
    within(STEP, "second coordinator stops", second.shutdown()).await;
    let third = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    assert!(third.resumed().is_empty());
    within(STEP, "third coordinator stops", third.shutdown()).await;
    stop_all(nodes).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_survive_a_restart_and_can_be_resubmitted_or_discarded_after_it() {
    let dir = data_dir();
    let options = journaled(&dir);
    let nodes = cluster(&[("dl-a", &[]), ("dl-b", &[])], "").await;
    let first = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    // `reject` fails for good at once: two dead letters, with their payloads.
    let mut ids = Vec::new();
    for payload in ["first payload", "second payload"] {
        let result = within(STEP, "rejected job", first.run(Job::new("reject", payload)))
            .await
            .unwrap();
        assert!(result.outcome().is_err(), "{result:?}");
        ids.push(result.id);
    }
    let before = within(STEP, "dead letters", first.dead_letters())
        .await
        .unwrap();
    assert_eq!(before.len(), 2);
    within(STEP, "first coordinator stops", first.shutdown()).await;

    // A new coordinator on the same directory has them: job, payload and
    // the failure of each attempt.
    let second =
        coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    let after = within(STEP, "dead letters", second.dead_letters())
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(after[0].job.data, "first payload");
    assert_eq!(after[0].failures.len(), 1);
    // Discarded and resubmitted ones are gone for good.
    assert!(within(STEP, "discard", second.discard(ids[0].clone()))
        .await
        .unwrap());
    let rerun = within(STEP, "resubmit", second.resubmit(ids[1].clone()))
        .await
        .unwrap();
    let result = within(STEP, "rerun", rerun.result()).await.unwrap();
    assert!(result.outcome().is_err(), "reject fails again: {result:?}");
    within(STEP, "second coordinator stops", second.shutdown()).await;

    let third = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    let last = within(STEP, "dead letters", third.dead_letters())
        .await
        .unwrap();
    // Only the resubmitted job's second failure is a dead letter now.
    let left: Vec<&JobId> = last.iter().map(|l| &l.job.id).collect();
    assert_eq!(left, [&ids[1]]);
    within(STEP, "third coordinator stops", third.shutdown()).await;
    stop_all(nodes).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// How many times `needle` occurs in the journal file of `dir`.
fn journal_mentions(dir: &std::path::Path, needle: &str) -> usize {
    let data = std::fs::read(dir.join("jobs.journal")).unwrap_or_default();
    data.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_job_change_is_answered_once_it_is_in_the_journal() {
    let dir = data_dir();
    let options = journaled(&dir);
    let nodes = cluster(&[("rc-a", &[])], "").await;
    let coord = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    let name = "nightly-report-7f3a";
    for round in 1..=3 {
        let spec = job_queue::RecurringJob {
            name: name.into(),
            cron: "0 0 3 * * *".into(),
            job: Job::new("echo", "report"),
        };
        within(STEP, "add", coord.add_recurring(spec))
            .await
            .unwrap();
        // Answered only after the writer thread wrote (and fsynced) it.
        assert_eq!(journal_mentions(&dir, name), 2 * round - 1);
        let removed = within(STEP, "remove", coord.remove_recurring(name))
            .await
            .unwrap();
        assert!(removed);
        assert_eq!(journal_mentions(&dir, name), 2 * round);
    }
    within(STEP, "coordinator stops", coord.shutdown()).await;
    stop_all(nodes).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Finished jobs' records at scale: 20,000 echo jobs through a journaled
/// coordinator; one restarted on the same directory holds the same record
/// for every one of them (read back from the journal, written in the
/// stored form), answers `attach` from it and runs nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_records_of_twenty_thousand_jobs_survive_a_restart() {
    const JOBS: usize = 20_000;
    let dir = data_dir();
    let options = journaled(&dir);
    let nodes = cluster(&[("fr-a", &[]), ("fr-b", &[])], "").await;
    let first = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    let mut results = Vec::with_capacity(JOBS);
    for chunk in 0..JOBS / 1000 {
        let jobs = (0..1000)
            .map(|i| Job::new("echo", format!("fr-{}", chunk * 1000 + i)))
            .collect();
        let pending = within(STEP, "submit_many", first.submit_many(jobs))
            .await
            .unwrap();
        for job in pending {
            results.push(within(STEP, "result", job.result()).await.unwrap());
        }
    }
    let ids: Vec<JobId> = results.iter().map(|r| r.id.clone()).collect();
    let mut before = Vec::with_capacity(JOBS);
    for chunk in ids.chunks(job_queue::MAX_IDS) {
        let found = within(STEP, "get", first.get(chunk.to_vec()))
            .await
            .unwrap();
        assert!(found.unknown.is_empty());
        before.extend(found.records);
    }
    within(STEP, "first coordinator stops", first.shutdown()).await;

    let second =
        coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    assert!(second.resumed().is_empty());
    let mut after = Vec::with_capacity(JOBS);
    for chunk in ids.chunks(job_queue::MAX_IDS) {
        let found = within(STEP, "get", second.get(chunk.to_vec()))
            .await
            .unwrap();
        assert!(found.unknown.is_empty(), "{} unknown", found.unknown.len());
        after.extend(found.records);
    }
    assert_eq!(after.len(), JOBS);
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(was, is);
    }
    for i in [0, JOBS / 2, JOBS - 1] {
        let pending = within(STEP, "attach", second.attach(ids[i].clone()))
            .await
            .unwrap();
        let result = within(STEP, "kept result", pending.result()).await.unwrap();
        assert_eq!(result, results[i]);
        assert_eq!(result.outcome(), Ok(format!("fr-{i}").as_str()));
    }
    let stats = within(STEP, "stats", second.stats()).await.unwrap();
    assert_eq!((stats.submitted, stats.succeeded), (0, 0));
    within(STEP, "second coordinator stops", second.shutdown()).await;
    stop_all(nodes).await;
    let _ = std::fs::remove_dir_all(dir);
}
