//! Supervision of the coordinator actor: a coordinator whose handler panics
//! (an injected fault, cargo feature `fault-injection`) is restarted, logs
//! why, keeps serving new jobs, and the jobs it held complete, resumed from
//! its retained state or, with a data directory, from its journal. A
//! coordinator that keeps failing past its restart budget stops, and its
//! callers get an error instead of waiting forever.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actor_core::RestartPolicy;
use job_queue::{
    CoordinatorOptions, Fault, HandlerError, HandlerRegistry, Job, JobContext, JobError,
    PendingJob, StrategyKind,
};
use support::jobs::*;
use tokio::sync::watch;

/// Gated jobs per test: more than both pools' windows (2 x 256), so some
/// wait in the coordinator's ready queue when it fails.
const JOBS: usize = 2_000;

/// Everything logged by this test binary (every test's coordinator has its
/// own node names, so each test finds its own lines).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged_lines_with(needles: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().expect("log buffer")).into_owned();
    text.lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// The test handlers plus `gated`, which returns its data once `open` is
/// true.
fn gated_registry(open: &watch::Receiver<bool>) -> HandlerRegistry {
    let mut registry = registry("");
    let open = open.clone();
    registry.register("gated", move |ctx: JobContext| {
        let mut open = open.clone();
        async move {
            let _ = open.wait_for(|open| *open).await;
            Ok::<_, HandlerError>(ctx.data().to_owned())
        }
    });
    registry
}

fn data_dir(test: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("{test}-{}-{nanos}", std::process::id()))
}

/// Submits `JOBS` gated jobs in one batch and waits until both nodes' worker
/// loops are busy with them.
async fn submit_gated(coord: &job_queue::Coordinator, nodes: &[Node]) -> Vec<PendingJob> {
    let pending = submit_gated_jobs(coord, JOBS).await;
    let busy = wait_until(STEP, || nodes.iter().all(|n| n.pool.in_flight() == 2)).await;
    assert!(busy, "the gated jobs reach both pools");
    pending
}

/// Waits for every result; each job returns its own index.
async fn expect_all_done(pending: Vec<PendingJob>) {
    for (i, job) in pending.into_iter().enumerate() {
        let result = within(Duration::from_secs(60), "gated result", job.result())
            .await
            .unwrap();
        assert_eq!(result.outcome(), Ok(i.to_string().as_str()), "{result:?}");
    }
}

/// New work after the restart: a batch of echo jobs all succeed.
async fn expect_serving(coord: &job_queue::Coordinator) {
    echo_batch(coord, "new", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_coordinator_is_restarted_and_its_jobs_in_flight_complete() {
    logs();
    let (open, gate) = watch::channel(false);
    let names: [(&str, &[&str]); 2] = [("sv-a", &[]), ("sv-b", &[])];
    let nodes = cluster_with(
        &names,
        |_| gated_registry(&gate),
        Duration::from_millis(100),
    )
    .await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let pending = submit_gated(&coord, &nodes).await;

    // The next batch of results panics the handler, as a broken invariant
    // in the core would: those results die with the failed instance.
    within(STEP, "inject", coord.inject_fault(Fault::PanicOnNextReply))
        .await
        .unwrap();
    open.send_replace(true);
    expect_all_done(pending).await;
    assert_eq!(coord.restarts(), 1);
    let restarted = logged_lines_with(&["coordinator@sv-a", "restarting", "injected fault"]);
    assert_eq!(restarted.len(), 1, "one logged restart with its reason");
    assert!(
        restarted[0].contains("panicked while handling a reply"),
        "{restarted:?}"
    );

    expect_serving(&coord).await;
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    let total = JOBS as u64 + 200;
    // Counters survive the restart; resumed jobs are not counted twice.
    assert_eq!((stats.submitted, stats.succeeded), (total, total));
    assert_eq!((stats.in_progress, stats.failed), (0, 0));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_coordinator_resumes_from_its_journal_after_a_panic() {
    logs();
    let dir = data_dir("jobs-supervision");
    let options = CoordinatorOptions {
        data_dir: Some(dir.clone()),
        ..CoordinatorOptions::default()
    };
    let (open, gate) = watch::channel(false);
    let names: [(&str, &[&str]); 2] = [("sj-a", &[]), ("sj-b", &[])];
    let nodes = cluster_with(
        &names,
        |_| gated_registry(&gate),
        Duration::from_millis(100),
    )
    .await;
    let coord = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options.clone()).await;
    let pending = submit_gated(&coord, &nodes).await;

    within(STEP, "inject", coord.inject_fault(Fault::Panic))
        .await
        .unwrap();
    // The restarted instance reopened the journal and holds every job again
    // while they are all still gated.
    let stats = within(STEP, "stats after restart", coord.stats())
        .await
        .unwrap();
    assert_eq!(coord.restarts(), 1);
    assert_eq!(stats.in_progress, JOBS as u64);
    let restarted = logged_lines_with(&["coordinator@sj-a", "restarting", "injected fault"]);
    assert_eq!(restarted.len(), 1, "one logged restart with its reason");

    open.send_replace(true);
    expect_all_done(pending).await;
    expect_serving(&coord).await;
    within(STEP, "shutdown", coord.shutdown()).await;
    // The journal agrees: nothing is left to resume.
    let again = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    assert!(again.resumed().is_empty(), "{:?}", again.resumed().len());
    finish(again, nodes).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_out_of_restarts_stops_and_its_callers_get_an_error() {
    logs();
    let (_open, gate) = watch::channel(false);
    let names: [(&str, &[&str]); 2] = [("sx-a", &[]), ("sx-b", &[])];
    let nodes = cluster_with(
        &names,
        |_| gated_registry(&gate),
        Duration::from_millis(100),
    )
    .await;
    let options = CoordinatorOptions {
        restart: RestartPolicy {
            max_restarts: 1,
            within: Duration::from_secs(3600),
        },
        ..CoordinatorOptions::default()
    };
    let coord = coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options).await;
    let pending = submit_gated(&coord, &nodes).await;
    for _ in 0..2 {
        within(STEP, "inject", coord.inject_fault(Fault::Panic))
            .await
            .unwrap();
    }
    // Never a hang: every caller learns that the coordinator is gone.
    for job in pending {
        let result = within(STEP, "result of an abandoned job", job.result()).await;
        assert!(matches!(result, Err(JobError::Stopped)), "{result:?}");
    }
    let refused = within(
        STEP,
        "submit after the end",
        coord.submit(Job::new("echo", "")),
    )
    .await;
    assert!(matches!(refused, Err(JobError::Ask(_))), "{refused:?}");
    assert_eq!(coord.restarts(), 1);
    let gave_up = logged_lines_with(&["coordinator@sx-a", "restart budget exhausted"]);
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    finish(coord, nodes).await;
}
