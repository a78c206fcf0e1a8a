//! Heartbeats: a silent peer is reported down after the missed heartbeats;
//! a link whose only traffic is heartbeats stays up. The peer is a raw node
//! from tests/support, so the test controls exactly what it sends; nothing
//! here depends on how fast the machine is (events are awaited, and the
//! "stays up" check is a sequence of frames, not a quiet period).

mod support;

use std::time::Duration;

use cluster_transport::{LinkEvent, TransportConfig};
use support::transport::raw::{self, Control};
use support::transport::{bind, stop, T};
use tokio::time::timeout;

#[tokio::test]
async fn silent_peer_is_reported_down() {
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.heartbeat_interval = Duration::from_millis(50);
    cfg.heartbeat_misses = 3;
    let a = bind(cfg).await;
    let mut events = a.subscribe();
    // Linked, then silent: it never sends another frame.
    let _silent = raw::link(&a.url(), "node-b", "k").await;
    let reason = loop {
        match timeout(T, events.recv()).await.unwrap().unwrap() {
            LinkEvent::Down { peer, reason } => {
                assert_eq!(peer, "node-b");
                break reason;
            }
            _ => continue,
        }
    };
    assert!(reason.contains("missed 3 heartbeats"), "{reason}");
    assert!(!reason.is_clean());
    stop(&[&a]).await;
}

#[tokio::test]
async fn heartbeats_keep_an_idle_link_up() {
    // A 2 s miss window (100 ms x 20). The peer answers each heartbeat it
    // gets with one of its own and sends nothing else, for 25 heartbeats:
    // longer than the window, so only heartbeats keep the link up.
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.heartbeat_misses = 20;
    let a = bind(cfg).await;
    let mut events = a.subscribe();
    let mut peer = raw::link(&a.url(), "node-b", "k").await;
    let up = timeout(T, events.recv()).await.unwrap().unwrap();
    assert_eq!(
        up,
        LinkEvent::Up {
            peer: "node-b".into()
        }
    );
    let mut beats = 0;
    while beats < 25 {
        let frame = raw::next_binary(&mut peer)
            .await
            .expect("node-a kept the link: no close between heartbeats");
        assert_eq!(raw::decode_control(&frame), Some(Control::Heartbeat));
        beats += 1;
        raw::send(&mut peer, raw::control(&Control::Heartbeat)).await;
    }
    assert_eq!(a.peers(), vec!["node-b".to_owned()]);
    assert_eq!(a.stats().links_open, 1);
    stop(&[&a]).await;
}
