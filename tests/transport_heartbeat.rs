//! A peer that goes silent is reported down after missed heartbeats.

mod support;

use std::time::Duration;

use cluster_transport::{LinkEvent, TransportConfig};
use support::transport::{bind, stop, T};
use tokio::time::timeout;

#[tokio::test]
async fn silent_peer_is_reported_down() {
    let mut watcher = TransportConfig::new("node-a", "k");
    watcher.heartbeat_interval = Duration::from_millis(50);
    watcher.heartbeat_misses = 3;
    let mut silent = TransportConfig::new("node-b", "k");
    silent.send_heartbeats = false;
    silent.heartbeat_interval = Duration::from_secs(60);
    let a = bind(watcher).await;
    let b = bind(silent).await;
    let mut events = a.subscribe();
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
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
    stop(&[&a, &b]).await;
}

#[tokio::test]
async fn heartbeats_keep_an_idle_link_up() {
    let mut cfg_a = TransportConfig::new("node-a", "k");
    cfg_a.heartbeat_interval = Duration::from_millis(50);
    cfg_a.heartbeat_misses = 4;
    let mut cfg_b = cfg_a.clone();
    cfg_b.node_name = "node-b".into();
    let a = bind(cfg_a).await;
    let b = bind(cfg_b).await;
    let mut events = a.subscribe();
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
    assert_eq!(
        timeout(T, events.recv()).await.unwrap().unwrap(),
        LinkEvent::Up {
            peer: "node-b".into()
        }
    );
    // Three miss windows of idleness: no Down event may arrive.
    let quiet = timeout(Duration::from_millis(600), events.recv()).await;
    assert!(quiet.is_err(), "link stayed up: {quiet:?}");
    assert_eq!(a.peers(), vec!["node-b".to_owned()]);
    stop(&[&a, &b]).await;
}
