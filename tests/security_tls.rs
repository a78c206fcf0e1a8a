//! TLS between nodes and for clients (certificates generated at run
//! time): a wss:// link carries envelopes with the HMAC handshake inside
//! TLS, a wss client authenticates with its token, a plaintext client is
//! refused by a TLS node, and dialling wss:// needs a trusted CA.

mod support;

use cluster_transport::{Incoming, TransportConfig, TransportError};
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
