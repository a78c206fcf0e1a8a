//! Router clusters for the `router_*` tests: fast configuration, start and
//! convergence, an echo actor, a collector and a gated actor.

use std::time::Duration;

use actor_core::{spawn, Actor, BoxError, Context};
use cluster_router::{ActorAddr, Envelope, MemberStatus, NodeId, Router, RouterConfig};
use tokio::sync::mpsc;

// Re-exported so that `use support::<area>::*` brings the bounded awaits.
use super::fast_router;
#[allow(unused_imports)]
pub use super::{wait_until, within};

/// The cluster secret of every test.
pub const SECRET: &str = "router-test-cookie";

/// Bound of every single await in these tests.
pub const STEP: Duration = Duration::from_secs(10);

/// [`fast_router`] with [`SECRET`] and a 3 s request timeout.
pub fn fast(name: &str) -> RouterConfig {
    let mut cfg = fast_router(name, SECRET);
    cfg.request_timeout = Duration::from_secs(3);
    cfg
}

/// Starts a router with `cfg`, within [`STEP`].
pub async fn start(cfg: RouterConfig) -> Router {
    within(STEP, "router start", Router::start(cfg))
        .await
        .expect("router starts")
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

/// Starts `names.len()` nodes with [`fast`], all joining through the first,
/// and waits until every node sees every other Up.
pub async fn cluster(names: &[&str]) -> Vec<Router> {
    cluster_of(names.iter().map(|name| fast(name)).collect()).await
}

/// Starts one node per configuration, the others joining through the
/// first, and waits until every node sees every other Up.
pub async fn cluster_of(configs: Vec<RouterConfig>) -> Vec<Router> {
    let mut configs = configs.into_iter();
    let seed = start(configs.next().expect("at least one node")).await;
    let mut nodes = vec![seed];
    for cfg in configs {
        let node = start(cfg.seeds([nodes[0].url()])).await;
        nodes.push(node);
    }
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.node_id().clone()).collect();
    let refs: Vec<&NodeId> = ids.iter().collect();
    let all_see_all = wait_until(STEP, || nodes.iter().all(|n| sees_up(n, &refs))).await;
    assert!(all_see_all, "cluster {ids:?} did not converge");
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

/// Registers an echo actor named `name` on `router` (nodes only).
pub fn echo(router: &Router, name: &str) -> ActorAddr {
    router
        .register(name, spawn(name, Echo(router.clone())))
        .expect("register echo")
}

/// Registers a client-facing echo actor named `name` on `router`.
pub fn client_echo(router: &Router, name: &str) -> ActorAddr {
    router
        .register_client_facing(name, spawn(name, Echo(router.clone())))
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

/// Waits for a permit before handling each message, then forwards it: its
/// mailbox fills up while the gate is shut.
pub struct Gated {
    pub gate: std::sync::Arc<tokio::sync::Semaphore>,
    pub out: mpsc::UnboundedSender<Envelope>,
}

#[async_trait::async_trait]
impl Actor for Gated {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.gate.acquire().await?.forget();
        let _ = self.out.send(env);
        Ok(())
    }
}

/// Registers a collector named `name` on `router` (nodes only); returns
/// its address and inbox.
pub fn collector(router: &Router, name: &str) -> (ActorAddr, mpsc::UnboundedReceiver<Envelope>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = router
        .register(name, spawn(name, Collector(tx)))
        .expect("register collector");
    (addr, rx)
}

/// Registers a client-facing collector named `name` on `router`.
pub fn client_collector(
    router: &Router,
    name: &str,
) -> (ActorAddr, mpsc::UnboundedReceiver<Envelope>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = router
        .register_client_facing(name, spawn(name, Collector(tx)))
        .expect("register collector");
    (addr, rx)
}

/// Envelope kinds in the router's header (`docs/wire.md`).
pub const KIND_MESSAGE: u8 = 0;
pub const KIND_UNDELIVERABLE: u8 = 1;

/// The router's header of an envelope with a Json payload, as a raw node
/// (tests/support/transport.rs) sends it: flags, id, correlation, `to`,
/// `from` (`docs/wire.md`, "The router's header").
pub fn raw_header(kind: u8, id: u64, correlation: Option<u64>, to: &str, from: &str) -> Vec<u8> {
    let mut flags = (1 << 4) | kind;
    if correlation.is_some() {
        flags |= 0b1000;
    }
    let mut out = vec![flags];
    out.extend_from_slice(&id.to_le_bytes());
    if let Some(c) = correlation {
        out.extend_from_slice(&c.to_le_bytes());
    }
    for addr in [to, from] {
        out.push(addr.len() as u8);
        out.extend_from_slice(addr.as_bytes());
    }
    out
}
