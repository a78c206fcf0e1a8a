//! Unit tests of the worker engine (inline module, kept in its own file).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

use super::*;
use crate::failure::HandlerError;
use crate::job::JobId;

const WAIT: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize)]
struct Input {
    n: u64,
}

fn registry() -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry
        .register("square", |ctx: JobContext| async move {
            let input: Input = ctx.json()?;
            ctx.progress(0.5, "halfway");
            Ok(format!("{}", input.n * input.n))
        })
        .register("flaky", |_ctx: JobContext| async move {
            Err::<String, _>(HandlerError::retryable("try again"))
        })
        .register("broken", |_ctx: JobContext| async move {
            Err::<String, _>(HandlerError::permanent("never works"))
        })
        .register("boom", |ctx: JobContext| async move {
            if ctx.data() == "panic" {
                panic!("handler exploded");
            }
            Ok::<_, HandlerError>("calm".to_owned())
        })
        .register("watcher", |ctx: JobContext| async move {
            ctx.progress(0.0, "started");
            ctx.cancelled().await;
            assert!(ctx.is_cancelled());
            Ok::<_, HandlerError>("saw the cancellation".to_owned())
        })
        .register("quitter", |ctx: JobContext| async move {
            // Cancelled while it runs, and done at its first poll.
            ctx.cancellation_token().cancel();
            Ok::<_, HandlerError>("done anyway".to_owned())
        })
        .register("slow", |_ctx: JobContext| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, HandlerError>("late".to_owned())
        });
    registry
}

fn engine(workers: usize) -> (WorkerEngine<u32>, mpsc::Receiver<WorkerEvent<u32>>) {
    let config = WorkerConfig {
        node: "node-w".to_owned(),
        workers,
        queue_capacity: 16,
        ..WorkerConfig::default()
    };
    WorkerEngine::start(config, Arc::new(registry())).unwrap()
}

async fn next_finished(events: &mut mpsc::Receiver<WorkerEvent<u32>>) -> (JobResult, u32) {
    loop {
        let event = timeout(WAIT, events.recv()).await.unwrap().unwrap();
        if let WorkerEvent::Finished { result, ticket, .. } = event {
            return (result, ticket);
        }
    }
}

fn job(kind: &str, data: &str, id: &str) -> Job {
    Job::new(kind, data).with_id(JobId::new(id).unwrap())
}

#[tokio::test]
async fn every_failure_is_a_result_and_the_loop_keeps_going() {
    let (engine, mut events) = engine(1);
    let cases = [
        (job("nope", "", "j1"), FailureCause::UnknownKind, true),
        (
            job("square", "not json", "j2"),
            FailureCause::BadData,
            false,
        ),
        (job("flaky", "", "j3"), FailureCause::Handler, true),
        (job("broken", "", "j4"), FailureCause::Handler, false),
        (job("boom", "panic", "j5"), FailureCause::Panic, true),
        (
            job("slow", "", "j6").with_timeout(Duration::from_millis(20)),
            FailureCause::Timeout,
            true,
        ),
    ];
    for (i, (job, cause, retryable)) in cases.into_iter().enumerate() {
        let id = job.id.clone();
        timeout(WAIT, engine.submit(job, i as u32))
            .await
            .unwrap()
            .unwrap();
        let (result, ticket) = next_finished(&mut events).await;
        assert_eq!((result.id.clone(), ticket), (id, i as u32));
        let failure = result.error.expect("an error result");
        assert_eq!(
            (failure.cause, failure.retryable),
            (cause, retryable),
            "{failure}"
        );
        assert_eq!(result.worker_node, "node-w");
        // The same single worker loop runs the next job successfully.
        timeout(WAIT, engine.submit(job_ok(i), 100))
            .await
            .unwrap()
            .unwrap();
        let (ok, _) = next_finished(&mut events).await;
        assert_eq!(ok.outcome(), Ok(format!("{}", i * i).as_str()));
    }
    assert_eq!(engine.panics(), 1);
    assert_eq!(engine.finished(), 12);
    assert_eq!(engine.workers(), 1);
    timeout(WAIT, engine.shutdown()).await.unwrap();
}

