//! Transports for the `transport_*` tests: binding, linking and stopping
//! endpoints, each step bounded by [`T`].

use std::time::Duration;

use cluster_transport::{Transport, TransportConfig};
use tokio::time::timeout;

/// Bound of every single await in these tests.
pub const T: Duration = Duration::from_secs(10);

/// Binds a transport configured by `cfg`.
pub async fn bind(cfg: TransportConfig) -> Transport {
    timeout(T, Transport::bind(cfg)).await.unwrap().unwrap()
}

/// Binds a transport named `name` with the cluster secret `secret`.
pub async fn node(name: &str, secret: &str) -> Transport {
    bind(TransportConfig::new(name, secret)).await
}

/// Binds `node-a` and `node-b` (secret `k`) and links a to b.
pub async fn pair() -> (Transport, Transport) {
    let a = node("node-a", "k").await;
    let b = node("node-b", "k").await;
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
    (a, b)
}

/// Shuts every transport down, in order.
pub async fn stop(transports: &[&Transport]) {
    for t in transports {
        timeout(T, t.shutdown()).await.unwrap();
    }
}

/// Waits until `done()` holds, yielding between checks. Unbounded: wrap
/// it in a timeout.
pub async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}
