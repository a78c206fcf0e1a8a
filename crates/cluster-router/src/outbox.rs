//! Per-node outboxes for envelopes that external clients send to other
//! nodes, and for the router's answers (bounces, Error replies) to other
//! nodes, so that one full or not-yet-up link never stalls the dispatch of
//! incoming traffic and no task is spawned per envelope.
//!
//! The dispatch task hands a client's envelope for node X to X's link with
//! `try_send`. When the link's queue is full, or the link is not up yet (a
//! member still being dialled), the envelope goes to X's [`Outbox`] instead,
//! and a forwarder task (one per outbox while it holds anything) feeds it
//! into the link with the awaiting send, waiting for the link to come up for
//! at most `link_wait` per outage. While an outbox is not empty, every later
//! client envelope for X joins it too, so a client's envelopes keep their
//! order.
//!
//! An outbox is bounded (the same `backlog_limit` / `backlog_bytes` as the
//! actor backlogs, plus a headroom for answers: see
//! [`BacklogLimits::for_kind`]). A full outbox never makes the dispatch task
//! wait: the client gets an Error envelope saying the link is congested,
//! and can retry. Only the outbox's forwarder waits, so a slow peer delays
//! only the clients (and answers) that go to it. An answer that cannot be
//! forwarded (the link stays down) is a dead letter: answers never bounce.
//!
//! Appenders create an outbox (and spawn its forwarder) under the outboxes'
//! lock; the forwarder removes its outbox under the same lock when it finds
//! it empty, so each outbox has exactly one forwarder.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Weak;

use bytes::Bytes;
use cluster_transport::{self as transport, SendError};
use parking_lot::Mutex;

use crate::addr::NodeId;
use crate::backlog::BacklogLimits;
use crate::envelope::Envelope;
use crate::error::RouterError;
use crate::header::to_wire;
use crate::route::error_chain;
use crate::router::Inner;
use crate::stats::bump;

/// Envelopes a forwarder takes from its outbox per lock.
const FORWARD_BATCH: usize = 256;

/// Where a queued envelope comes from: what to do when it cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An external client's envelope: the client gets an Error envelope.
    Client,
    /// An answer of this router (a bounce, an Error reply): a dead letter.
    Answer,
}

/// The queued envelopes for one node.
#[derive(Default)]
struct Outbox {
    envelopes: VecDeque<(Envelope, Origin)>,
    /// Payload bytes queued.
    bytes: usize,
}

/// The outboxes of all nodes that currently have one (node ids come from
/// gossip: keyed hashing).
#[derive(Default)]
pub(crate) struct Outboxes {
    queues: Mutex<HashMap<NodeId, Outbox>>,
}

impl Outboxes {
    /// Whether `node` has an outbox (anything for it must queue behind).
    pub(crate) fn is_waiting(&self, node: &NodeId) -> bool {
        self.queues.lock().contains_key(node)
    }

    /// Appends `env` to `node`'s outbox within `limits`, creating the outbox
    /// and its forwarder if there is none. Hands `env` back when the outbox
    /// is at its bound.
    pub(crate) fn append(
        &self,
        node: &NodeId,
        env: Envelope,
        origin: Origin,
        limits: BacklogLimits,
        inner: Weak<Inner>,
    ) -> Result<(), Box<Envelope>> {
        let mut queues = self.queues.lock();
        if let Some(outbox) = queues.get_mut(node) {
            if limits.reached(outbox.envelopes.len(), outbox.bytes) {
                return Err(Box::new(env));
            }
            outbox.bytes += env.payload.len();
            outbox.envelopes.push_back((env, origin));
            return Ok(());
        }
        let outbox = Outbox {
            bytes: env.payload.len(),
            envelopes: VecDeque::from([(env, origin)]),
        };
        queues.insert(node.clone(), outbox);
        drop(queues);
        tokio::spawn(forward(inner, node.clone()));
        Ok(())
    }

    /// Moves up to [`FORWARD_BATCH`] envelopes into `batch`; when there are
    /// none, removes the outbox and returns false (the forwarder ends).
    fn take(&self, node: &NodeId, batch: &mut VecDeque<(Envelope, Origin)>) -> bool {
        let mut queues = self.queues.lock();
        let Some(outbox) = queues.get_mut(node) else {
            return false;
        };
        let n = outbox.envelopes.len().min(FORWARD_BATCH);
        if n == 0 {
            queues.remove(node);
            return false;
        }
        for (env, origin) in outbox.envelopes.drain(..n) {
            outbox.bytes -= env.payload.len();
            batch.push_back((env, origin));
        }
        true
    }

    /// Drops everything queued (router shutdown); forwarders then end.
    pub(crate) fn clear(&self) {
        self.queues.lock().clear();
    }
}

/// Feeds `node`'s outbox into its link, in order, until it is empty.
async fn forward(weak: Weak<Inner>, node: NodeId) {
    let mut batch = VecDeque::with_capacity(FORWARD_BATCH);
    // End of the current wait for the link to come up, shared by every
    // envelope queued during one outage.
    let mut outage: Option<tokio::time::Instant> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.outboxes.take(&node, &mut batch) {
            return;
        }
        while let Some((env, origin)) = batch.pop_front() {
            if inner.stopped.load(Ordering::Acquire) {
                return;
            }
            inner.forward_one(&node, env, origin, &mut outage).await;
        }
    }
}

