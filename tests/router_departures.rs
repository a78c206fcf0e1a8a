//! A client's departure is announced to the node's subscribers (the
//! worker pool: its external workers) only after everything the client
//! sent is in its actors' mailboxes, including envelopes that met a full
//! mailbox and wait in the router's backlog: a worker's last results must
//! not be overtaken by its hang-up.

mod support;

use std::sync::Arc;

use actor_core::{spawn_with, SpawnOptions};
use serde_json::json;
use support::router::*;
use support::ws::{connect_bearer, send_json, welcome};
use tokio::sync::{mpsc, Semaphore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departure_waits_for_the_clients_envelopes_in_the_backlog() {
    const SENT: usize = 50;
    // One in `handle`, two in the mailbox, one being told by the drainer.
    const IN_FLIGHT: usize = 4;
    let nodes = cluster(&["d-a"]).await;
    let router = &nodes[0];
    let gate = Arc::new(Semaphore::new(0));
    let (out, mut handled) = mpsc::unbounded_channel();
    let actor = Gated {
        gate: gate.clone(),
        out,
    };
    let options = SpawnOptions::default().capacity(2);
    router
        .register_client_facing("gated", spawn_with("gated", actor, options).unwrap())
        .unwrap();
    let mut departures = router.subscribe_client_departures();

    let mut ws = connect_bearer(STEP, &router.url(), SECRET).await;
    let me = welcome(STEP, &mut ws, "d-a").await;
    for n in 0..SENT {
        send_json(
            STEP,
            &mut ws,
            &json!({"to": "gated@d-a", "id": n + 1, "payload": n}),
        )
        .await;
    }
    within(STEP, "close", ws.close(None)).await.unwrap();

    // Let the actor take one envelope at a time; whenever the departure
    // shows up, every envelope must have reached the mailbox by then.
    let mut seen = 0;
    let gone = loop {
        let wait = std::time::Duration::from_millis(20);
        if let Ok(gone) = tokio::time::timeout(wait, departures.recv()).await {
            break gone.unwrap();
        }
        while handled.try_recv().is_ok() {
            seen += 1;
        }
        assert!(seen < SENT, "every envelope handled, no departure");
        gate.add_permits(1);
    };
    assert_eq!(gone.to_string(), me);
    while handled.try_recv().is_ok() {
        seen += 1;
    }
    assert!(
        seen + IN_FLIGHT >= SENT,
        "the departure came while {} of {SENT} envelopes could still be in the backlog",
        SENT - seen
    );
    // And they all arrive, in order.
    gate.add_permits(SENT);
    while seen < SENT {
        within(STEP, "the rest", handled.recv()).await.unwrap();
        seen += 1;
    }
    stop_all(&nodes).await;
}
