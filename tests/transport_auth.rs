//! A wrong cluster secret is refused on both sides and nothing is delivered.

mod support;

use cluster_transport::{Envelope, HandshakeError, TransportError};
use support::transport::{node, stop, until, T};
use tokio::time::timeout;

#[tokio::test]
async fn wrong_secret_is_refused_on_both_sides() {
    let a = node("node-a", "right").await;
    let b = node("node-b", "wrong").await;
    let mut rx_b = b.take_incoming().unwrap();
    let mut rx_a = a.take_incoming().unwrap();

    let err = timeout(T, a.connect(&b.url()))
        .await
        .unwrap()
        .expect_err("refused");
    assert!(
        matches!(err, TransportError::Handshake(HandshakeError::AuthFailed)),
        "dialer sees the refusal: {err:?}"
    );
    let text = err.to_string();
    assert!(
        !text.contains("right") && !text.contains("wrong"),
        "reveals no secret: {text}"
    );

    // The dialer rejects the listener's proof first and tells it so; the
    // listener counts the failed handshake as well.
    assert_eq!(a.stats().auth_failures, 1);
    timeout(T, until(|| b.stats().auth_failures != 0))
        .await
        .expect("listener counted the refusal");

    assert!(a.peers().is_empty() && b.peers().is_empty());
    let env = Envelope::new(&b"x"[..], &b"{}"[..]);
    assert!(a.send("node-b", env.clone()).await.is_err());
    assert!(b.send("node-a", env).await.is_err());
    assert!(
        rx_a.try_recv().is_err() && rx_b.try_recv().is_err(),
        "nothing delivered"
    );
    stop(&[&a, &b]).await;
}

#[tokio::test]
async fn wrong_secret_on_the_listener_side_is_refused_too() {
    // b dials a: now the listener (a) holds the right secret and b the wrong one.
    let a = node("node-a", "right").await;
    let b = node("node-b", "wrong").await;
    let err = timeout(T, b.connect(&a.url()))
        .await
        .unwrap()
        .expect_err("refused");
    assert!(
        matches!(err, TransportError::Handshake(HandshakeError::AuthFailed)),
        "{err:?}"
    );
    assert!(a.stats().auth_failures >= 1 || b.stats().auth_failures >= 1);
    assert!(a.peers().is_empty() && b.peers().is_empty());
    stop(&[&a, &b]).await;
}
