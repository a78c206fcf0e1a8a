//! Membership in motion: the probe loop (heartbeats and the failure
//! detector), the gossip loop, joining through seeds, graceful leave
//! announcements, and applying membership [`Changes`] (events, dials,
//! disconnects, indirect checks, refutations).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

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

/// Gossip rounds between two attempts to rejoin through the seeds while no
/// peer is reachable.
const REJOIN_EVERY: u64 = 10;
/// Longest a dial made to heal a lost link may take (a dial into a
/// partition hangs; the next one starts a fresh connection).
const HEAL_DIAL_LIMIT: Duration = Duration::from_secs(2);

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

/// Pushes this node's table at once to every reachable linked peer (after
/// a change of its own row, e.g. its tags: peers learn what it serves now
/// rather than at the next gossip round). Best effort, like every push.
pub(crate) fn push_to_peers(inner: &Inner) {
    let (nodes, payload) = {
        let table = inner.membership.read();
        let payload = wire::encode(&SystemMessage::Gossip(wire::to_wire(&table.members())));
        (table.reachable_peers(), payload)
    };
    let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
    for node in nodes.iter().filter(|n| linked.contains(n.as_str())) {
        send_system(inner, node, payload.clone());
    }
}

/// Publishes events, closes links for good, dials new members, and sends
/// what the membership asked for (indirect checks, rows to stale members,
/// this node's table to everyone after a refutation or a Down verdict).
pub(crate) fn apply(inner: &Arc<Inner>, changes: Changes) {
    for event in changes.events {
        match &event {
            MemberEvent::Updated(_) => {}
            // The transport has logged the loss itself.
            MemberEvent::LinkLost(m) => {
                tracing::debug!(node = %inner.node, member = %m.node, "link lost");
            }
            other => {
                let m = other.member();
                tracing::info!(node = %inner.node, member = %m.node, status = ?m.status, event = event_name(other), "membership change");
            }
        }
        // No subscriber is fine.
        let _ = inner.events.send(event);
    }
    for node in changes.disconnect {
        inner.transport.disconnect(node.as_str());
    }
    if !changes.connect.is_empty() || !changes.heal.is_empty() {
        let linked: FxHashSet<String> = inner.transport.peers().into_iter().collect();
        for (node, url) in changes.connect {
            if !linked.contains(node.as_str()) {
                dial(
                    inner,
                    node,
                    url,
                    inner.config.transport.handshake_timeout * 2,
                );
            }
        }
        let limit = HEAL_DIAL_LIMIT.min(inner.config.transport.handshake_timeout);
        for (node, url) in changes.heal {
            if !linked.contains(node.as_str()) {
                dial(inner, node, url, limit);
            }
        }
    }
    for (witness, target) in changes.checks {
        let payload = wire::encode(&SystemMessage::Check {
            target: target.to_string(),
        });
        send_system(inner, &witness, payload);
    }
    for row in changes.tell {
        let payload = wire::encode(&SystemMessage::Table(wire::to_wire(std::slice::from_ref(
            &row,
        ))));
        send_system(inner, &row.node, payload);
    }
    if changes.push_all {
        let (peers, payload) = {
            let table = inner.membership.read();
            let rows = wire::to_wire(&table.members());
            (
                table.reachable_peers(),
                wire::encode(&SystemMessage::Gossip(rows)),
            )
        };
        for node in &peers {
            send_system(inner, node, payload.clone());
        }
    }
}

fn event_name(event: &MemberEvent) -> &'static str {
    match event {
        MemberEvent::Up(_) => "up",
        MemberEvent::Suspect(_) => "suspect",
        MemberEvent::Down(_) => "down",
        MemberEvent::Leaving(_) => "leaving",
        MemberEvent::Left(_) => "left",
        MemberEvent::Removed(_) => "removed",
        MemberEvent::LinkLost(_) => "link_lost",
        _ => "updated",
    }
}

