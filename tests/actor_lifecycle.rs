//! Lifecycle: `started` / `stopped` hooks, `ctx.stop()`, `ActorRef::stop`,
//! the context's own name and handle, and stopping once all handles drop.

use std::time::Duration;

use actor_core::{spawn, spawn_with, Actor, BoxError, Context, SpawnOptions};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Started(String),
    Handled(u32),
    Stopped(String),
}

enum Msg {
    Value(u32),
    StopAfterThis(u32),
    /// Sends `Value(n)` to itself through `ctx.myself()`.
    SelfSend(u32),
}

struct Hooks {
    events: mpsc::UnboundedSender<Event>,
    fail_start: bool,
}

#[async_trait::async_trait]
impl Actor for Hooks {
    type Message = Msg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.events.send(Event::Started(ctx.name().to_owned()));
        if self.fail_start {
            return Err("refusing to start".into());
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            Msg::Value(n) => {
                let _ = self.events.send(Event::Handled(n));
            }
            Msg::StopAfterThis(n) => {
                let _ = self.events.send(Event::Handled(n));
                ctx.stop();
                assert!(ctx.is_stopping());
            }
            Msg::SelfSend(n) => ctx
                .myself()
                .try_tell(Msg::Value(n))
                .map_err(|e| e.to_string())?,
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        let _ = self.events.send(Event::Stopped(ctx.name().to_owned()));
    }
}

fn hooks() -> (Hooks, mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = mpsc::unbounded_channel();
    (
        Hooks {
            events,
            fail_start: false,
        },
        rx,
    )
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    timeout(LIMIT, rx.recv()).await.unwrap().expect("event")
}

#[tokio::test]
async fn hooks_run_around_messages() {
    let (actor, mut events) = hooks();
    let actor = spawn("hooked", actor);
    assert_eq!(actor.name(), "hooked");
    timeout(LIMIT, actor.tell(Msg::Value(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next(&mut events).await, Event::Started("hooked".into()));
    assert_eq!(next(&mut events).await, Event::Handled(1));
    assert!(actor.is_alive());
    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert_eq!(next(&mut events).await, Event::Stopped("hooked".into()));
    assert!(!actor.is_alive());
}

#[tokio::test]
async fn ctx_stop_stops_after_the_current_message() {
    let (actor, mut events) = hooks();
    let actor = spawn_with("self-stopper", actor, SpawnOptions::default().capacity(8)).unwrap();
    // Queue everything at once: the messages behind the stop are dropped.
    actor.try_tell(Msg::Value(1)).unwrap();
    actor.try_tell(Msg::StopAfterThis(2)).unwrap();
    let _ = actor.try_tell(Msg::Value(3));
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Started("self-stopper".into())
    );
    assert_eq!(next(&mut events).await, Event::Handled(1));
    assert_eq!(next(&mut events).await, Event::Handled(2));
    assert_eq!(
        next(&mut events).await,
        Event::Stopped("self-stopper".into())
    );
    assert!(actor.try_tell(Msg::Value(4)).is_err());
}

#[tokio::test]
async fn myself_reaches_the_actor() {
    let (actor, mut events) = hooks();
    let actor = spawn("selfie", actor);
    timeout(LIMIT, actor.tell(Msg::SelfSend(9)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next(&mut events).await, Event::Started("selfie".into()));
    assert_eq!(next(&mut events).await, Event::Handled(9));
}

#[tokio::test]
async fn dropping_every_handle_stops_the_actor() {
    let (actor, mut events) = hooks();
    let actor = spawn("orphan", actor);
    timeout(LIMIT, actor.tell(Msg::Value(1)))
        .await
        .unwrap()
        .unwrap();
    drop(actor);
    assert_eq!(next(&mut events).await, Event::Started("orphan".into()));
    assert_eq!(next(&mut events).await, Event::Handled(1));
    assert_eq!(next(&mut events).await, Event::Stopped("orphan".into()));
}

#[tokio::test]
async fn failing_start_stops_an_unsupervised_actor() {
    let (mut actor, mut events) = hooks();
    actor.fail_start = true;
    let actor = spawn("no-start", actor);
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert_eq!(next(&mut events).await, Event::Started("no-start".into()));
    assert_eq!(next(&mut events).await, Event::Stopped("no-start".into()));
}

#[tokio::test]
async fn stop_drops_queued_messages() {
    let (actor, mut events) = hooks();
    let actor = spawn("dropper", actor);
    // On the current-thread runtime the actor has not run yet, so the stop
    // is seen before any message.
    actor.try_tell(Msg::Value(1)).unwrap();
    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert_eq!(next(&mut events).await, Event::Started("dropper".into()));
    assert_eq!(next(&mut events).await, Event::Stopped("dropper".into()));
}

#[tokio::test]
async fn stop_from_outside_while_idle() {
    let (actor, _events) = hooks();
    let actor = spawn("idle", actor);
    let clone = actor.clone();
    clone.stop();
    clone.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(!actor.is_alive());
}
