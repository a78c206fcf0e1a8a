//! Worker results that could not be delivered to their coordinator, kept
//! and retried: a coordinator that is unreachable for a moment (a lost
//! link, a pause, a partition that heals, a restart that resumes its
//! journal) still gets every result, and none waits out the job timeout.
//!
//! A result goes here instead of straight to its coordinator when the
//! coordinator's node is not Up (Suspect or Down: the send could stall the
//! forwarding of every other result), when earlier results for that node
//! are already waiting here, or when the send fails. A task retries each
//! node's results in order whenever the node is reachable (on its
//! membership events, and every [`RETRY_EVERY`]), and keeps them while it
//! is Down: a Down node may refute and come back. Results are dropped only
//! when the coordinator's node is confirmed gone (Left, or removed from
//! the member table after the grace period), or beyond the store's bounds
//! (oldest first). The coordinator drops any duplicate.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cluster_router::{Envelope, MemberStatus, NodeId, Router};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

/// Interval between two retry passes (also woken by membership events).
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(200);
/// Longest one retried send may wait (for a link, or for room in it).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(1);
/// How long results for a node unknown to the membership are kept (it may
/// not be gossiped yet).
const UNKNOWN_NODE_GRACE: Duration = Duration::from_secs(10);

/// Bounds of the store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryLimits {
    /// Most results kept (all coordinators together).
    pub(crate) envelopes: usize,
    /// Most payload bytes kept.
    pub(crate) bytes: usize,
}

impl Default for RetryLimits {
    fn default() -> Self {
        RetryLimits {
            envelopes: 65_536,
            bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct Pending {
    env: Envelope,
    since: Instant,
    /// Arrival order across nodes (the oldest is dropped first).
    seq: u64,
}

#[derive(Debug, Default)]
struct Store {
    by_node: FxHashMap<NodeId, VecDeque<Pending>>,
    envelopes: usize,
    bytes: usize,
    next_seq: u64,
}

impl Store {
    fn remove_front(&mut self, node: &NodeId) -> Option<Pending> {
        let queue = self.by_node.get_mut(node)?;
        let pending = queue.pop_front()?;
        if queue.is_empty() {
            self.by_node.remove(node);
        }
        self.envelopes -= 1;
        self.bytes -= pending.env.payload.len();
        Some(pending)
    }

    /// Drops the oldest result of the node with the oldest one.
    fn drop_oldest(&mut self) {
        let oldest = self
            .by_node
            .iter()
            .filter_map(|(n, q)| q.front().map(|p| (n, p.seq)))
            .min_by_key(|(_, seq)| *seq)
            .map(|(n, _)| n.clone());
        if let Some(node) = oldest {
            self.remove_front(&node);
        }
    }
}

/// The store of undelivered results, shared by the forwarder (which fills
/// it) and the retry task.
#[derive(Debug)]
pub(crate) struct PendingReplies {
    store: Mutex<Store>,
    limits: RetryLimits,
    wake: Notify,
}

impl PendingReplies {
    pub(crate) fn new(limits: RetryLimits) -> Arc<Self> {
        Arc::new(PendingReplies {
            store: Mutex::default(),
            limits,
            wake: Notify::new(),
        })
    }

    /// Keeps `env` for its addressee's node (dropping the oldest results
    /// when over the bounds) and wakes the retry task.
    pub(crate) fn keep(&self, env: Envelope) {
        let node = env.to.node().clone();
        let mut store = self.store.lock();
        let mut dropped = 0usize;
        while store.envelopes > 0
            && (store.envelopes + 1 > self.limits.envelopes
                || store.bytes + env.payload.len() > self.limits.bytes)
        {
            store.drop_oldest();
            dropped += 1;
        }
        store.envelopes += 1;
        store.bytes += env.payload.len();
        let seq = store.next_seq;
        store.next_seq += 1;
        store.by_node.entry(node).or_default().push_back(Pending {
            env,
            since: Instant::now(),
            seq,
        });
        drop(store);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "undelivered worker results over their bound: oldest dropped (their jobs are retried after their timeout)"
            );
        }
        self.wake.notify_one();
    }

    /// Whether results for `node` are waiting (later ones queue behind).
    pub(crate) fn has_pending(&self, node: &NodeId) -> bool {
        self.store.lock().by_node.contains_key(node)
    }

    /// How many results are waiting.
    pub(crate) fn len(&self) -> usize {
        self.store.lock().envelopes
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.store.lock().by_node.keys().cloned().collect()
    }

    fn front(&self, node: &NodeId) -> Option<(Envelope, Instant)> {
        let store = self.store.lock();
        let p = store.by_node.get(node)?.front()?;
        Some((p.env.clone(), p.since))
    }

    fn pop(&self, node: &NodeId) {
        self.store.lock().remove_front(node);
    }

    fn drop_node(&self, node: &NodeId) -> usize {
        let mut n = 0;
        let mut store = self.store.lock();
        while store.remove_front(node).is_some() {
            n += 1;
        }
        n
    }
}

/// Whether a result for a coordinator on `node` can be sent straight away:
/// local, or Up (or Leaving: it still serves while it drains).
pub(crate) fn deliverable_now(router: &Router, node: &NodeId) -> bool {
    node == router.node_id()
        || router
            .member(node)
            .is_some_and(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Leaving))
}

