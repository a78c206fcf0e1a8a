//! A protocol version mismatch is refused, stating both versions.

mod support;

use cluster_transport::{HandshakeError, TransportConfig, TransportError, PROTOCOL_VERSION};
use support::transport::{bind, node, stop, T};
use tokio::time::timeout;

#[tokio::test]
async fn version_mismatch_is_refused_with_both_versions() {
    let future = PROTOCOL_VERSION + 1;
    let mut cfg = TransportConfig::new("node-new", "k");
    cfg.protocol_version = future;
    let new = bind(cfg).await;
    let old = node("node-old", "k").await;

    let err = timeout(T, new.connect(&old.url()))
        .await
        .unwrap()
        .expect_err("refused");
    match &err {
        TransportError::Handshake(HandshakeError::VersionMismatch { local, remote }) => {
            assert_eq!((*local, *remote), (future, PROTOCOL_VERSION));
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&future.to_string()) && text.contains(&PROTOCOL_VERSION.to_string()),
        "{text}"
    );
    assert_eq!(new.stats().version_mismatches, 1);
    assert_eq!(
        old.stats().version_mismatches,
        1,
        "the listener refused and counted it"
    );
    assert!(new.peers().is_empty() && old.peers().is_empty());

    // The other direction is refused as well.
    let err = timeout(T, old.connect(&new.url()))
        .await
        .unwrap()
        .expect_err("refused");
    assert!(matches!(
        err,
        TransportError::Handshake(HandshakeError::VersionMismatch { .. })
    ));
    stop(&[&new, &old]).await;
}
