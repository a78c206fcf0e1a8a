//! `ActorRef::recipient`: a handle that accepts another message type and
//! converts it into the actor's own, on the same mailbox: order is kept
//! with direct messages, failed sends hand back the caller's own message,
//! and ask, stop and liveness work through it (also for a recipient of a
//! recipient).

use std::sync::Arc;
use std::time::Duration;

use actor_core::{
    spawn_with, Actor, ActorRef, BoxError, Context, ReplyTo, SpawnOptions, TrySendError,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

/// What arrives from the network, say.
#[derive(Debug, PartialEq)]
struct Envelope(String);

/// What a local caller sends.
#[derive(Debug)]
struct Query(ReplyTo<usize>);

/// A narrower form of `Envelope`.
#[derive(Debug, PartialEq)]
struct Tag(u32);

#[derive(Debug)]
enum Msg {
    Local(u32),
    Remote(Envelope),
    Query(Query),
    Block,
}

impl From<Envelope> for Msg {
    fn from(env: Envelope) -> Msg {
        Msg::Remote(env)
    }
}

impl From<Query> for Msg {
    fn from(query: Query) -> Msg {
        Msg::Query(query)
    }
}

impl From<Tag> for Envelope {
    fn from(tag: Tag) -> Envelope {
        Envelope(format!("tag-{}", tag.0))
    }
}

struct Mixed {
    log: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
    handled: usize,
}

#[async_trait::async_trait]
impl Actor for Mixed {
    type Message = Msg;

    async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.handled += 1;
        match msg {
            Msg::Local(n) => {
                let _ = self.log.send(format!("local-{n}"));
            }
            Msg::Remote(Envelope(text)) => {
                let _ = self.log.send(text);
            }
            Msg::Query(Query(reply)) => {
                reply.send(self.handled);
            }
            Msg::Block => self.gate.acquire().await?.forget(),
        }
        Ok(())
    }
}

fn mixed(
    capacity: usize,
) -> (
    ActorRef<Msg>,
    mpsc::UnboundedReceiver<String>,
    Arc<Semaphore>,
) {
    let (log, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let actor = Mixed {
        log,
        gate: Arc::clone(&gate),
        handled: 0,
    };
    let opts = SpawnOptions::default().capacity(capacity);
    (spawn_with("mixed", actor, opts).unwrap(), rx, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_share_the_mailbox_and_its_order() {
    let (actor, mut log, _gate) = mixed(64);
    let envelopes: ActorRef<Envelope> = actor.recipient();
    let tags: ActorRef<Tag> = envelopes.recipient();
    for n in 0..1000u32 {
        match n % 3 {
            0 => actor.tell(Msg::Local(n)).await.unwrap(),
            1 => envelopes.tell(Envelope(format!("env-{n}"))).await.unwrap(),
            _ => tags.tell(Tag(n)).await.unwrap(),
        }
    }
    for n in 0..1000u32 {
        let expected = match n % 3 {
            0 => format!("local-{n}"),
            1 => format!("env-{n}"),
            _ => format!("tag-{n}"),
        };
        assert_eq!(timeout(LIMIT, log.recv()).await.unwrap().unwrap(), expected);
    }
    assert!(envelopes.same_actor(&actor.recipient()));
    assert_eq!(envelopes.name(), "mixed");
    assert_eq!(tags.max_capacity(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sends_hand_back_the_callers_own_message() {
    let (actor, _log, gate) = mixed(2);
    let envelopes: ActorRef<Envelope> = actor.recipient();
    let tags: ActorRef<Tag> = envelopes.recipient();
    actor.tell(Msg::Block).await.unwrap();
    // Fill the mailbox behind the blocked handler.
    let mut queued = 0;
    while actor.free_capacity() > 0 {
        actor.try_tell(Msg::Local(queued)).unwrap();
        queued += 1;
    }
    assert_eq!(envelopes.free_capacity(), 0);
    match envelopes.try_tell(Envelope("x".into())) {
        Err(TrySendError::Full(env)) => assert_eq!(env, Envelope("x".into())),
        other => panic!("expected Full, got {other:?}"),
    }
    match tags.try_tell(Tag(7)) {
        Err(TrySendError::Full(tag)) => assert_eq!(tag, Tag(7)),
        other => panic!("expected Full, got {other:?}"),
    }
    // A waiting tell goes through once there is room.
    let waiting = tokio::spawn({
        let tags = tags.clone();
        async move { tags.tell(Tag(8)).await }
    });
    gate.add_permits(1);
    timeout(LIMIT, waiting).await.unwrap().unwrap().unwrap();
    actor.stop();
    timeout(LIMIT, tags.wait_stopped()).await.unwrap();
    assert!(!tags.is_alive() && !envelopes.is_alive());
    match envelopes.try_tell(Envelope("late".into())) {
        Err(TrySendError::Closed(env)) => assert_eq!(env, Envelope("late".into())),
        other => panic!("expected Closed, got {other:?}"),
    }
    let refused = tags.tell(Tag(9)).await.unwrap_err();
    assert_eq!(refused.into_inner(), Tag(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_and_stop_work_through_a_recipient() {
    let (actor, _log, _gate) = mixed(16);
    let queries: ActorRef<Query> = actor.recipient();
    actor.tell(Msg::Local(1)).await.unwrap();
    let handled = timeout(LIMIT, queries.ask(Query, LIMIT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handled, 2);
    queries.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(!actor.is_alive());
}