/// Retries the kept results until the pool (holder of the last strong
/// reference to `pending`) is gone.
pub(crate) async fn retry_loop(router: Router, pending: Weak<PendingReplies>) {
    let mut events = router.subscribe();
    loop {
        let Some(store) = pending.upgrade() else {
            return;
        };
        retry_pass(&router, &store).await;
        tokio::select! {
            () = store.wake.notified() => {}
            event = events.recv() => {
                if matches!(event, Err(RecvError::Closed)) {
                    return;
                }
            }
            () = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// One pass over every node with kept results.
async fn retry_pass(router: &Router, store: &PendingReplies) {
    for node in store.nodes() {
        let status = router.member(&node).map(|m| m.status);
        match status {
            Some(MemberStatus::Down) => continue,
            Some(MemberStatus::Left) => {
                let n = store.drop_node(&node);
                tracing::warn!(%node, results = n, "coordinator's node left: undelivered results dropped");
                continue;
            }
            None if node != *router.node_id() => {
                let stale = store
                    .front(&node)
                    .is_some_and(|(_, since)| since.elapsed() >= UNKNOWN_NODE_GRACE);
                if stale {
                    let n = store.drop_node(&node);
                    tracing::warn!(%node, results = n, "coordinator's node is gone from the member table: undelivered results dropped");
                }
                continue;
            }
            _ => {}
        }
        while let Some((env, _)) = store.front(&node) {
            match tokio::time::timeout(ATTEMPT_LIMIT, router.send(env)).await {
                Ok(Ok(())) => store.pop(&node),
                Ok(Err(err)) => {
                    tracing::debug!(%node, %err, "worker result still undeliverable");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use cluster_router::{ActorAddr, PayloadFormat};

    fn env(node: &str, bytes: usize) -> Envelope {
        Envelope::new(
            ActorAddr::parse(&format!("coordinator@{node}")).unwrap(),
            ActorAddr::parse("worker@here").unwrap(),
            PayloadFormat::Binary,
            Bytes::from(vec![0u8; bytes]),
        )
    }

    #[test]
    fn the_store_is_bounded_oldest_first_and_per_node_in_order() {
        let store = PendingReplies::new(RetryLimits {
            envelopes: 3,
            bytes: 100,
        });
        let a = NodeId::new("a").unwrap();
        let b = NodeId::new("b").unwrap();
        store.keep(env("a", 10));
        store.keep(env("b", 10));
        store.keep(env("a", 20));
        assert_eq!(store.len(), 3);
        assert!(store.has_pending(&a) && store.has_pending(&b));
        // A fourth: the oldest (a's first) goes.
        store.keep(env("b", 30));
        assert_eq!(store.len(), 3);
        assert_eq!(store.front(&a).unwrap().0.payload.len(), 20);
        // Bytes bound: 20 + 10 + 30 + 90 > 100 drops until it fits.
        store.keep(env("a", 90));
        assert_eq!(store.len(), 1);
        assert!(!store.has_pending(&b));
        // One result larger than the bound is still kept alone.
        store.keep(env("b", 500));
        assert_eq!(store.len(), 1);
        assert_eq!(store.drop_node(&b), 1);
        assert_eq!(store.len(), 0);
        store.pop(&a);
    }
}