fn job_ok(n: usize) -> Job {
    Job::new("square", format!(r#"{{"n":{n}}}"#))
}

#[tokio::test]
async fn panic_message_is_reported() {
    let (engine, mut events) = engine(2);
    timeout(WAIT, engine.submit(job("boom", "panic", "p1"), 0))
        .await
        .unwrap()
        .unwrap();
    let (result, _) = next_finished(&mut events).await;
    assert!(result.error.unwrap().message.contains("handler exploded"));
    timeout(WAIT, engine.submit(job("boom", "ok", "p2"), 0))
        .await
        .unwrap()
        .unwrap();
    let (result, _) = next_finished(&mut events).await;
    assert_eq!(result.outcome(), Ok("calm"));
    assert_eq!(
        engine.restarts(),
        0,
        "a caught panic does not need a restart"
    );
}

#[tokio::test]
async fn k_loops_run_concurrently_and_report_load() {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let mut registry = HandlerRegistry::new();
    let handler_gate = gate.clone();
    registry.register("gated", move |ctx: JobContext| {
        let gate = handler_gate.clone();
        let started = started_tx.clone();
        async move {
            let _ = started.send(ctx.job().id.clone());
            let _permit = gate.acquire().await.map_err(HandlerError::permanent)?;
            Ok::<_, HandlerError>("through".to_owned())
        }
    });
    let config = WorkerConfig {
        node: "node-k".to_owned(),
        workers: 3,
        queue_capacity: 8,
        ..WorkerConfig::default()
    };
    let (engine, mut events) = WorkerEngine::<u32>::start(config, Arc::new(registry)).unwrap();
    for i in 0..5 {
        let job = job("gated", "", &format!("g{i}"));
        timeout(WAIT, engine.submit(job, i)).await.unwrap().unwrap();
    }
    for _ in 0..3 {
        timeout(WAIT, started_rx.recv()).await.unwrap().unwrap();
    }
    assert_eq!(engine.in_flight(), 3);
    assert_eq!(engine.queue_depth(), 2);
    gate.add_permits(5);
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(next_finished(&mut events).await.1);
    }
    tickets.sort_unstable();
    assert_eq!(tickets, vec![0, 1, 2, 3, 4]);
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.queue_depth(), 0);
    timeout(WAIT, engine.shutdown()).await.unwrap();
}

