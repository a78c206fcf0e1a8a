//! TLS between nodes and for clients (certificates generated at run
//! time): a wss:// link carries envelopes with the HMAC handshake inside
//! TLS, a wss client authenticates with its token, a plaintext client is
//! refused by a TLS node, dialling wss:// needs a trusted CA, and a TLS
//! link carries bulk both ways at once.

mod support;

use bytes::Bytes;
use cluster_transport::{Envelope, Incoming, Transport, TransportConfig, TransportError};
use support::tls::TestPki;
use support::transport::{bind, env, from_node, stop, T};
use support::wait_until;
use support::ws::{bearer_request, token};
use tokio::time::timeout;

fn tls_node(name: &str, secret: &str, pki: &TestPki) -> TransportConfig {
    let mut cfg = TransportConfig::new(name, secret);
    cfg.tls = Some(pki.node());
    cfg
}

#[tokio::test]
async fn nodes_link_over_tls_and_still_prove_the_secret() {
    let pki = TestPki::new();
    let a = bind(tls_node("node-a", "k", &pki)).await;
    let b = bind(tls_node("node-b", "k", &pki)).await;
    assert!(a.url().starts_with("wss://127.0.0.1:"), "{}", a.url());
    let mut inbox = a.take_incoming().unwrap();
    let peer = timeout(T, b.connect(&a.url())).await.unwrap().unwrap();
    assert_eq!(peer, "node-a");
    timeout(T, b.send("node-a", env("h", &b"over tls"[..])))
        .await
        .unwrap()
        .unwrap();
    let (from, envs) = from_node(timeout(T, inbox.recv()).await.unwrap().unwrap());
    assert_eq!(from, "node-b");
    assert_eq!(&envs[0].payload[..], b"over tls");

    // TLS does not replace the cluster secret: a wrong one is still refused.
    let c = bind(tls_node("node-c", "wrong", &pki)).await;
    let err = timeout(T, c.connect(&a.url())).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::Handshake(_)), "{err}");
    assert!(wait_until(T, || a.stats().auth_failures == 1).await);
    stop(&[&a, &b, &c]).await;
}

#[tokio::test]
async fn a_wss_client_authenticates_and_a_plaintext_one_is_refused() {
    let pki = TestPki::new();
    let a = bind(tls_node("node-a", "k", &pki)).await;
    let mut inbox = a.take_incoming().unwrap();

    let conn = cluster_transport::open_stream(&a.url(), Some(&pki.client()))
        .await
        .unwrap();
    assert!(conn.is_tls());
    let request = bearer_request(&a.url(), &token("k"));
    let (mut ws, _) = timeout(T, tokio_tungstenite::client_async(request, conn))
        .await
        .unwrap()
        .unwrap();
    support::ws::auth_ok(T, &mut ws).await;
    support::ws::send(T, &mut ws, "{\"hi\":1}".into()).await;
    let got = loop {
        if let Incoming::Client { text, .. } = timeout(T, inbox.recv()).await.unwrap().unwrap() {
            break text;
        }
    };
    assert_eq!(&got[..], b"{\"hi\":1}");

    // A plaintext WebSocket client gets no upgrade from a TLS listener.
    let plain = format!("ws://{}", a.local_addr());
    let refused = timeout(T, tokio_tungstenite::connect_async(plain))
        .await
        .unwrap();
    assert!(refused.is_err(), "plaintext upgrade must fail");
    assert!(
        wait_until(T, || a.stats().tls_failures >= 1).await,
        "{:?}",
        a.stats()
    );
    assert_eq!(a.stats().clients_connected, 1);
    stop(&[&a]).await;
}

#[tokio::test]
async fn wss_needs_a_trusted_ca() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let a = bind(tls_node("node-a", "k", &pki)).await;
    // No CA configured at all.
    let mut no_ca = TransportConfig::new("node-b", "k");
    no_ca.tls = None;
    let b = bind(no_ca).await;
    let err = timeout(T, b.connect(&a.url())).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::TlsNotConfigured(_)), "{err}");
    assert!(err.to_string().contains("--tls-ca"), "{err}");
    // A CA that did not sign a's certificate.
    let c = bind(tls_node("node-c", "k", &other)).await;
    let err = timeout(T, c.connect(&a.url())).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err}");
    // A TLS dialler against a plaintext listener.
    let plain = bind(TransportConfig::new("node-d", "k")).await;
    let wss = plain.url().replace("ws://", "wss://");
    let err = timeout(T, a.connect(&wss)).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err}");
    stop(&[&a, &b, &c, &plain]).await;
}

/// Envelopes per direction in the bulk test, and their payload size: 16 MiB
/// each way, more than loopback's socket buffers hold, so writes must wait
/// for the socket while the same link's reader keeps reading.
const BULK: u64 = 256;
const BULK_BYTES: usize = 64 * 1024;

fn bulk_envelope(i: u64) -> Envelope {
    let mut payload = vec![i as u8; BULK_BYTES];
    payload[..8].copy_from_slice(&i.to_le_bytes());
    Envelope::new(Bytes::from_static(b"bulk"), Bytes::from(payload))
}

async fn bulk_send(t: &Transport, peer: &str) {
    for i in 0..BULK {
        timeout(T, t.send(peer, bulk_envelope(i)))
            .await
            .unwrap()
            .unwrap();
    }
}

async fn bulk_receive(inbox: &mut tokio::sync::mpsc::Receiver<Incoming>) {
    let mut next = 0;
    while next < BULK {
        let (_, envs) = from_node(timeout(T, inbox.recv()).await.unwrap().unwrap());
        for env in envs {
            assert_eq!(env, bulk_envelope(next), "lost, duplicated or reordered");
            next += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_link_carries_bulk_both_ways_at_once() {
    let pki = TestPki::new();
    let a = bind(tls_node("node-a", "k", &pki)).await;
    let b = bind(tls_node("node-b", "k", &pki)).await;
    let (mut inbox_a, mut inbox_b) = (a.take_incoming().unwrap(), b.take_incoming().unwrap());
    timeout(T, b.connect(&a.url())).await.unwrap().unwrap();
    assert!(
        wait_until(T, || !a.peers().is_empty()).await,
        "a sees the link"
    );
    tokio::join!(
        bulk_send(&a, "node-b"),
        bulk_send(&b, "node-a"),
        bulk_receive(&mut inbox_a),
        bulk_receive(&mut inbox_b),
    );
    stop(&[&a, &b]).await;
}
