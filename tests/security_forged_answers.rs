//! Answers are accepted only from the node and actor the request went to.
//! A raw node (tests/support: it knows the cluster secret, so it gets a
//! link) forges answers to a pending `Router::request`, knowing its id:
//! neither an answer from another actor nor one claiming another node's
//! address is taken, both are counted, and the real answer still arrives.

mod support;

use std::time::Duration;

use bytes::Bytes;
use cluster_router::{EnvelopeKind, PayloadFormat};
use support::router::*;
use support::transport::raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_count_only_from_the_addressee_on_its_node() {
    // The raw node does not answer heartbeats: give it a long window.
    let mut cfg_a = fast("fa-a");
    cfg_a.transport.heartbeat_misses = 100;
    let nodes = cluster_of(vec![cfg_a, fast("fa-b")]).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let (slow, mut slow_rx) = collector(&b, "slow");
    let asker = a.clone();
    let pending = tokio::spawn(async move {
        let payload = Bytes::from_static(b"\"question\"");
        let wait = Duration::from_secs(30);
        asker
            .request(slow, PayloadFormat::Json, payload, wait)
            .await
    });
    let request = within(STEP, "request arrives", slow_rx.recv())
        .await
        .unwrap();

    let mut x = raw::link(&a.url(), "fa-x", SECRET).await;
    let reply_to = request.from.to_string();
    let id = request.id.get();
    // Another actor's answer (the raw node's own), with the right id.
    let other = raw_header(KIND_UNDELIVERABLE, 7, Some(id), &reply_to, "slow@fa-x");
    // The addressee's address, claimed by a node that is not fa-b.
    let spoofed = raw_header(KIND_UNDELIVERABLE, 8, Some(id), &reply_to, "slow@fa-b");
    let payload = b"\"gone\"";
    let frame = raw::batch(&[(&other, payload), (&spoofed, payload)]);
    raw::send(&mut x, frame).await;
    let counted = wait_until(STEP, || {
        let s = a.stats();
        s.forged_answers == 1 && s.bad_senders == 1
    })
    .await;
    assert!(counted, "both forgeries counted: {:?}", a.stats());

    // The request still waits for its real answer, and gets it.
    let answer = request.reply(Bytes::from_static(b"\"real\""));
    within(STEP, "answer", b.send(answer)).await.unwrap();
    let got = within(STEP, "request completes", pending)
        .await
        .unwrap()
        .expect("answered");
    assert_eq!(got.kind, EnvelopeKind::Message);
    assert_eq!(got.payload_str(), Some("\"real\""));
    assert_eq!(got.from, request.to);
    drop(x);
    stop_all(&nodes).await;
}
