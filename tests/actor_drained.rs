//! The `drained` hook: it runs after each run of messages (at most
//! `SpawnOptions::batch` of them), so an actor can batch work across
//! messages; `Context::linger` lets a busy actor fill its run before it.

use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Msg {
    /// Wait for a permit (lets messages pile up behind it).
    Block,
    Work(u32),
}

/// Reports the size of each run to `runs` from its `drained` hook.
struct Batcher {
    gate: Arc<Semaphore>,
    run: usize,
    linger: bool,
    seen: Vec<u32>,
    runs: mpsc::UnboundedSender<(usize, Vec<u32>)>,
}

#[async_trait::async_trait]
impl Actor for Batcher {
    type Message = Msg;

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.run += 1;
        match msg {
            Msg::Block => self.gate.acquire().await?.forget(),
            Msg::Work(n) => self.seen.push(n),
        }
        if self.linger {
            ctx.linger();
        }
        Ok(())
    }

    async fn drained(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let run = std::mem::take(&mut self.run);
        let _ = self.runs.send((run, std::mem::take(&mut self.seen)));
        Ok(())
    }
}

/// What the batcher reports after each run: its length and what it saw.
type Runs = mpsc::UnboundedReceiver<(usize, Vec<u32>)>;

fn batcher(linger: bool) -> (Batcher, Arc<Semaphore>, Runs) {
    let gate = Arc::new(Semaphore::new(0));
    let (runs, rx) = mpsc::unbounded_channel();
    let actor = Batcher {
        gate: Arc::clone(&gate),
        run: 0,
        linger,
        seen: Vec::new(),
        runs,
    };
    (actor, gate, rx)
}

async fn next_run(rx: &mut Runs) -> (usize, Vec<u32>) {
    timeout(LIMIT, rx.recv()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_handled_in_runs_of_at_most_batch_messages() {
    let (actor, gate, mut runs) = batcher(false);
    let opts = SpawnOptions::default().capacity(10_000).batch(16);
    let handle = spawn_with("batcher", actor, opts).unwrap();
    handle.tell(Msg::Block).await.unwrap();
    // 1,000 messages pile up behind the blocked handler.
    for n in 0..1000 {
        handle.tell(Msg::Work(n)).await.unwrap();
    }
    gate.add_permits(1);
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    while all.len() < 1000 {
        let (size, seen) = next_run(&mut runs).await;
        sizes.push(size);
        all.extend(seen);
    }
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "every message, in order"
    );
    assert!(sizes.iter().all(|s| *s <= 16), "{sizes:?}");
    // The first run started with `Block` and whatever else the mailbox held
    // then; every later run takes a full batch of the backlog but the last.
    let full = sizes[1..sizes.len() - 1].iter().all(|s| *s == 16);
    assert!(full, "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_drains_after_every_message() {
    let (actor, _gate, mut runs) = batcher(false);
    let handle = spawn_with("idle", actor, SpawnOptions::default()).unwrap();
    for n in 0..20 {
        handle.tell(Msg::Work(n)).await.unwrap();
        // One message at a time: each is its own run.
        assert_eq!(next_run(&mut runs).await, (1, vec![n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_batch_counts_as_one() {
    let (actor, gate, mut runs) = batcher(false);
    let opts = SpawnOptions::default().batch(0);
    let handle = spawn_with("single", actor, opts).unwrap();
    handle.tell(Msg::Block).await.unwrap();
    for n in 0..10 {
        handle.tell(Msg::Work(n)).await.unwrap();
    }
    gate.add_permits(1);
    assert_eq!(next_run(&mut runs).await.0, 1, "Block alone");
    for n in 0..10 {
        assert_eq!(next_run(&mut runs).await, (1, vec![n]));
    }
}

/// On a current-thread runtime the order of tasks is fixed: a message sent
/// by a task that runs while the actor lingers joins the actor's run.
async fn runs_with_a_late_sender(linger: bool) -> Vec<usize> {
    let (actor, _gate, mut runs) = batcher(linger);
    let handle = spawn_with("linger", actor, SpawnOptions::default()).unwrap();
    handle.try_tell(Msg::Work(0)).unwrap();
    let late = handle.clone();
    tokio::spawn(async move {
        late.try_tell(Msg::Work(1)).unwrap();
    });
    let mut sizes = Vec::new();
    let mut seen = 0;
    while seen < 2 {
        let (size, items) = next_run(&mut runs).await;
        seen += items.len();
        if size > 0 {
            sizes.push(size);
        }
    }
    sizes
}

#[tokio::test(flavor = "current_thread")]
async fn linger_adds_messages_sent_meanwhile_to_the_run() {
    assert_eq!(runs_with_a_late_sender(true).await, [2]);
    assert_eq!(runs_with_a_late_sender(false).await, [1, 1]);
}
