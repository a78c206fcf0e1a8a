//! The edge of the job queue, in process: records found from any
//! coordinator, cancellation that reaches the running handler, idempotent
//! submission, and fencing of a restarted coordinator's old work.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use job_queue::{
    CoordinatorOptions, FailureCause, HandlerError, HandlerRegistry, Job, JobContext, JobId,
    JobState, StrategyKind, WorkerPoolConfig,
};
use support::jobs::*;

/// Counts of what the `count` and `hold` handlers saw.
#[derive(Default)]
struct Seen {
    counted: AtomicUsize,
    cancelled: AtomicUsize,
}

/// `echo`, plus on the worker node: `count` (counts its runs) and `hold`
/// (waits for its cancellation, or returns after `data` ms).
fn registry_with(seen: Option<Arc<Seen>>) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry.register("echo", |ctx: JobContext| async move {
        Ok::<_, HandlerError>(ctx.data().to_owned())
    });
    let Some(seen) = seen else {
        return registry;
    };
    let counter = Arc::clone(&seen);
    registry.register("count", move |ctx: JobContext| {
        let seen = Arc::clone(&counter);
        async move {
            seen.counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(ctx.data().to_owned())
        }
    });
    registry.register("hold", move |ctx: JobContext| {
        let seen = Arc::clone(&seen);
        async move {
            let ms: u64 = ctx.data().parse().unwrap_or(60_000);
            tokio::select! {
                () = ctx.cancelled() => {
                    seen.cancelled.fetch_add(1, Ordering::SeqCst);
                    Err(HandlerError::permanent("stopped"))
                }
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok("held".to_owned()),
            }
        }
    });
    registry
}

fn pool(workers: usize) -> WorkerPoolConfig {
    WorkerPoolConfig {
        workers,
        queue_capacity: 256,
        load_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(200),
        ..WorkerPoolConfig::default()
    }
}

fn id(s: &str) -> JobId {
    JobId::new(s).unwrap()
}

fn data_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("jobs-edge-{tag}-{}-{nanos}", std::process::id()))
}

