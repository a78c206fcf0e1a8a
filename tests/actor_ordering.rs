//! Per-sender FIFO: with several concurrent senders and any mailbox
//! capacity, each sender's messages are handled in the order it sent them.

use std::time::Duration;

use actor_core::{spawn_with, Actor, BoxError, Context, ReplyTo, SpawnOptions};
use proptest::prelude::*;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

enum Msg {
    Item { sender: usize, seq: u32 },
    Drain(ReplyTo<Vec<(usize, u32)>>),
}

#[derive(Default)]
struct Recorder {
    seen: Vec<(usize, u32)>,
}

#[async_trait::async_trait]
impl Actor for Recorder {
    type Message = Msg;

    async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            Msg::Item { sender, seq } => self.seen.push((sender, seq)),
            Msg::Drain(reply) => {
                reply.send(std::mem::take(&mut self.seen));
            }
        }
        Ok(())
    }
}

/// Runs `senders` concurrent senders of `per_sender` messages each and
/// returns what the actor saw, in handling order.
async fn record(
    senders: usize,
    per_sender: u32,
    capacity: usize,
    use_try: bool,
) -> Vec<(usize, u32)> {
    let actor = spawn_with(
        "recorder",
        Recorder::default(),
        SpawnOptions::default().capacity(capacity),
    )
    .unwrap();
    let tasks: Vec<_> = (0..senders)
        .map(|sender| {
            let actor = actor.clone();
            tokio::spawn(async move {
                for seq in 0..per_sender {
                    let mut msg = Msg::Item { sender, seq };
                    if use_try {
                        // Spin on `try_tell`, taking the message back each time.
                        loop {
                            match actor.try_tell(msg) {
                                Ok(()) => break,
                                Err(err) => {
                                    assert!(err.is_full(), "actor must stay alive");
                                    msg = err.into_inner();
                                    tokio::task::yield_now().await;
                                }
                            }
                        }
                    } else {
                        actor.tell(msg).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(LIMIT, task).await.unwrap().unwrap();
    }
    timeout(LIMIT, actor.ask(Msg::Drain, LIMIT))
        .await
        .unwrap()
        .unwrap()
}

fn check_fifo(seen: &[(usize, u32)], senders: usize, per_sender: u32) -> Result<(), TestCaseError> {
    prop_assert_eq!(seen.len(), senders * per_sender as usize);
    let mut next = vec![0u32; senders];
    for &(sender, seq) in seen {
        prop_assert_eq!(seq, next[sender], "sender {} out of order", sender);
        next[sender] += 1;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn per_sender_fifo(senders in 1usize..6, per_sender in 1u32..300, capacity in 1usize..20, use_try: bool) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen = runtime.block_on(record(senders, per_sender, capacity, use_try));
        check_fifo(&seen, senders, per_sender)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_keep_fifo_order() {
    let seen = record(4, 20_000, 64, false).await;
    check_fifo(&seen, 4, 20_000).unwrap();
}
