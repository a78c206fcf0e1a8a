//! Balancing pools (`Supervisor::spawn_pool`): members share one mailbox,
//! a free member takes the next message (a blocked one holds up nobody),
//! each member is restarted on its own, and the pool stops once its last
//! member has.

use std::sync::Arc;
use std::time::Duration;

use actor_core::{Actor, BoxError, ChildEvent, Context, RestartPolicy, SpawnOptions, Supervisor};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Job {
    Work(u32),
    Block,
    Panic,
    Leave,
}

/// Reports `(member, value)` for each `Work`.
struct Member {
    index: usize,
    gate: Arc<Semaphore>,
    done: mpsc::UnboundedSender<(usize, u32)>,
}

#[async_trait::async_trait]
impl Actor for Member {
    type Message = Job;

    async fn handle(&mut self, job: Job, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match job {
            Job::Work(n) => {
                let _ = self.done.send((self.index, n));
            }
            Job::Block => self.gate.acquire().await?.forget(),
            Job::Panic => panic!("member {} exploded", self.index),
            Job::Leave => ctx.stop(),
        }
        Ok(())
    }
}

struct Fixture {
    pool: actor_core::ActorRef<Job>,
    gate: Arc<Semaphore>,
    done: mpsc::UnboundedReceiver<(usize, u32)>,
    events: mpsc::UnboundedReceiver<ChildEvent>,
}

fn pool(size: usize) -> Fixture {
    let gate = Arc::new(Semaphore::new(0));
    let (done_tx, done) = mpsc::unbounded_channel();
    let (supervisor, events) = Supervisor::new(RestartPolicy::default());
    let member_gate = Arc::clone(&gate);
    let factory = move |index| Member {
        index,
        gate: Arc::clone(&member_gate),
        done: done_tx.clone(),
    };
    let opts = SpawnOptions::default().capacity(64);
    let pool = supervisor.spawn_pool("pool", size, factory, opts).unwrap();
    Fixture {
        pool,
        gate,
        done,
        events,
    }
}

async fn next_done(f: &mut Fixture) -> (usize, u32) {
    timeout(LIMIT, f.done.recv()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_member_holds_up_nobody() {
    let mut f = pool(3);
    // Two members block; the third does all the work.
    f.pool.tell(Job::Block).await.unwrap();
    f.pool.tell(Job::Block).await.unwrap();
    for n in 0..100 {
        f.pool.tell(Job::Work(n)).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(next_done(&mut f).await);
    }
    let members: std::collections::HashSet<usize> = seen.iter().map(|(m, _)| *m).collect();
    assert_eq!(members.len(), 1, "one member was free: {members:?}");
    let mut values: Vec<u32> = seen.iter().map(|(_, n)| *n).collect();
    values.sort_unstable();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    f.gate.add_permits(2);
    assert_eq!(f.pool.max_capacity(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_is_restarted_alone() {
    let mut f = pool(2);
    f.pool.tell(Job::Block).await.unwrap();
    f.pool.tell(Job::Panic).await.unwrap();
    let event = timeout(LIMIT, f.events.recv()).await.unwrap().unwrap();
    let ChildEvent::Restarted { name, .. } = event else {
        panic!("expected a restart, got {event:?}");
    };
    assert!(name == "pool#0" || name == "pool#1", "{name}");
    // The blocked member is still blocked; the restarted one serves.
    for n in 0..10 {
        f.pool.tell(Job::Work(n)).await.unwrap();
    }
    for _ in 0..10 {
        next_done(&mut f).await;
    }
    f.gate.add_permits(1);
    f.pool.stop();
    timeout(LIMIT, f.pool.wait_stopped()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_stops_when_its_last_member_leaves() {
    let mut f = pool(3);
    let watch = f.pool.stop_watch();
    for _ in 0..2 {
        f.pool.tell(Job::Leave).await.unwrap();
    }
    // One member left: still serving.
    f.pool.tell(Job::Work(7)).await.unwrap();
    assert_eq!(next_done(&mut f).await.1, 7);
    assert!(f.pool.is_alive() && !watch.is_stopped());
    f.pool.tell(Job::Leave).await.unwrap();
    timeout(LIMIT, watch.wait()).await.unwrap();
    assert!(!f.pool.is_alive());
    assert!(
        f.pool.try_tell(Job::Work(8)).is_err(),
        "the mailbox is closed"
    );
    let mut stopped = 0;
    while let Ok(Some(event)) = timeout(LIMIT, f.events.recv()).await {
        if matches!(event, ChildEvent::Stopped { .. }) {
            stopped += 1;
        }
        if stopped == 3 {
            break;
        }
    }
    assert_eq!(stopped, 3, "each member reports its stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_drains_then_stops_the_pool() {
    let mut f = pool(2);
    let watch = f.pool.stop_watch();
    for n in 0..50 {
        f.pool.tell(Job::Work(n)).await.unwrap();
    }
    drop(f.pool);
    timeout(LIMIT, watch.wait()).await.unwrap();
    let mut count = 0;
    while f.done.try_recv().is_ok() {
        count += 1;
    }
    assert_eq!(count, 50, "queued messages are handled before the stop");
}
