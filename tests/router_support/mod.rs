//! Shared helpers of the router integration tests: fast cluster
//! configuration, a polling `wait_until`, an echo actor and a collector.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use actor_core::{spawn, Actor, BoxError, Context};
use cluster_router::{Envelope, MemberStatus, NodeId, Router, RouterConfig};
use tokio::sync::mpsc;

/// The cluster secret of every test.
pub const SECRET: &str = "router-test-cookie";

/// Bound of every single await in these tests.
pub const STEP: Duration = Duration::from_secs(10);

/// A fast configuration: 100 ms gossip, Suspect after 300 ms, Down after 600 ms.
pub fn fast(name: &str) -> RouterConfig {
    let mut cfg = RouterConfig::new(name, SECRET).timing(
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_millis(600),
    );
    cfg.request_timeout = Duration::from_secs(3);
    cfg.give_up_after = Duration::from_secs(2);
    cfg.transport.heartbeat_interval = Duration::from_millis(100);
    cfg.transport.reconnect.initial = Duration::from_millis(20);
    cfg.transport.reconnect.max = Duration::from_millis(200);
    cfg
}

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

/// Whether `router` sees exactly `nodes` as Up (itself included).
pub fn sees_up(router: &Router, nodes: &[&NodeId]) -> bool {
    let up: Vec<NodeId> = router.get_all_peers().into_iter().map(|m| m.node).collect();
    up.len() == nodes.len() && nodes.iter().all(|n| up.contains(n))
}

/// The status `router` holds for `node`.
pub fn status_of(router: &Router, node: &NodeId) -> Option<MemberStatus> {
    router.member(node).map(|m| m.status)
}

/// Starts `names.len()` nodes, all joining through the first, and waits
/// until every node sees every other Up.
pub async fn cluster(names: &[&str]) -> Vec<Router> {
    let seed = within(STEP, "seed start", Router::start(fast(names[0])))
        .await
        .expect("seed starts");
    let mut nodes = vec![seed];
    for name in &names[1..] {
        let cfg = fast(name).seeds([nodes[0].url()]);
        let node = within(STEP, "node start", Router::start(cfg))
            .await
            .expect("node starts");
        nodes.push(node);
    }
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.node_id().clone()).collect();
    let refs: Vec<&NodeId> = ids.iter().collect();
    let all_see_all = wait_until(STEP, || nodes.iter().all(|n| sees_up(n, &refs))).await;
    assert!(all_see_all, "cluster {names:?} did not converge");
    nodes
}

/// Shuts every node down.
pub async fn stop_all(nodes: &[Router]) {
    for node in nodes {
        within(STEP, "shutdown", node.shutdown()).await;
    }
}

/// Answers every message with its own payload.
pub struct Echo(pub Router);

#[async_trait::async_trait]
impl Actor for Echo {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.0.send(env.reply(env.payload.clone())).await?;
        Ok(())
    }
}

/// Registers an echo actor named `name` on `router`.
pub fn echo(router: &Router, name: &str) -> cluster_router::ActorAddr {
    router
        .register(name, spawn(name, Echo(router.clone())))
        .expect("register echo")
}

/// Forwards every envelope it receives into a channel.
pub struct Collector(pub mpsc::UnboundedSender<Envelope>);

#[async_trait::async_trait]
impl Actor for Collector {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.0.send(env);
        Ok(())
    }
}

/// Registers a collector named `name` on `router`; returns its address and inbox.
pub fn collector(
    router: &Router,
    name: &str,
) -> (cluster_router::ActorAddr, mpsc::UnboundedReceiver<Envelope>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = router
        .register(name, spawn(name, Collector(tx)))
        .expect("register collector");
    (addr, rx)
}
