//! Graceful leave in a five-node cluster: prompt, and never taken for a failure.

mod support;

use std::time::Duration;

use cluster_router::{MemberEvent, MemberStatus};
use support::router::*;
use tokio::sync::broadcast::error::TryRecvError;

/// Generous bound on `leave()`: each peer acknowledges within milliseconds
/// on loopback; the old behaviour waited for `request_timeout` (3 s here).
const LEAVE_BOUND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_returns_promptly_and_every_peer_sees_left_only() {
    let nodes = cluster(&["g-1", "g-2", "g-3", "g-4", "g-5"]).await;
    let leaver = nodes[4].node_id().clone();
    let survivors = &nodes[..4];
    let mut events: Vec<_> = survivors.iter().map(|n| n.subscribe()).collect();

    let left = tokio::time::timeout(LEAVE_BOUND, nodes[4].leave()).await;
    assert!(
        left.is_ok(),
        "leave() did not return within {LEAVE_BOUND:?}"
    );

    for (node, rx) in survivors.iter().zip(&mut events) {
        // Every event about the leaver up to its Left.
        within(STEP, "Left event", async {
            loop {
                let ev = rx.recv().await.expect("event stream open");
                if ev.member().node != leaver {
                    continue;
                }
                match ev {
                    MemberEvent::Left(_) => break,
                    MemberEvent::Down(_) | MemberEvent::Suspect(_) => {
                        panic!("{} reported the leaver as failed: {ev:?}", node.node_id())
                    }
                    _ => {}
                }
            }
        })
        .await;
        // Left is final for the incarnation: nothing about it may follow.
        loop {
            match rx.try_recv() {
                Ok(ev) if ev.member().node == leaver => {
                    panic!("{} reported the leaver after Left: {ev:?}", node.node_id())
                }
                Ok(_) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                Err(TryRecvError::Lagged(n)) => panic!("missed {n} events"),
            }
        }
        assert_eq!(status_of(node, &leaver), Some(MemberStatus::Left));
        assert_eq!(node.get_all_peers().len(), 4, "{}", node.node_id());
    }
    // The survivors still talk to each other.
    for node in survivors {
        for other in survivors {
            within(STEP, "ping", node.ping(other.node_id()))
                .await
                .expect("ping between survivors");
        }
    }
    stop_all(survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_twice_and_leave_after_shutdown_return_at_once() {
    let nodes = cluster(&["h-1", "h-2"]).await;
    within(LEAVE_BOUND, "first leave", nodes[1].leave()).await;
    within(LEAVE_BOUND, "second leave", nodes[1].leave()).await;
    within(STEP, "shutdown", nodes[0].shutdown()).await;
    within(LEAVE_BOUND, "leave after shutdown", nodes[0].leave()).await;
}
