//! Shared helpers of the root integration tests, included by each test file
//! with `mod support;` (a directory module: no test target of its own).
//!
//! - this module: bounded awaits ([`within`], [`wait_until`]), fast
//!   timings for links and routers, waiting on membership events;
//! - [`transport`]: binding transports for the `transport_*` tests;
//! - [`router`]: router clusters, echo and collector actors (`router_*`);
//! - [`jobs`]: nodes with worker pools and coordinators (`jobs_*`);
//! - [`mapreduce`]: an in-process map-reduce cluster (`mapreduce_*`);
//! - [`ws`]: a raw WebSocket client (connect, authenticate, JSON frames).
//!
//! Not every test file uses every helper, hence `dead_code` is allowed here.
#![allow(dead_code, unreachable_pub)]

pub mod jobs;
pub mod mapreduce;
pub mod router;
pub mod tls;
pub mod transport;
pub mod ws;

use std::future::Future;
use std::time::Duration;

use cluster_router::{Router, RouterConfig, TransportConfig};
use tokio::sync::broadcast::error::RecvError;

/// Awaits `fut`, failing the test if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `condition` every 20 ms until it holds (true) or `limit` passes (false).
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fast link timings: a heartbeat every 100 ms, redials after 20 ms
/// backing off to 200 ms.
pub fn fast_links(cfg: &mut TransportConfig) {
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.reconnect.base = Duration::from_millis(20);
    cfg.reconnect.max = Duration::from_millis(200);
}

/// A fast router configuration: 100 ms gossip, Suspect after 300 ms, Down
/// after 600 ms, give up on a node after 2 s, and [`fast_links`].
pub fn fast_router(name: &str, secret: &str) -> RouterConfig {
    let mut cfg = RouterConfig::new(name, secret).timing(
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_millis(600),
    );
    cfg.give_up_after = Duration::from_secs(2);
    fast_links(&mut cfg.transport);
    cfg
}

/// Waits (on membership events) until `done(router)` holds. Unbounded:
/// wrap it in [`within`].
pub async fn until_members(router: &Router, mut done: impl FnMut(&Router) -> bool) {
    let mut events = router.subscribe();
    while !done(router) {
        match events.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(e) => panic!("membership events closed: {e}"),
        }
    }
}
