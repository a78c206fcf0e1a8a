//! A protocol version mismatch is refused, stating both versions, in both
//! directions (a raw peer from tests/support plays the other version).

mod support;

use cluster_transport::{HandshakeError, TransportError, PROTOCOL_VERSION};
use support::transport::raw::{self, Control, Refusal};
use support::transport::{node, stop, T};
use tokio::time::timeout;

#[tokio::test]
async fn a_newer_dialer_is_refused_with_both_versions() {
    let future = PROTOCOL_VERSION + 1;
    let old = node("node-old", "k").await;
    let (_ws, verdict) = raw::dial(&old.url(), "node-new", "k", future).await;
    assert_eq!(
        verdict,
        Control::Refuse {
            reason: Refusal::VersionMismatch {
                ours: PROTOCOL_VERSION,
                yours: future
            }
        }
    );
    assert_eq!(old.stats().version_mismatches, 1, "refused and counted");
    assert!(old.peers().is_empty());
    stop(&[&old]).await;
}

#[tokio::test]
async fn a_newer_listener_is_refused_with_both_versions() {
    let future = PROTOCOL_VERSION + 1;
    let old = node("node-old", "k").await;
    let (url, listener) = raw::listen_once("node-new", future).await;
    let err = timeout(T, old.connect(&url))
        .await
        .unwrap()
        .expect_err("refused");
    match &err {
        TransportError::Handshake(HandshakeError::VersionMismatch { local, remote }) => {
            assert_eq!((*local, *remote), (PROTOCOL_VERSION, future));
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&future.to_string()) && text.contains(&PROTOCOL_VERSION.to_string()),
        "{text}"
    );
    let told = timeout(T, listener).await.unwrap().unwrap();
    assert_eq!(
        told,
        Some(Control::Refuse {
            reason: Refusal::VersionMismatch {
                ours: PROTOCOL_VERSION,
                yours: future
            }
        }),
        "the peer is told both versions"
    );
    assert_eq!(old.stats().version_mismatches, 1);
    assert!(old.peers().is_empty());
    stop(&[&old]).await;
}
