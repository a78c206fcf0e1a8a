//! Supervision: failed children are rebuilt with their mailbox intact, the
//! restart budget stops a child that keeps failing, and unsupervised actors
//! stop on failure.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actor_core::{
    spawn, Actor, BoxError, ChildEvent, Context, Failure, RestartPolicy, SpawnOptions, Supervisor,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Cmd {
    Record(u32),
    Panic,
    Fail,
    Block,
}

/// Records `(instance, value)` for every `Record`; `instance` says which
/// factory call built the handling actor.
struct Worker {
    instance: u32,
    log: mpsc::UnboundedSender<(u32, u32)>,
    gate: Arc<Semaphore>,
    stopped: Option<mpsc::UnboundedSender<u32>>,
}

#[async_trait::async_trait]
impl Actor for Worker {
    type Message = Cmd;

    async fn handle(&mut self, msg: Cmd, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            Cmd::Record(value) => {
                let _ = self.log.send((self.instance, value));
            }
            Cmd::Panic => panic!("worker {} exploded", self.instance),
            Cmd::Fail => return Err(format!("worker {} failed", self.instance).into()),
            Cmd::Block => self.gate.acquire().await?.forget(),
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(stopped) = &self.stopped {
            let _ = stopped.send(self.instance);
        }
    }
}

struct Fixture {
    log: mpsc::UnboundedReceiver<(u32, u32)>,
    stopped: mpsc::UnboundedReceiver<u32>,
    gate: Arc<Semaphore>,
    factory: Box<dyn FnMut() -> Worker + Send>,
}

fn fixture() -> Fixture {
    let (log_tx, log) = mpsc::unbounded_channel();
    let (stopped_tx, stopped) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let builds = Arc::new(AtomicU32::new(0));
    let factory_gate = Arc::clone(&gate);
    let factory = Box::new(move || Worker {
        instance: builds.fetch_add(1, Ordering::SeqCst) + 1,
        log: log_tx.clone(),
        gate: Arc::clone(&factory_gate),
        stopped: Some(stopped_tx.clone()),
    });
    Fixture {
        log,
        stopped,
        gate,
        factory,
    }
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<ChildEvent>) -> ChildEvent {
    timeout(LIMIT, events.recv())
        .await
        .unwrap()
        .expect("supervisor event")
}

