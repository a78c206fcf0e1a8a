//! Two endpoints exchange 100,000 envelopes in both directions at once:
//! none lost, duplicated or reordered.

mod support;

use std::time::Duration;

use bytes::Bytes;
use cluster_transport::{Envelope, Incoming, Transport, TransportConfig, TrySendError};
use support::transport::{bind, from_node, node, stop};
use tokio::sync::mpsc;
use tokio::time::timeout;

const N: u64 = 100_000;
const T: Duration = Duration::from_secs(60);

/// Envelope `i` from `from`: the header names both, the payload is `i`.
fn envelope(i: u64, from: &str) -> Envelope {
    let header = Bytes::from(format!("{from}/{i}"));
    Envelope::new(header, Bytes::from(i.to_le_bytes().to_vec()))
}

async fn pump(t: Transport, peer: &'static str, from: &'static str) {
    for i in 0..N {
        t.send(peer, envelope(i, from)).await.expect("send");
    }
}

/// Receives until `N` envelopes arrived, checking order and contents.
async fn drain(mut rx: mpsc::Receiver<Incoming>, from: &'static str) -> u64 {
    let mut next = 0u64;
    while next < N {
        let (peer, envelopes) = from_node(rx.recv().await.expect("incoming open"));
        assert_eq!(peer, from);
        for env in envelopes {
            assert_eq!(env, envelope(next, from), "lost, duplicated or reordered");
            next += 1;
        }
    }
    assert!(rx.try_recv().is_err(), "nothing beyond the N envelopes");
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_each_way_in_order() {
    let a = node("node-a", "k").await;
    let b = node("node-b", "k").await;
    let (rx_a, rx_b) = (a.take_incoming().unwrap(), b.take_incoming().unwrap());
    assert!(a.take_incoming().is_none(), "handed out once");
    assert_eq!(
        timeout(T, a.connect(&b.url())).await.unwrap().unwrap(),
        "node-b"
    );
    assert_eq!(a.peers(), vec!["node-b".to_owned()]);
    // The dialer knows the link once the acceptor answered; the acceptor
    // registers its side just after: wait for it before node-b sends.
    timeout(T, async {
        while b.peers().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("node-b registers the link");

    let recv_a = tokio::spawn(drain(rx_a, "node-b"));
    let recv_b = tokio::spawn(drain(rx_b, "node-a"));
    let send_a = tokio::spawn(pump(a.clone(), "node-b", "node-a"));
    let send_b = tokio::spawn(pump(b.clone(), "node-a", "node-b"));
    timeout(T, send_a).await.unwrap().unwrap();
    timeout(T, send_b).await.unwrap().unwrap();
    assert_eq!(timeout(T, recv_a).await.unwrap().unwrap(), N);
    assert_eq!(timeout(T, recv_b).await.unwrap().unwrap(), N);

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.envelopes_out, sb.envelopes_in), (N, N));
    assert_eq!((sb.envelopes_out, sa.envelopes_in), (N, N));
    assert!(
        sa.frames_out < N,
        "writes were coalesced: {} frames",
        sa.frames_out
    );
    assert_eq!(sa.malformed_frames + sb.malformed_frames, 0);
    stop(&[&a, &b]).await;
}

#[tokio::test]
async fn try_send_hands_back_the_envelope() {
    let mut cfg = TransportConfig::new("node-a", "k");
    cfg.outbound_queue = 1;
    let a = bind(cfg).await;
    let env = envelope(1, "node-a");
    match a.try_send("node-x", env.clone()) {
        Err(TrySendError::NoLink(back)) => assert_eq!(back, env),
        other => panic!("expected NoLink, got {other:?}"),
    }
    let b = node("node-b", "k").await;
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
    // Queue of one on a current-thread runtime: the writer cannot drain
    // between these two calls, so the second one finds the queue full.
    a.try_send("node-b", envelope(1, "node-a"))
        .expect("first fits");
    match a.try_send("node-b", envelope(2, "node-a")) {
        Err(TrySendError::Full(back)) => assert_eq!(back, envelope(2, "node-a")),
        other => panic!("expected Full, got {other:?}"),
    }
    stop(&[&a, &b]).await;
}
