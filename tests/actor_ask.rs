//! `ask`: typed replies and typed errors (timeout, actor gone, no reply,
//! full mailbox).

use std::sync::Arc;
use std::time::Duration;

use actor_core::{spawn, spawn_with, Actor, AskError, BoxError, Context, ReplyTo, SpawnOptions};
use tokio::sync::Semaphore;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(50);

enum Request {
    Double(u64, ReplyTo<u64>),
    /// Keeps the reply handle without answering.
    Hold(ReplyTo<u64>),
    /// Drops the reply handle without answering.
    Ignore(ReplyTo<u64>),
    /// Blocks the handler until a gate permit is available.
    Block,
}

struct Server {
    held: Vec<ReplyTo<u64>>,
    gate: Arc<Semaphore>,
}

impl Server {
    fn new(gate: Arc<Semaphore>) -> Self {
        Self {
            held: Vec::new(),
            gate,
        }
    }
}

#[async_trait::async_trait]
impl Actor for Server {
    type Message = Request;

    async fn handle(&mut self, msg: Request, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            Request::Double(n, reply) => {
                reply.send(n * 2);
            }
            Request::Hold(reply) => self.held.push(reply),
            Request::Ignore(reply) => drop(reply),
            Request::Block => self.gate.acquire().await?.forget(),
        }
        Ok(())
    }
}

#[tokio::test]
async fn ask_returns_the_typed_reply() {
    let server = spawn("double", Server::new(Arc::new(Semaphore::new(0))));
    for n in 0..100 {
        let reply = timeout(LIMIT, server.ask(|r| Request::Double(n, r), LIMIT))
            .await
            .unwrap();
        assert_eq!(reply, Ok(n * 2));
    }
}

#[tokio::test]
async fn ask_times_out_when_no_reply_comes() {
    let server = spawn("holder", Server::new(Arc::new(Semaphore::new(0))));
    let result = timeout(LIMIT, server.ask(Request::Hold, SHORT))
        .await
        .unwrap();
    assert_eq!(result, Err(AskError::Timeout));
    assert!(server.is_alive());
}

#[tokio::test]
async fn ask_reports_actor_gone_after_stop() {
    let server = spawn("gone", Server::new(Arc::new(Semaphore::new(0))));
    server.stop();
    timeout(LIMIT, server.wait_stopped()).await.unwrap();
    let result = timeout(LIMIT, server.ask(|r| Request::Double(1, r), LIMIT))
        .await
        .unwrap();
    assert_eq!(result, Err(AskError::ActorGone));
}

#[tokio::test]
async fn ask_reports_actor_gone_when_it_stops_with_the_request_queued() {
    let gate = Arc::new(Semaphore::new(0));
    let server = spawn("stopping", Server::new(Arc::clone(&gate)));
    timeout(LIMIT, server.tell(Request::Block))
        .await
        .unwrap()
        .unwrap();
    let asking = tokio::spawn({
        let server = server.clone();
        async move { server.ask(|r| Request::Double(2, r), LIMIT).await }
    });
    // Wait until the request is queued behind the blocked handler.
    timeout(LIMIT, async {
        while server.free_capacity() == server.max_capacity() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    server.stop();
    gate.add_permits(1);
    let result = timeout(LIMIT, asking).await.unwrap().unwrap();
    assert_eq!(result, Err(AskError::ActorGone));
}

#[tokio::test]
async fn ask_reports_no_reply_when_the_handle_is_dropped() {
    let server = spawn("ignorer", Server::new(Arc::new(Semaphore::new(0))));
    let result = timeout(LIMIT, server.ask(Request::Ignore, LIMIT))
        .await
        .unwrap();
    assert_eq!(result, Err(AskError::NoReply));
}

#[tokio::test]
async fn ask_reports_full_when_the_mailbox_stays_full() {
    let gate = Arc::new(Semaphore::new(0));
    let server = spawn_with(
        "full",
        Server::new(Arc::clone(&gate)),
        SpawnOptions::default().capacity(1),
    )
    .unwrap();
    timeout(LIMIT, server.tell(Request::Block))
        .await
        .unwrap()
        .unwrap();
    // Wait until the handler has taken `Block` (the slot is free again),
    // then fill the single slot.
    timeout(LIMIT, async {
        while server.free_capacity() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    server.try_tell(Request::Block).unwrap();
    assert_eq!(server.free_capacity(), 0);
    let result = timeout(LIMIT, server.ask(|r| Request::Double(3, r), SHORT))
        .await
        .unwrap();
    assert_eq!(result, Err(AskError::Full));
    // Once drained, asks work again.
    gate.add_permits(10);
    let result = timeout(LIMIT, server.ask(|r| Request::Double(3, r), LIMIT))
        .await
        .unwrap();
    assert_eq!(result, Ok(6));
}

#[tokio::test]
async fn late_reply_after_timeout_is_reported_to_the_actor() {
    let server = spawn("late", Server::new(Arc::new(Semaphore::new(0))));
    let (tx, rx) = tokio::sync::oneshot::channel::<ReplyTo<u64>>();
    let mut tx = Some(tx);
    // Smuggle the reply handle out to answer it after the asker gave up.
    let result = timeout(
        LIMIT,
        server.ask(
            |reply: ReplyTo<u64>| {
                let _ = tx.take().unwrap().send(reply);
                Request::Block
            },
            SHORT,
        ),
    )
    .await
    .unwrap();
    assert_eq!(result, Err(AskError::Timeout));
    let reply = timeout(LIMIT, rx).await.unwrap().unwrap();
    assert!(reply.is_closed());
    assert!(!reply.send(1));
}