impl Inner {
    /// Routes a client's envelope for another node without waiting: onto
    /// the link if it takes it now, else into the node's outbox; what
    /// cannot be routed is answered with an Error envelope.
    pub(crate) fn forward_from_client(&self, env: Envelope) {
        let node = env.to.node().clone();
        let status = self.membership.read().get(&node).map(|m| m.status);
        let header = Envelope {
            payload: Bytes::new(),
            ..env.clone()
        };
        if let Some(status) = status.filter(|s| !s.is_reachable()) {
            return self
                .client_send_failed(&header, &RouterError::NodeUnavailable { node, status });
        }
        let env = if self.outboxes.is_waiting(&node) {
            env
        } else {
            match self.transport.try_send(node.as_str(), to_wire(env)) {
                Ok(()) => return bump(&self.counters.routed_remote, 1),
                Err(transport::TrySendError::NoLink(_)) if status.is_none() => {
                    return self.client_send_failed(&header, &RouterError::UnknownNode(node));
                }
                Err(transport::TrySendError::TooLarge(raw)) => {
                    let source = Box::new(SendError::TooLarge(raw));
                    return self.client_send_failed(&header, &RouterError::Link { node, source });
                }
                Err(other) => Envelope {
                    payload: other.into_inner().payload,
                    ..header.clone()
                },
            }
        };
        // Ordinary bounds whatever the kind: the headroom is for this
        // router's own answers, not for what clients send.
        let limits = self.backlog_limits();
        let queued = self
            .outboxes
            .append(&node, env, Origin::Client, limits, self.weak_self());
        if queued.is_err() {
            let reason = format!(
                "link to node {node} is congested: {} envelopes from clients already wait for it; retry later",
                limits.envelopes
            );
            bump(&self.counters.dead_letters, 1);
            tracing::debug!(to = %header.to, from = %header.from, %reason, "client envelope refused");
            self.post(header.error_reply(&reason));
        }
    }

    /// Sends one queued envelope, waiting for room on the link or for the
    /// link to come up (until the outage's deadline).
    async fn forward_one(
        &self,
        node: &NodeId,
        env: Envelope,
        origin: Origin,
        outage: &mut Option<tokio::time::Instant>,
    ) {
        let header = Envelope {
            payload: Bytes::new(),
            ..env.clone()
        };
        let mut raw = to_wire(env);
        loop {
            let notified = self.link_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.push_to_link(node, raw).await {
                Ok(()) => {
                    *outage = None;
                    return bump(&self.counters.routed_remote, 1);
                }
                Err(SendError::NoLink(back)) => raw = back,
                Err(source) => {
                    let err = RouterError::Link {
                        node: node.clone(),
                        source: Box::new(source),
                    };
                    return self.not_forwarded(&header, origin, &err);
                }
            }
            let reachable = self
                .membership
                .read()
                .get(node)
                .is_some_and(|m| m.status.is_reachable());
            let deadline =
                *outage.get_or_insert_with(|| tokio::time::Instant::now() + self.config.link_wait);
            if !reachable || tokio::time::timeout_at(deadline, notified).await.is_err() {
                let err = RouterError::Link {
                    node: node.clone(),
                    source: Box::new(SendError::NoLink(raw)),
                };
                return self.not_forwarded(&header, origin, &err);
            }
        }
    }

    /// A queued envelope could not be sent: a client's is answered with an
    /// Error envelope; an answer is a dead letter (answers never bounce).
    fn not_forwarded(&self, header: &Envelope, origin: Origin, err: &RouterError) {
        match origin {
            Origin::Client => self.client_send_failed(header, err),
            Origin::Answer => {
                bump(&self.counters.dead_letters, 1);
                let reason = error_chain(err);
                tracing::debug!(to = %header.to, kind = ?header.kind, %reason, "answer not forwarded");
            }
        }
    }

    /// Hands `raw` to `node`'s link, waiting only while its queue is full.
    pub(crate) async fn push_to_link(
        &self,
        node: &NodeId,
        raw: transport::Envelope,
    ) -> Result<(), SendError> {
        match self.transport.try_send(node.as_str(), raw) {
            Ok(()) => Ok(()),
            Err(transport::TrySendError::Full(raw)) => {
                self.transport.send(node.as_str(), raw).await
            }
            Err(transport::TrySendError::TooLarge(raw)) => Err(SendError::TooLarge(raw)),
            Err(other) => Err(SendError::NoLink(other.into_inner())),
        }
    }

    /// A client's envelope could not be routed: counted, and answered with
    /// an Error envelope (`header` is the envelope without its payload).
    fn client_send_failed(&self, header: &Envelope, err: &RouterError) {
        bump(&self.counters.dead_letters, 1);
        let reason = error_chain(err);
        tracing::debug!(client = %header.from, to = %header.to, %reason, "client envelope not routed");
        self.post(header.error_reply(&reason));
    }
}
