//! Backpressure: a full mailbox makes `tell` wait and `try_tell` fail with
//! `Full`, handing the message back.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actor_core::{spawn_with, Actor, BoxError, Context, SpawnOptions, TrySendError};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

/// Reports each message on `entered`, then waits for a permit on `gate`.
struct Gated {
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<u32>,
}

#[async_trait::async_trait]
impl Actor for Gated {
    type Message = u32;

    async fn handle(&mut self, msg: u32, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.entered.send(msg);
        self.gate.acquire().await?.forget();
        Ok(())
    }
}

/// Polls `fut` exactly once and reports whether it is still pending.
async fn is_pending<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_pending()))
        .await
}

#[tokio::test]
async fn full_mailbox_blocks_tell_and_rejects_try_tell() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let actor = Gated {
        gate: Arc::clone(&gate),
        entered: entered_tx,
    };
    let actor = spawn_with("gated", actor, SpawnOptions::default().capacity(2)).unwrap();

    // The actor takes message 1 and blocks in its handler.
    timeout(LIMIT, actor.tell(1)).await.unwrap().unwrap();
    assert_eq!(timeout(LIMIT, entered.recv()).await.unwrap(), Some(1));

    // Two slots: both fit, the third does not.
    actor.try_tell(2).unwrap();
    actor.try_tell(3).unwrap();
    assert_eq!(actor.free_capacity(), 0);
    match actor.try_tell(4) {
        Err(TrySendError::Full(msg)) => assert_eq!(msg, 4),
        other => panic!("expected Full(4), got {other:?}"),
    }

    // `tell` waits while the mailbox is full...
    let mut blocked = Box::pin(actor.tell(4));
    assert!(
        is_pending(&mut blocked).await,
        "tell must wait on a full mailbox"
    );
    assert!(is_pending(&mut blocked).await, "still full, still waiting");

    // ...and completes once the actor drains a message.
    gate.add_permits(1);
    timeout(LIMIT, blocked).await.unwrap().unwrap();

    gate.add_permits(100);
    for expected in 2..=4 {
        assert_eq!(
            timeout(LIMIT, entered.recv()).await.unwrap(),
            Some(expected)
        );
    }
}

#[tokio::test]
async fn sends_to_a_stopped_actor_hand_the_message_back() {
    let gate = Arc::new(Semaphore::new(100));
    let (entered_tx, _entered) = mpsc::unbounded_channel();
    let actor = spawn_with(
        "stopped",
        Gated {
            gate,
            entered: entered_tx,
        },
        SpawnOptions::default(),
    )
    .unwrap();
    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(!actor.is_alive());
    match actor.try_tell(7) {
        Err(TrySendError::Closed(msg)) => assert_eq!(msg, 7),
        other => panic!("expected Closed(7), got {other:?}"),
    }
    let err = timeout(LIMIT, actor.tell(8)).await.unwrap().unwrap_err();
    assert_eq!(err.into_inner(), 8);
}

#[tokio::test]
async fn zero_capacity_is_rejected() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, _entered) = mpsc::unbounded_channel();
    let err = spawn_with(
        "zero",
        Gated {
            gate,
            entered: entered_tx,
        },
        SpawnOptions::default().capacity(0),
    )
    .unwrap_err();
    assert_eq!(err, actor_core::ActorError::InvalidCapacity);
}
