//! Membership in motion: the gossip loop, joining through seeds, graceful
//! leave announcements, and applying membership [`Changes`] (events, dials,
//! disconnects).

use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use cluster_transport::LinkEvent;
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rustc_hash::FxHashSet;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;

use crate::addr::NodeId;
use crate::envelope::{Envelope, PayloadFormat};
use crate::header::to_wire;
use crate::member::{MemberEvent, MemberStatus};
use crate::membership::Changes;
use crate::router::Inner;
use crate::stats::bump;
use crate::wire::{self, SystemMessage};

/// Gossip rounds between two checks that every reachable member is linked.
const LINK_CHECK_EVERY: u64 = 5;
/// Gossip rounds between two attempts to rejoin through the seeds while no
/// peer is reachable.
const REJOIN_EVERY: u64 = 10;

/// Which table message to push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// A joining node's first exchange with a seed.
    Join,
    /// A push-pull round.
    Gossip,
}

/// This node's table as a versioned system message.
fn table_message(inner: &Inner, push: Push) -> Bytes {
    let rows = wire::to_wire(&inner.membership.read().members());
    wire::encode(&match push {
        Push::Join => SystemMessage::Join(rows),
        Push::Gossip => SystemMessage::Gossip(rows),
    })
}

/// Sends a system payload to `system@node` straight on its link, without
/// waiting; gossip is best effort, so a full or missing link just skips it.
fn send_system(inner: &Inner, node: &NodeId, payload: Bytes) {
    let env = Envelope::new(
        inner.system_of(node),
        inner.system_addr.clone(),
        PayloadFormat::Binary,
        payload,
    );
    if let Err(err) = inner.transport.try_send(node.as_str(), to_wire(env)) {
        tracing::debug!(%node, %err, "gossip message skipped");
    }
}

/// Sends a gossip answer straight on the link of its addressee's node
/// (not counted as routed traffic; dropped when the link is full or gone).
pub(crate) fn send_gossip_answer(inner: &Inner, env: Envelope) {
    if *env.to.node() == inner.node {
        inner.post(env);
        return;
    }
    let node = env.to.node().clone();
    if let Err(err) = inner.transport.try_send(node.as_str(), to_wire(env)) {
        tracing::debug!(%node, %err, "gossip answer skipped");
    }
}

/// Pushes this node's table to `node` (it answers with its own).
pub(crate) fn push_table(inner: &Inner, node: &NodeId, push: Push) {
    send_system(inner, node, table_message(inner, push));
}

/// Publishes events, closes links for good and dials new members.
pub(crate) fn apply(inner: &Arc<Inner>, changes: Changes) {
    for event in changes.events {
        match &event {
            MemberEvent::Updated(_) => {}
            other => {
                let m = other.member();
                tracing::info!(node = %inner.node, member = %m.node, status = ?m.status, "membership change");
            }
        }
        // No subscriber is fine.
        let _ = inner.events.send(event);
    }
    for node in changes.disconnect {
        inner.transport.disconnect(node.as_str());
    }
    if !changes.connect.is_empty() {
        let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
        for (node, url) in changes.connect {
            if !linked.contains(node.as_str()) {
                dial(inner, node, url);
            }
        }
    }
}

/// Dials `node` at `url` in the background (once at a time per node).
fn dial(inner: &Arc<Inner>, node: NodeId, url: String) {
    if !inner.dialing.lock().insert(node.clone()) {
        return;
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let result = inner.transport.connect(&url).await;
        inner.dialing.lock().remove(&node);
        match result {
            Ok(peer) if peer == node.as_str() => {}
            Ok(peer) => {
                tracing::warn!(%node, %url, %peer, "dialled a member's URL, another node answered")
            }
            Err(err) => tracing::debug!(%node, %url, %err, "cannot dial member"),
        }
    });
}

/// Dials every reachable member that has no link (a first dial failed, or
/// the member's link was dialled by a node that has since given up).
fn ensure_links(inner: &Arc<Inner>) {
    let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
    let missing: Vec<(NodeId, String)> = inner
        .membership
        .read()
        .members()
        .into_iter()
        .filter(|m| m.node != inner.node && m.status.is_reachable())
        .filter(|m| !linked.contains(m.node.as_str()))
        .map(|m| (m.node, m.url))
        .collect();
    for (node, url) in missing {
        dial(inner, node, url);
    }
}