/// Node `<prefix>-a` (no pool counting) and `<prefix>-b` with `workers`
/// worker loops counting its `count` jobs, converged.
async fn two_nodes(prefix: &str, workers: usize) -> (Node, Node, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (name_a, name_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let a = start_node(
        None,
        &name_a,
        &[],
        registry_with(None),
        Duration::from_millis(100),
    )
    .await;
    let seed = Some(a.router.url());
    let b = start_node_with(
        seed,
        &name_b,
        &[],
        registry_with(Some(seen.clone())),
        pool(workers),
    )
    .await;
    within(STEP, "converge", converged(&a.router, &[&name_a, &name_b])).await;
    (a, b, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_found_and_jobs_cancelled_from_another_coordinator() {
    let (a, b, seen) = two_nodes("ed", 2).await;
    let coord_a = coordinator(&a.router, StrategyKind::RoundRobin).await;
    let coord_b = coordinator(&b.router, StrategyKind::RoundRobin).await;
    // Owned by b's coordinator, asked for at a's.
    let job = Job::new("hold", "60000").with_id(id("far-1"));
    let pending = within(STEP, "submit", coord_b.submit(job)).await.unwrap();
    let running = async {
        loop {
            let found = coord_a.get(vec![id("far-1")]).await.unwrap();
            if found.records.first().map(|r| r.state) == Some(JobState::Running) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let found = within(STEP, "record running", running).await;
    let record = &found.records[0];
    assert_eq!((record.owner.as_str(), record.attempt), ("ed-b", 1));
    assert_eq!(record.attempts[0].node, "ed-b");
    let unknown = coord_a.get(vec![id("nobody-1")]).await.unwrap();
    assert_eq!(unknown.unknown, [id("nobody-1")]);
    // Cancelled from a: the running handler sees it, the waiter gets it once.
    let report = within(
        STEP,
        "cancel",
        coord_a.cancel(vec![id("far-1"), id("nobody-1")]),
    )
    .await
    .unwrap();
    assert_eq!(report.cancelled, [id("far-1")]);
    assert_eq!(report.unknown, [id("nobody-1")]);
    let result = within(STEP, "result", pending.result()).await.unwrap();
    assert_eq!(result.error.unwrap().cause, FailureCause::Cancelled);
    let saw = wait_until(STEP, || seen.cancelled.load(Ordering::SeqCst) == 1).await;
    assert!(saw, "the handler saw the cancellation");
    let again = coord_a.cancel(vec![id("far-1")]).await.unwrap();
    assert_eq!(again.already_final, [id("far-1")]);
    let record = &coord_a.get(vec![id("far-1")]).await.unwrap().records[0];
    assert_eq!(record.state, JobState::Cancelled);
    within(STEP, "a stops", coord_a.shutdown()).await;
    finish(coord_b, vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_id_is_not_run_again_and_a_rerun_is_explicit() {
    let seen = Arc::new(Seen::default());
    let a = start_node_with(
        None,
        "id-a",
        &[],
        registry_with(Some(seen.clone())),
        pool(2),
    )
    .await;
    within(STEP, "converge", converged(&a.router, &["id-a"])).await;
    let coord = coordinator(&a.router, StrategyKind::RoundRobin).await;
    let job = || Job::new("count", "x").with_id(id("once-1"));
    let first = within(STEP, "run", coord.run(job())).await.unwrap();
    let second = within(STEP, "run again", coord.run(job())).await.unwrap();
    assert_eq!(first, second, "the same job's result");
    // A batch mixing a known id and new ones runs only the new ones.
    let batch = vec![
        job(),
        Job::new("count", "y").with_id(id("once-2")),
        Job::new("count", "z"),
    ];
    let pending = within(STEP, "batch", coord.submit_many(batch))
        .await
        .unwrap();
    for p in pending {
        within(STEP, "batch result", p.result()).await.unwrap();
    }
    assert_eq!(seen.counted.load(Ordering::SeqCst), 3);
    let rerun = within(STEP, "rerun", coord.rerun(job())).await.unwrap();
    within(STEP, "rerun result", rerun.result()).await.unwrap();
    assert_eq!(seen.counted.load(Ordering::SeqCst), 4);
    let record = &coord.get(vec![id("once-1")]).await.unwrap().records[0];
    assert_eq!((record.state, record.attempt), (JobState::Succeeded, 1));
    // Any known job can be attached to; its result comes at once.
    let attached = within(STEP, "attach", coord.attach(id("once-2")))
        .await
        .unwrap();
    let result = within(STEP, "attached result", attached.result())
        .await
        .unwrap();
    assert_eq!(result.result.as_deref(), Some("y"));
    assert!(coord.attach(id("nobody")).await.is_err());
    finish(coord, vec![a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_fences_its_old_queued_work_and_keeps_its_records() {
    let dir = data_dir("fence");
    let mut options = CoordinatorOptions {
        data_dir: Some(dir.clone()),
        ..CoordinatorOptions::default()
    };
    // Fixed windows: the jobs must queue on the pool, not in the coordinator.
    options.core.queue_target = None;
    // One worker on b: the first `hold` keeps the others queued there.
    let (a, b, seen) = two_nodes("fe", 1).await;
    let first = coordinator_with(&a.router, StrategyKind::RoundRobin, options.clone()).await;
    let done = Job::new("count", "early").with_id(id("fe-done"));
    within(STEP, "early job", first.run(done)).await.unwrap();
    let cancelled = Job::new("hold", "60000").with_id(id("fe-cancelled"));
    first.submit(cancelled).await.unwrap();
    first.cancel(vec![id("fe-cancelled")]).await.unwrap();
    let hold = Job::new("hold", "1500")
        .with_id(id("fe-hold"))
        .with_timeout(Duration::from_secs(30));
    first.submit(hold).await.unwrap();
    for i in 0..5 {
        let job = Job::new("count", format!("{i}"))
            .with_id(id(&format!("fe-{i}")))
            .with_timeout(Duration::from_secs(30));
        first.submit(job).await.unwrap();
    }
    let queued = wait_until(STEP, || b.pool.queue_depth() == 5).await;
    assert!(queued, "five jobs wait behind the hold on fe-b");
    within(STEP, "first stops", first.shutdown()).await;
    let second = coordinator_with(&a.router, StrategyKind::RoundRobin, options).await;
    // The old incarnation's queued jobs are dropped on fe-b, so each job
    // runs once: 1 early + 5 resumed.
    for i in 0..5 {
        let pending = within(STEP, "attach", second.attach(id(&format!("fe-{i}"))))
            .await
            .unwrap();
        within(STEP, "resumed result", pending.result())
            .await
            .unwrap();
    }
    assert_eq!(seen.counted.load(Ordering::SeqCst), 6);
    assert_eq!(b.pool.fenced(), 5);
    // The old hold's late result was dropped and counted.
    let late = async {
        while second.stats().await.unwrap().late_results == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    within(STEP, "late result counted", late).await;
    // Finished records and the cancellation survived the restart.
    let found = second
        .get(vec![id("fe-done"), id("fe-cancelled")])
        .await
        .unwrap();
    let states: Vec<JobState> = found.records.iter().map(|r| r.state).collect();
    assert_eq!(states, [JobState::Succeeded, JobState::Cancelled]);
    let again = within(
        STEP,
        "resubmit finished",
        second.run(Job::new("count", "early").with_id(id("fe-done"))),
    )
    .await
    .unwrap();
    assert_eq!(again.result.as_deref(), Some("early"));
    assert_eq!(seen.counted.load(Ordering::SeqCst), 6, "nothing ran twice");
    finish(second, vec![a, b]).await;
    let _ = std::fs::remove_dir_all(&dir);
}