#[tokio::test]
async fn progress_events_carry_the_ticket() {
    let (engine, mut events) = engine(1);
    timeout(WAIT, engine.submit(job("square", r#"{"n":3}"#, "s1"), 7))
        .await
        .unwrap()
        .unwrap();
    let event = timeout(WAIT, events.recv()).await.unwrap().unwrap();
    match event {
        WorkerEvent::Progress { update, ticket } => {
            assert_eq!(ticket, 7);
            assert_eq!(update.job_id.as_str(), "s1");
            assert_eq!(update.fraction, 0.5);
            assert_eq!(update.note, "halfway");
        }
        other => panic!("expected progress, got {other:?}"),
    }
    let (result, _) = next_finished(&mut events).await;
    assert_eq!(result.outcome(), Ok("9"));
}

#[tokio::test]
async fn shutdown_drains_the_queue_and_refuses_new_jobs() {
    let (engine, mut events) = engine(1);
    for i in 0..10 {
        engine.try_submit(job_ok(i), i as u32).unwrap();
    }
    timeout(WAIT, engine.shutdown()).await.unwrap();
    let mut finished = 0;
    while let Ok(Some(event)) = timeout(WAIT, events.recv()).await {
        if matches!(event, WorkerEvent::Finished { .. }) {
            finished += 1;
        }
    }
    assert_eq!(finished, 10);
}

#[tokio::test]
async fn full_queue_hands_the_job_back() {
    let config = WorkerConfig {
        node: "n".to_owned(),
        workers: 1,
        queue_capacity: 1,
        ..WorkerConfig::default()
    };
    let (engine, _events) = WorkerEngine::<u32>::start(config, Arc::new(registry())).unwrap();
    let slow = || job("slow", "", "s").with_timeout(Duration::from_secs(30));
    // Fill the loop and the one queue slot; keep offering until refused.
    let mut refused = None;
    for i in 0..4 {
        if let Err(err) = engine.try_submit(slow(), i) {
            refused = Some(err);
            break;
        }
        tokio::task::yield_now().await;
    }
    match refused.expect("a full queue refuses") {
        TrySubmitError::Full((job, _)) => assert_eq!(job.kind, "slow"),
        other => panic!("expected Full, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_within_cancels_hung_handlers() {
    let (engine, mut events) = engine(1);
    let hung = job("slow", "", "h1").with_timeout(Duration::from_secs(60));
    timeout(WAIT, engine.submit(hung, 1))
        .await
        .unwrap()
        .unwrap();
    timeout(WAIT, engine.submit(job_ok(2), 2))
        .await
        .unwrap()
        .unwrap();
    let drained = timeout(WAIT, engine.shutdown_within(Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(!drained);
    for expected in [1, 2] {
        let (result, ticket) = next_finished(&mut events).await;
        assert_eq!(ticket, expected);
        let failure = result.error.expect("cancelled");
        assert_eq!(
            (failure.cause, failure.retryable),
            (FailureCause::NodeDown, true)
        );
    }
}

/// Panics when dropped: a handler holding one panics *outside* the
/// handler's `catch_unwind` if it is cancelled (here: by its timeout).
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("injected fault: destructor of a cancelled handler");
        }
    }
}

#[tokio::test]
async fn a_panic_outside_the_handler_catch_restarts_the_loop_and_still_answers() {
    let mut registry = registry();
    registry.register("bomb", |_ctx: JobContext| async move {
        let _bomb = PanicOnDrop;
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, HandlerError>("never".to_owned())
    });
    let config = WorkerConfig {
        node: "node-w".to_owned(),
        workers: 1,
        queue_capacity: 16,
        ..WorkerConfig::default()
    };
    let (engine, mut events) = WorkerEngine::start(config, Arc::new(registry)).unwrap();
    let bomb = job("bomb", "", "b1").with_timeout(Duration::from_millis(50));
    timeout(WAIT, engine.submit(bomb, 7))
        .await
        .unwrap()
        .unwrap();
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!(ticket, 7, "the guard answers with the job's ticket");
    let failure = result.error.expect("a failure");
    assert_eq!(
        (failure.cause, failure.retryable),
        (FailureCause::Panic, true)
    );
    assert!(failure.message.contains("crashed"), "{failure}");
    // The only loop was rebuilt by its supervisor: the next job runs.
    timeout(WAIT, engine.submit(job_ok(3), 8))
        .await
        .unwrap()
        .unwrap();
    let (ok, ticket) = next_finished(&mut events).await;
    assert_eq!((ok.outcome(), ticket), (Ok("9"), 8));
    timeout(WAIT, async {
        while engine.restarts() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the restart is counted");
    assert_eq!(engine.restarts(), 1);
    assert_eq!(engine.finished(), 2, "exactly one event per job");
    assert_eq!(engine.in_flight(), 0);
    timeout(WAIT, engine.shutdown()).await.unwrap();
}

#[tokio::test]
async fn shutdown_within_ends_a_full_queue_of_hung_jobs_and_answers_each() {
    let config = WorkerConfig {
        node: "node-w".to_owned(),
        workers: 2,
        queue_capacity: 4,
        ..WorkerConfig::default()
    };
    let (engine, mut events) = WorkerEngine::start(config, Arc::new(registry())).unwrap();
    let hung = |i: u32| job("slow", "", &format!("h{i}")).with_timeout(Duration::from_secs(60));
    // Two running, four queued: no room left for the workers' stops.
    let mut accepted = 0;
    for i in 0..6 {
        timeout(WAIT, engine.submit(hung(i), i))
            .await
            .unwrap()
            .unwrap();
        accepted += 1;
    }
    assert_eq!(engine.queue_depth() + engine.in_flight(), 6);
    let drained = timeout(WAIT, engine.shutdown_within(Duration::from_millis(50)))
        .await
        .expect("shutdown ends even though the queue was full");
    assert!(!drained);
    let mut tickets = Vec::new();
    for _ in 0..accepted {
        let (result, ticket) = next_finished(&mut events).await;
        assert_eq!(result.error.unwrap().cause, FailureCause::NodeDown);
        tickets.push(ticket);
    }
    tickets.sort_unstable();
    assert_eq!(tickets, [0, 1, 2, 3, 4, 5], "each job answered once");
}

#[tokio::test]
async fn a_queued_job_dropped_unrun_is_still_answered() {
    let (engine, mut events) = engine(1);
    // What happens to a job still in the mailbox when the pool closes it.
    let task = engine.queue().task(job_ok(4), 9);
    assert_eq!(engine.queue_depth(), 0);
    drop(task);
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!(ticket, 9);
    let failure = result.error.expect("not run");
    assert_eq!(
        (failure.cause, failure.retryable),
        (FailureCause::NodeDown, true)
    );
    assert_eq!(engine.finished(), 1);
    assert_eq!(engine.queue().jobs(), 0, "the queued count is given back");
    timeout(WAIT, engine.shutdown()).await.unwrap();
}

#[tokio::test]
async fn after_shutdown_jobs_are_handed_back_and_the_events_end() {
    let (engine, mut events) = engine(1);
    let queue = engine.queue();
    timeout(WAIT, engine.shutdown()).await.unwrap();
    // Refused after shutdown, handed back.
    match queue.try_submit(job_ok(1), 1) {
        Err(TrySubmitError::Closed((job, 1))) => assert_eq!(job.kind, "square"),
        other => panic!("expected Closed, got {other:?}"),
    }
    drop(queue);
    assert!(timeout(WAIT, events.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn cancelled_and_fenced_jobs_never_start_and_running_handlers_see_the_signal() {
    let (engine, mut events) = engine(1);
    let queue = engine.queue();
    let controls: Vec<Arc<TaskControl>> = (0..3).map(|_| Arc::default()).collect();
    let jobs = [
        job("watcher", "", "w1"),
        job("square", r#"{"n":2}"#, "q1"),
        job("square", r#"{"n":3}"#, "f1"),
    ];
    for (i, job) in jobs.into_iter().enumerate() {
        queue
            .try_submit_controlled(job, i as u32, Arc::clone(&controls[i]))
            .unwrap();
    }
    // The one worker is busy with the watcher; the others wait behind it.
    loop {
        let event = timeout(WAIT, events.recv()).await.unwrap().unwrap();
        if matches!(event, WorkerEvent::Progress { ticket: 0, .. }) {
            break;
        }
    }
    controls[1].cancel();
    controls[2].fenced.store(true, Ordering::Release);
    controls[0].cancel();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (result, ticket) = next_finished(&mut events).await;
        let failure = result.error.expect("a cancelled job fails");
        assert_eq!(failure.cause, FailureCause::Cancelled, "{failure}");
        assert!(!failure.retryable);
        seen.push((ticket, failure.message));
    }
    seen.sort();
    assert!(seen[0].1.contains("while running"), "{seen:?}");
    assert!(seen[1].1.contains("before it started"), "{seen:?}");
    assert!(controls[0].started.load(Ordering::Acquire));
    assert!(!controls[1].started.load(Ordering::Acquire));
    assert!(!controls[2].started.load(Ordering::Acquire));
    engine.shutdown().await;
}

/// A handler done at its first poll takes the worker's short way (no
/// select): a cancel that came while it ran still wins, and a job done at
/// once without controls still succeeds.
#[tokio::test]
async fn a_cancel_during_a_handlers_first_poll_wins_over_its_output() {
    let (engine, mut events) = engine(1);
    let control: Arc<TaskControl> = Arc::default();
    engine
        .queue()
        .try_submit_controlled(job("quitter", "", "c1"), 7, Arc::clone(&control))
        .unwrap();
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!(ticket, 7);
    let failure = result.error.expect("a cancelled job fails");
    assert_eq!(failure.cause, FailureCause::Cancelled, "{failure}");
    assert!(failure.message.contains("while running"), "{failure}");
    timeout(WAIT, engine.submit(job("square", r#"{"n":4}"#, "s1"), 8))
        .await
        .unwrap()
        .unwrap();
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!((ticket, result.result.as_deref()), (8, Some("16")));
    engine.shutdown().await;
}

/// A job done at its first poll, whose handler never asks for a token,
/// has none made; one whose handler waits gets one from the worker.
#[tokio::test]
async fn a_token_is_made_only_for_a_handler_that_waits_or_asks() {
    let (engine, mut events) = engine(1);
    let queue = engine.queue();
    let quick: Arc<TaskControl> = Arc::default();
    queue
        .try_submit_controlled(job("square", r#"{"n":5}"#, "t1"), 1, Arc::clone(&quick))
        .unwrap();
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!((ticket, result.result.as_deref()), (1, Some("25")));
    assert!(!quick.has_token());
    assert!(!quick.is_cancelled());

    let slow: Arc<TaskControl> = Arc::default();
    queue
        .try_submit_controlled(job("slow", "", "t2"), 2, Arc::clone(&slow))
        .unwrap();
    // Made by the worker's select, once the handler has waited.
    timeout(WAIT, async {
        while !slow.has_token() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    slow.cancel();
    let (result, ticket) = next_finished(&mut events).await;
    assert_eq!(ticket, 2);
    let failure = result.error.expect("a cancelled job fails");
    assert_eq!(failure.cause, FailureCause::Cancelled, "{failure}");
    assert!(failure.message.contains("while running"), "{failure}");
    engine.shutdown().await;
}

#[test]
fn a_token_made_after_the_cancel_is_already_cancelled() {
    let control = TaskControl::default();
    control.cancel();
    assert!(control.is_cancelled());
    assert!(!control.has_token(), "cancel makes no token");
    assert!(control.token().is_cancelled());
    // The same token every time.
    assert!(std::ptr::eq(control.token(), control.token()));
}

#[tokio::test]
async fn a_token_made_before_the_cancel_fires_at_the_cancel() {
    let control = Arc::new(TaskControl::default());
    let token = control.token().clone();
    assert!(!token.is_cancelled());
    assert!(!control.is_cancelled());
    let waiter = tokio::spawn(async move { token.cancelled().await });
    tokio::task::yield_now().await;
    control.cancel();
    timeout(WAIT, waiter).await.unwrap().unwrap();
    assert!(control.is_cancelled());
    assert!(control.token().is_cancelled());
}

#[test]
fn is_cancelled_makes_no_token_and_sees_a_cancel_through_the_token() {
    let control = TaskControl::default();
    assert!(!control.is_cancelled());
    assert!(!control.has_token());
    // A handler may cancel its own token: that cancels the job, as it did
    // when the token was the control itself.
    control.token().cancel();
    assert!(control.is_cancelled());
}

/// Cancel and the token's creation race on two threads: whichever comes
/// second, the token ends up cancelled (the fences in `TaskControl`).
#[test]
fn a_cancel_racing_the_tokens_creation_always_cancels_it() {
    const ROUNDS: usize = 20_000;
    let controls: Arc<Vec<TaskControl>> =
        Arc::new((0..ROUNDS).map(|_| TaskControl::default()).collect());
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let canceller = {
        let (controls, barrier) = (Arc::clone(&controls), Arc::clone(&barrier));
        std::thread::spawn(move || {
            for control in controls.iter() {
                barrier.wait();
                control.cancel();
            }
        })
    };
    let maker = {
        let (controls, barrier) = (Arc::clone(&controls), Arc::clone(&barrier));
        std::thread::spawn(move || {
            for control in controls.iter() {
                barrier.wait();
                let _ = control.token();
            }
        })
    };
    canceller.join().unwrap();
    maker.join().unwrap();
    for (i, control) in controls.iter().enumerate() {
        assert!(control.has_token(), "round {i}");
        assert!(control.token.get().unwrap().is_cancelled(), "round {i}");
    }
}