/// Dials the seeds (all at once) and sends each a Join. Returns how many
/// answered the dial.
pub(crate) async fn join_seeds(inner: &Arc<Inner>) -> usize {
    let limit = inner.config.transport.handshake_timeout * 2;
    let attempts = inner
        .config
        .seeds
        .iter()
        .filter(|url| **url != inner.url)
        .map(|url| async move {
            match tokio::time::timeout(limit, inner.transport.connect(url)).await {
                Ok(Ok(peer)) => match NodeId::new(&peer) {
                    Ok(node) => {
                        push_table(inner, &node, Push::Join);
                        true
                    }
                    Err(_) => false,
                },
                Ok(Err(err)) => {
                    tracing::warn!(node = %inner.node, seed = %url, %err, "cannot join through seed");
                    false
                }
                Err(_) => {
                    tracing::warn!(node = %inner.node, seed = %url, "seed did not answer in time");
                    false
                }
            }
        });
    join_all(attempts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

/// One gossip round: heartbeat, failure detection, push-pull to a few
/// random reachable peers, and housekeeping.
fn gossip_round(inner: &Arc<Inner>, round: u64) {
    let (changes, targets, rows, leaving) = {
        let mut table = inner.membership.write();
        table.beat();
        let changes = table.check(Instant::now());
        let targets = table.gossip_targets(inner.config.gossip_fanout, &mut rand::thread_rng());
        let leaving = matches!(
            table.me().status,
            MemberStatus::Leaving | MemberStatus::Left
        );
        (changes, targets, wire::to_wire(&table.members()), leaving)
    };
    apply(inner, changes);
    bump(&inner.counters.gossip_rounds, 1);
    let lonely = targets.is_empty();
    if !lonely {
        let payload = wire::encode(&SystemMessage::Gossip(rows));
        for node in &targets {
            send_system(inner, node, payload.clone());
        }
    }
    // A leaving node only announces; it neither redials nor rejoins.
    if leaving {
        return;
    }
    if round % LINK_CHECK_EVERY == 0 {
        ensure_links(inner);
    }
    if lonely && !inner.config.seeds.is_empty() && round % REJOIN_EVERY == 0 {
        let inner = Arc::clone(inner);
        tokio::spawn(async move { join_seeds(&inner).await });
    }
}

/// Runs gossip rounds every `gossip_interval` until the router is gone.
pub(crate) async fn gossip_loop(weak: Weak<Inner>) {
    let Some(period) = weak.upgrade().map(|i| i.config.gossip_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut round = 0u64;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        round += 1;
        gossip_round(&inner, round);
    }
}

/// Pushes this node's table to every reachable, linked peer and waits
/// until each has acknowledged it, or at most `request_timeout`: used by
/// [`Router::leave`](crate::Router::leave).
///
/// An acknowledgement is the peer's `Table` answer, or its link going down
/// after the announcement was queued: a peer that learns this node is Left
/// closes the link at once (the answer may not make it out first), and a
/// peer whose link fails is gone anyway.
pub(crate) async fn announce(inner: &Arc<Inner>) {
    // Subscribe before sending, so that no close goes unseen.
    let mut link_events = inner.transport.subscribe();
    let (nodes, payload) = {
        let table = inner.membership.read();
        let payload = wire::encode(&SystemMessage::Gossip(wire::to_wire(&table.members())));
        (table.reachable_peers(), payload)
    };
    let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
    let mut outstanding: FxHashSet<String> = FxHashSet::default();
    let mut ids = Vec::new();
    let mut acks = FuturesUnordered::new();
    for node in nodes.into_iter().filter(|n| linked.contains(n.as_str())) {
        let env = Envelope::new(
            inner.system_of(&node),
            inner.reply_addr.clone(),
            PayloadFormat::Binary,
            payload.clone(),
        );
        let rx = inner.expect_answer(&env);
        ids.push(env.id);
        outstanding.insert(node.to_string());
        acks.push(async move {
            // Waits only while the link's queue is full.
            if inner
                .transport
                .send(node.as_str(), to_wire(env))
                .await
                .is_ok()
            {
                // An error means the pending entry is gone: shutdown.
                let _ = rx.await;
            }
            node
        });
    }
    let deadline = tokio::time::Instant::now() + inner.config.request_timeout;
    while !outstanding.is_empty() {
        tokio::select! {
            Some(node) = acks.next() => {
                outstanding.remove(node.as_str());
            }
            event = link_events.recv() => match event {
                Ok(LinkEvent::Down { peer, .. }) => {
                    outstanding.remove(&peer);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
                    outstanding.retain(|peer| linked.contains(peer));
                }
                Err(RecvError::Closed) => break,
            },
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(node = %inner.node, peers = ?outstanding, "leave announcement not acknowledged");
                break;
            }
        }
    }
    let mut pending = inner.pending.lock();
    for id in ids {
        pending.remove(&id);
    }
}