#[tokio::test]
async fn panicking_child_is_restarted_and_keeps_its_queue() {
    let mut fx = fixture();
    let (supervisor, mut events) = Supervisor::new(RestartPolicy::default());
    let child = supervisor
        .spawn_child("worker", fx.factory, SpawnOptions::default().capacity(128))
        .unwrap();

    // Queue a panic and 50 records behind a blocked handler.
    timeout(LIMIT, child.tell(Cmd::Block))
        .await
        .unwrap()
        .unwrap();
    timeout(LIMIT, child.tell(Cmd::Panic))
        .await
        .unwrap()
        .unwrap();
    for value in 1..=50 {
        timeout(LIMIT, child.tell(Cmd::Record(value)))
            .await
            .unwrap()
            .unwrap();
    }
    fx.gate.add_permits(1);

    match next_event(&mut events).await {
        ChildEvent::Restarted {
            name,
            cause: Failure::Panicked(message),
        } => {
            assert_eq!(name, "worker");
            assert_eq!(message, "worker 1 exploded");
        }
        other => panic!("expected a restart after a panic, got {other:?}"),
    }
    // The failed instance's `stopped` hook ran before the restart.
    assert_eq!(timeout(LIMIT, fx.stopped.recv()).await.unwrap(), Some(1));
    for value in 1..=50 {
        let entry = timeout(LIMIT, fx.log.recv()).await.unwrap().unwrap();
        assert_eq!(
            entry,
            (2, value),
            "queued messages go to the new instance, in order"
        );
    }
    assert!(child.is_alive());

    // The next message after the restart is processed too.
    timeout(LIMIT, child.tell(Cmd::Record(99)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeout(LIMIT, fx.log.recv()).await.unwrap(), Some((2, 99)));
}

#[tokio::test]
async fn erroring_child_is_restarted() {
    let mut fx = fixture();
    let (supervisor, mut events) = Supervisor::new(RestartPolicy::default());
    let child = supervisor
        .spawn_child("erring", fx.factory, SpawnOptions::default())
        .unwrap();
    timeout(LIMIT, child.tell(Cmd::Fail))
        .await
        .unwrap()
        .unwrap();
    timeout(LIMIT, child.tell(Cmd::Record(5)))
        .await
        .unwrap()
        .unwrap();
    match next_event(&mut events).await {
        ChildEvent::Restarted {
            cause: Failure::Errored(error),
            ..
        } => {
            assert_eq!(error.to_string(), "worker 1 failed");
        }
        other => panic!("expected a restart after an error, got {other:?}"),
    }
    assert_eq!(timeout(LIMIT, fx.log.recv()).await.unwrap(), Some((2, 5)));
}

#[tokio::test]
async fn exhausted_budget_stops_the_child_and_tells_the_supervisor() {
    let mut fx = fixture();
    let policy = RestartPolicy {
        max_restarts: 2,
        within: Duration::from_secs(60),
    };
    let (supervisor, mut events) = Supervisor::new(policy);
    let child = supervisor
        .spawn_child("doomed", fx.factory, SpawnOptions::default())
        .unwrap();
    for _ in 0..3 {
        timeout(LIMIT, child.tell(Cmd::Panic))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(matches!(
        next_event(&mut events).await,
        ChildEvent::Restarted { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        ChildEvent::Restarted { .. }
    ));
    match next_event(&mut events).await {
        ChildEvent::GaveUp {
            name,
            cause: Failure::Panicked(message),
        } => {
            assert_eq!(name, "doomed");
            assert_eq!(message, "worker 3 exploded");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    timeout(LIMIT, child.wait_stopped()).await.unwrap();
    assert!(!child.is_alive());
    assert!(child.try_tell(Cmd::Record(1)).is_err());
    // Every instance's `stopped` hook ran, the last one on the way out.
    for instance in 1..=3 {
        assert_eq!(
            timeout(LIMIT, fx.stopped.recv()).await.unwrap(),
            Some(instance)
        );
    }
    assert!(fx.log.try_recv().is_err());
}

#[tokio::test]
async fn normally_stopped_child_is_reported() {
    let fx = fixture();
    let (supervisor, mut events) = Supervisor::new(RestartPolicy::default());
    let child = supervisor
        .spawn_child("calm", fx.factory, SpawnOptions::default())
        .unwrap();
    child.stop();
    match next_event(&mut events).await {
        ChildEvent::Stopped { name } => assert_eq!(name, "calm"),
        other => panic!("expected Stopped, got {other:?}"),
    }
    timeout(LIMIT, child.wait_stopped()).await.unwrap();
}

#[tokio::test]
async fn panicking_factory_counts_against_the_budget() {
    let policy = RestartPolicy {
        max_restarts: 1,
        within: Duration::from_secs(60),
    };
    let (supervisor, mut events) = Supervisor::new(policy);
    let factory = || -> Worker { panic!("cannot build") };
    let child = supervisor
        .spawn_child("unbuildable", factory, SpawnOptions::default())
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        ChildEvent::Restarted { .. }
    ));
    match next_event(&mut events).await {
        ChildEvent::GaveUp {
            cause: Failure::Panicked(message),
            ..
        } => assert_eq!(message, "cannot build"),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    timeout(LIMIT, child.wait_stopped()).await.unwrap();
}

#[tokio::test]
async fn unsupervised_failing_actor_is_stopped() {
    for cmd in [Cmd::Panic, Cmd::Fail] {
        let mut fx = fixture();
        let actor = spawn("plain", (fx.factory)());
        timeout(LIMIT, actor.tell(cmd)).await.unwrap().unwrap();
        timeout(LIMIT, actor.wait_stopped()).await.unwrap();
        assert!(!actor.is_alive());
        assert_eq!(timeout(LIMIT, fx.stopped.recv()).await.unwrap(), Some(1));
        assert!(actor.try_tell(Cmd::Record(1)).is_err());
    }
}
