//! Message sources owned by an actor's context: `send_after`,
//! `run_interval` and `forward` deliver into the mailbox, end with the
//! instance (stop, failure, restart), can be cancelled, and never keep an
//! actor alive. Timer tests run on paused Tokio time.

use std::time::Duration;

use actor_core::{
    spawn, spawn_with, Actor, BoxError, ChildEvent, Context, RestartPolicy, SourceId, SpawnOptions,
    Supervisor,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Msg {
    /// A timer fired (tagged with the instance that set it).
    Tick(u32),
    /// An item of a forwarded stream.
    Item(u64),
    /// Cancel the interval.
    Cancel,
    /// Fail this instance.
    Fail,
}

/// Sets up its sources in `started` according to `plan` and reports what
/// it handles, with the (paused) time it was handled at.
struct Timed {
    instance: u32,
    plan: Plan,
    interval: Option<SourceId>,
    seen: mpsc::UnboundedSender<(u32, String, Instant)>,
    cancelled: Option<oneshot::Sender<(bool, bool)>>,
    stopped: Option<oneshot::Sender<()>>,
}

#[derive(Clone, Copy, Debug)]
enum Plan {
    Once(Duration),
    Every(Duration),
}

#[async_trait::async_trait]
impl Actor for Timed {
    type Message = Msg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let instance = self.instance;
        match self.plan {
            Plan::Once(delay) => {
                ctx.send_after(delay, Msg::Tick(instance));
            }
            Plan::Every(period) => {
                self.interval = Some(ctx.run_interval(period, move || Msg::Tick(instance)));
            }
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let label = format!("{msg:?}");
        // A tick is attributed to the instance whose timer sent it.
        let source = match msg {
            Msg::Tick(instance) => instance,
            _ => self.instance,
        };
        let _ = self.seen.send((source, label, Instant::now()));
        match msg {
            Msg::Cancel => {
                let id = self.interval.take().expect("an interval");
                let first = ctx.cancel(id);
                let second = ctx.cancel(id);
                if let Some(reply) = self.cancelled.take() {
                    let _ = reply.send((first, second));
                }
            }
            Msg::Fail => return Err("asked to fail".into()),
            Msg::Tick(_) | Msg::Item(_) => {}
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.send(());
        }
    }
}

fn timed(
    plan: Plan,
) -> (
    Timed,
    mpsc::UnboundedReceiver<(u32, String, Instant)>,
    oneshot::Receiver<()>,
) {
    let (seen, rx) = mpsc::unbounded_channel();
    let (stopped, stopped_rx) = oneshot::channel();
    let actor = Timed {
        instance: 1,
        plan,
        interval: None,
        seen,
        cancelled: None,
        stopped: Some(stopped),
    };
    (actor, rx, stopped_rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(u32, String, Instant)>) -> (u32, String, Instant) {
    timeout(Duration::from_secs(3600), rx.recv())
        .await
        .expect("a message before the (paused) deadline")
        .expect("the actor is running")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn send_after_delivers_once_after_its_delay() {
    let t0 = Instant::now();
    let (actor, mut seen, _stopped) = timed(Plan::Once(Duration::from_secs(5)));
    let handle = spawn("once", actor);
    let (_, label, at) = next(&mut seen).await;
    assert_eq!(label, "Tick(1)");
    assert_eq!(at - t0, Duration::from_secs(5));
    // Nothing else arrives, however long we wait.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(seen.try_recv().is_err());
    drop(handle);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn run_interval_ticks_every_period_until_the_actor_stops() {
    let t0 = Instant::now();
    let (actor, mut seen, stopped) = timed(Plan::Every(Duration::from_millis(250)));
    let handle = spawn("ticker", actor);
    for n in 1..=8u32 {
        let (_, label, at) = next(&mut seen).await;
        assert_eq!(label, "Tick(1)");
        assert_eq!(at - t0, Duration::from_millis(250) * n);
    }
    handle.stop();
    timeout(LIMIT, stopped).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let late: Vec<_> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
    assert!(late.len() <= 1, "at most a tick already queued: {late:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cancelled_interval_stops_ticking() {
    let (mut actor, mut seen, _stopped) = timed(Plan::Every(Duration::from_secs(1)));
    let (cancelled_tx, cancelled) = oneshot::channel();
    actor.cancelled = Some(cancelled_tx);
    let handle = spawn("cancel", actor);
    for _ in 0..3 {
        assert_eq!(next(&mut seen).await.1, "Tick(1)");
    }
    handle.tell(Msg::Cancel).await.unwrap();
    let (first, second) = timeout(LIMIT, cancelled).await.unwrap().unwrap();
    assert!(first, "the interval was running");
    assert!(!second, "cancelling twice is a no-op");
    assert_eq!(next(&mut seen).await.1, "Cancel");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(seen.try_recv().is_err(), "no tick after the cancel");
    assert!(handle.is_alive());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn sources_do_not_keep_an_actor_alive() {
    let (actor, _seen, stopped) = timed(Plan::Every(Duration::from_millis(10)));
    let handle = spawn("weak", actor);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(handle);
    // The interval holds only a weak handle: the actor stops on its own.
    timeout(Duration::from_secs(60), stopped)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_restarted_instance_keeps_no_timer_of_the_failed_one() {
    let (seen, mut rx) = mpsc::unbounded_channel();
    let mut built = 0;
    let factory = move || {
        built += 1;
        Timed {
            instance: built,
            plan: Plan::Every(Duration::from_secs(1)),
            interval: None,
            seen: seen.clone(),
            cancelled: None,
            stopped: None,
        }
    };
    let (supervisor, mut events) = Supervisor::new(RestartPolicy::default());
    let child = supervisor
        .spawn_child("restarted", factory, SpawnOptions::default())
        .unwrap();
    assert_eq!(next(&mut rx).await.1, "Tick(1)");
    child.tell(Msg::Fail).await.unwrap();
    let event = timeout(LIMIT, events.recv()).await.unwrap().unwrap();
    assert!(matches!(event, ChildEvent::Restarted { .. }), "{event:?}");
    let mut after = Vec::new();
    while after.len() < 10 {
        let (instance, label, _) = next(&mut rx).await;
        if label != "Fail" {
            after.push(instance);
        }
    }
    // At most one tick the first instance's timer had already queued, then
    // only ticks of the second instance's own timer.
    let stale = after.iter().filter(|i| **i == 1).count();
    assert!(stale <= 1, "{after:?}");
    assert!(after.iter().skip(stale).all(|i| *i == 2), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_delivers_a_whole_stream_in_order_through_a_small_mailbox() {
    const ITEMS: u64 = 50_000;

    struct Collector {
        items: mpsc::UnboundedSender<u64>,
    }

    #[async_trait::async_trait]
    impl Actor for Collector {
        type Message = Msg;

        async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
            ctx.forward(futures_util::stream::iter(0..ITEMS), Msg::Item);
            Ok(())
        }

        async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
            if let Msg::Item(n) = msg {
                let _ = self.items.send(n);
            }
            Ok(())
        }
    }

    let (items, mut rx) = mpsc::unbounded_channel();
    // A mailbox of 4: the forwarder waits for room instead of dropping.
    let opts = SpawnOptions::default().capacity(4);
    let handle = spawn_with("collector", Collector { items }, opts).unwrap();
    for expected in 0..ITEMS {
        let n = timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(n, expected);
    }
    handle.stop();
    timeout(LIMIT, handle.wait_stopped()).await.unwrap();
}
