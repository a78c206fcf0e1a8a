//! A lost link comes back by itself after the other endpoint restarts on the
//! same port; `disconnect` stops redialling.

mod support;

use cluster_transport::{Envelope, LinkEvent, Transport, TransportConfig};
use support::fast_links;
use support::transport::{bind, from_node, stop, T};
use tokio::sync::broadcast;
use tokio::time::timeout;

fn config(name: &str) -> TransportConfig {
    let mut cfg = TransportConfig::new(name, "k");
    fast_links(&mut cfg);
    cfg
}

async fn next_link_event(events: &mut broadcast::Receiver<LinkEvent>) -> LinkEvent {
    loop {
        match timeout(T, events.recv()).await.unwrap().unwrap() {
            e @ (LinkEvent::Up { .. } | LinkEvent::Down { .. }) => return e,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn link_returns_after_peer_restart_on_same_port() {
    let a = timeout(T, Transport::bind(config("node-a")))
        .await
        .unwrap()
        .unwrap();
    let b = timeout(T, Transport::bind(config("node-b")))
        .await
        .unwrap()
        .unwrap();
    let addr = b.local_addr();
    let mut events = a.subscribe();
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
    assert_eq!(
        next_link_event(&mut events).await,
        LinkEvent::Up {
            peer: "node-b".into()
        }
    );

    stop(&[&b]).await;
    assert!(
        matches!(next_link_event(&mut events).await, LinkEvent::Down { peer, .. } if peer == "node-b")
    );

    let mut cfg = config("node-b");
    cfg.listen = addr;
    let b2 = bind(cfg).await;
    let mut rx = b2.take_incoming().unwrap();
    assert_eq!(
        next_link_event(&mut events).await,
        LinkEvent::Up {
            peer: "node-b".into()
        }
    );
    timeout(
        T,
        a.send("node-b", Envelope::new(&b"x"[..], &b"\"again\""[..])),
    )
    .await
    .unwrap()
    .unwrap();
    let (_, envelopes) = from_node(timeout(T, rx.recv()).await.unwrap().unwrap());
    assert_eq!(&envelopes[0].payload[..], b"\"again\"");

    // After disconnect, a restart of b is not redialled.
    a.disconnect("node-b");
    assert!(matches!(
        next_link_event(&mut events).await,
        LinkEvent::Down { .. }
    ));
    assert!(a.peers().is_empty());
    stop(&[&a, &b2]).await;
}