/// Dials `node` at `url` in the background (once at a time per node),
/// giving up after `limit`.
fn dial(inner: &Arc<Inner>, node: NodeId, url: String, limit: Duration) {
    if !inner.dialing.lock().insert(node.clone()) {
        return;
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let result = tokio::time::timeout(limit, inner.transport.connect(&url)).await;
        inner.dialing.lock().remove(&node);
        match result {
            Ok(Ok(peer)) if peer == node.as_str() => {}
            Ok(Ok(peer)) => {
                tracing::warn!(%node, %url, %peer, "dialled a member's URL, another node answered")
            }
            Ok(Err(err)) => tracing::debug!(%node, %url, %err, "cannot dial member"),
            Err(_) => tracing::debug!(%node, %url, "dial timed out"),
        }
    });
}

/// `err` and its causes, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
            let why = match tokio::time::timeout(limit, inner.transport.connect(url)).await {
                Ok(Ok(peer)) => match NodeId::new(&peer) {
                    Ok(node) => {
                        inner.seed_errors.lock().retain(|(u, _)| u != url);
                        push_table(inner, &node, Push::Join);
                        return true;
                    }
                    Err(_) => format!("the seed's node name {peer:?} is invalid"),
                },
                Ok(Err(err)) => {
                    let why = error_chain(&err);
                    tracing::warn!(node = %inner.node, seed = %url, err = %why, "cannot join through seed");
                    why
                }
                Err(_) => {
                    tracing::warn!(node = %inner.node, seed = %url, "seed did not answer in time");
                    format!("no answer within {limit:?}")
                }
            };
            let mut errors = inner.seed_errors.lock();
            errors.retain(|(u, _)| u != url);
            errors.push((url.clone(), why));
            false
        });
    join_all(attempts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

/// One gossip round: advance this node's heartbeat counter, push-pull the
/// table with a few random reachable peers, rejoin through the seeds when
/// alone.
fn gossip_round(inner: &Arc<Inner>, round: u64) {
    let (targets, rows, leaving) = {
        let mut table = inner.membership.write();
        table.beat();
        let targets = table.gossip_targets(inner.config.gossip_fanout, &mut rand::thread_rng());
        let leaving = matches!(
            table.me().status,
            MemberStatus::Leaving | MemberStatus::Left
        );
        (targets, wire::to_wire(&table.members()), leaving)
    };
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

/// One probe round: notice a pause of this node, send a heartbeat to every
/// linked reachable member, and run the failure detector.
fn probe_round(inner: &Arc<Inner>) {
    let (changes, peers, incarnation, leaving) = {
        let mut table = inner.membership.write();
        let credited = table.tick(Instant::now(), SystemTime::now());
        if !credited.is_zero() {
            tracing::warn!(
                node = %inner.node,
                paused_ms = credited.as_millis() as u64,
                "this node was not running for a while: its failure detector ignores that time and waits to hear from others"
            );
        }
        let changes = table.check(Instant::now(), &mut rand::thread_rng());
        let leaving = matches!(
            table.me().status,
            MemberStatus::Leaving | MemberStatus::Left
        );
        (
            changes,
            table.reachable_peers(),
            table.me().incarnation,
            leaving,
        )
    };
    let payload = wire::encode(&SystemMessage::Heartbeat { incarnation });
    for node in &peers {
        send_system(inner, node, payload.clone());
    }
    if leaving {
        // A leaving node neither suspects nor redials anyone.
        let changes = Changes {
            events: changes.events,
            disconnect: changes.disconnect,
            ..Changes::default()
        };
        apply(inner, changes);
    } else {
        apply(inner, changes);
    }
}

/// Runs probe rounds every `probe_interval` until the router is gone.
pub(crate) async fn probe_loop(weak: Weak<Inner>) {
    let Some(period) = weak.upgrade().map(|i| i.config.probe_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    // A late tick fires at once, so a pause shows as one long gap.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        probe_round(&inner);
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
