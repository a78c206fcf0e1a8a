//! Routing: local delivery, the remote path, bounces, and the two tasks that
//! consume the transport (incoming batches and link events).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use actor_core::{ActorRef, TrySendError as TellError};
use bytes::Bytes;
use cluster_transport::{self as transport, ClientId, Incoming, LinkEvent, SendError};
use tokio::sync::{broadcast, mpsc};

use crate::addr::{ActorAddr, NodeId};
use crate::backlog::{is_answer, Backlog};
use crate::client::{self, OwnJson};
use crate::envelope::{json_string, Envelope, EnvelopeKind, MessageId, PayloadFormat};
use crate::error::RouterError;
use crate::gossip;
use crate::header::{from_wire, to_wire, HeaderError};
use crate::outbox::Origin;
use crate::router::{Inner, CLIENT_PREFIX, REPLY};
use crate::stats::bump;

/// What [`Inner::deliver_local`] does when the mailbox is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Wait for room (a caller's own send: backpressure on that caller).
    Wait,
    /// Queue in the actor's backlog; bounce to the sender when the backlog
    /// is at its bound (the dispatch of incoming traffic, which never waits
    /// for a mailbox).
    Spill,
}

/// `err` and its causes, joined by ": ".
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Inner {
    /// See [`Router::send`](crate::Router::send).
    pub(crate) async fn send(&self, env: Envelope) -> Result<(), RouterError> {
        self.send_as(env, OwnJson::No).await
    }

    /// See [`Router::send_own_json`](crate::Router::send_own_json).
    pub(crate) async fn send_own_json(&self, env: Envelope) -> Result<(), RouterError> {
        self.send_as(env, OwnJson::Yes).await
    }

    /// [`send`](Self::send), saying whether the payload is JSON this
    /// process wrote itself (only a local client's frame makes use of it).
    async fn send_as(&self, env: Envelope, own: OwnJson) -> Result<(), RouterError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(RouterError::Stopped);
        }
        if *env.to.node() == self.node {
            self.deliver_local(env, Delivery::Wait, own).await;
            Ok(())
        } else {
            self.send_remote(env).await
        }
    }

    /// Delivers to a local mailbox, the reply mailbox or a local client;
    /// bounces what cannot be delivered. `mode` says what to do when the
    /// mailbox is full; `own` is passed on to a local client's frame.
    pub(crate) async fn deliver_local(&self, env: Envelope, mode: Delivery, own: OwnJson) {
        let Some((actor, env)) = self.deliver_now(env, mode, own) else {
            return;
        };
        match actor.tell(env).await {
            Ok(()) => bump(&self.counters.routed_local, 1),
            Err(err) => self.actor_gone(err.into_inner()),
        }
    }

    /// The part of [`Inner::deliver_local`] that never waits. Returns the
    /// mailbox and the envelope only when `mode` is [`Delivery::Wait`] and
    /// the mailbox is full (the caller then waits for room); `None` once the
    /// envelope is delivered, queued in the backlog or bounced, which is
    /// always the case with [`Delivery::Spill`].
    fn deliver_now(
        &self,
        env: Envelope,
        mode: Delivery,
        own: OwnJson,
    ) -> Option<(ActorRef<Envelope>, Envelope)> {
        if client::sent_by_client(&env) && !self.takes_from_clients(&env) {
            self.refuse_client(env);
            return None;
        }
        let name = env.to.actor().as_str();
        if name == REPLY {
            self.complete(env);
            return None;
        }
        if let Some(id) = name.strip_prefix(CLIENT_PREFIX) {
            let client = id.parse().ok().map(ClientId::new);
            self.deliver_to_client(client, env, own);
            return None;
        }
        let actors = self.actors.read();
        let Some(slot) = actors.get(name) else {
            drop(actors);
            let reason = format!("no actor named {} on node {}", env.to.actor(), self.node);
            self.bounce(env, &reason);
            return None;
        };
        // Nothing may overtake what waits in the backlog (unless the caller
        // waits in line itself).
        let env = if mode == Delivery::Wait || slot.backlog.is_empty() {
            match slot.actor.try_tell(env) {
                Ok(()) => {
                    bump(&self.counters.routed_local, 1);
                    return None;
                }
                Err(TellError::Full(env)) => env,
                Err(TellError::Closed(env)) => {
                    drop(actors);
                    self.actor_gone(env);
                    return None;
                }
            }
        } else {
            env
        };
        if mode == Delivery::Wait {
            return Some((slot.actor.clone(), env));
        }
        // Spill never waits. Answers have headroom beyond the backlog's
        // bound, so ordinary traffic that filled it does not crowd them out.
        if slot.backlog.is_full_for(env.kind) {
            let queued = slot.backlog.len();
            drop(actors);
            self.overflow(env, queued);
        } else {
            bump(&self.counters.routed_local, 1);
            slot.backlog.push(&slot.actor, env, self);
        }
        None
    }

    /// The addressee's backlog is at its bound: bounce `env` to its sender
    /// (never wait: see the `backlog` module), with a rate-limited warning.
    ///
    /// An answer (Undeliverable, Error) only gets here beyond its headroom
    /// (see [`BacklogLimits::for_kind`](crate::backlog::BacklogLimits::for_kind)):
    /// it cannot bounce, so it is dropped, as a dead letter with a warning.
    fn overflow(&self, env: Envelope, queued: usize) {
        if is_answer(env.kind) {
            bump(&self.counters.dead_letters, 1);
            if let Some(dropped) = self.overflow_warnings.record(Instant::now()) {
                tracing::warn!(
                    node = %self.node,
                    actor = %env.to.actor(),
                    queued,
                    dropped,
                    "overflow queue beyond its headroom for answers: answer dropped"
                );
            }
            return;
        }
        bump(&self.counters.overflow_bounces, 1);
        let reason = format!(
            "mailbox of {} on {} is full ({queued} queued)",
            env.to.actor(),
            self.node
        );
        if let Some(bounced) = self.overflow_warnings.record(Instant::now()) {
            tracing::warn!(
                node = %self.node,
                actor = %env.to.actor(),
                queued,
                bounced,
                "mailbox full: bouncing incoming envelopes to their senders"
            );
        }
        self.bounce(env, &reason);
    }

    /// The addressee's mailbox is closed: forget it and bounce.
    pub(crate) fn actor_gone(&self, env: Envelope) {
        {
            let mut actors = self.actors.write();
            if actors
                .get(env.to.actor())
                .is_some_and(|s| !s.actor.is_alive())
            {
                actors.remove(env.to.actor());
            }
        }
        let reason = format!("actor {} has stopped", env.to);
        self.bounce(env, &reason);
    }

    /// Sends to another node's link (waiting for the link of a member that
    /// was just learned and is still being dialled).
    async fn send_remote(&self, env: Envelope) -> Result<(), RouterError> {
        let node = env.to.node().clone();
        // A node not (yet) in the table but with an authenticated link is
        // routable: it just sent us something before gossip told us about it.
        let status = self.membership.read().get(&node).map(|m| m.status);
        if let Some(status) = status.filter(|s| !s.is_reachable()) {
            return Err(RouterError::NodeUnavailable { node, status });
        }
        // Fast path without waiting; the awaiting send only when the queue is full.
        let sent = match self.transport.try_send(node.as_str(), to_wire(env)) {
            Ok(()) => Ok(()),
            Err(transport::TrySendError::NoLink(env)) => Err(SendError::NoLink(env)),
            Err(other) => self.transport.send(node.as_str(), other.into_inner()).await,
        };
        match sent {
            Ok(()) => {
                bump(&self.counters.routed_remote, 1);
                Ok(())
            }
            Err(SendError::NoLink(_)) if status.is_none() => Err(RouterError::UnknownNode(node)),
            Err(SendError::NoLink(env)) => self.send_when_linked(node, env).await,
            Err(source) => Err(RouterError::Link {
                node,
                source: Box::new(source),
            }),
        }
    }

    async fn send_when_linked(
        &self,
        node: NodeId,
        mut env: transport::Envelope,
    ) -> Result<(), RouterError> {
        let deadline = tokio::time::Instant::now() + self.config.link_wait;
        loop {
            let notified = self.link_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.transport.send(node.as_str(), env).await {
                Ok(()) => {
                    bump(&self.counters.routed_remote, 1);
                    return Ok(());
                }
                Err(SendError::NoLink(back)) => env = back,
                Err(source) => {
                    return Err(RouterError::Link {
                        node,
                        source: Box::new(source),
                    })
                }
            }
            let reachable = self
                .membership
                .read()
                .get(&node)
                .is_some_and(|m| m.status.is_reachable());
            if !reachable || tokio::time::timeout_at(deadline, notified).await.is_err() {
                let source = Box::new(SendError::NoLink(env));
                return Err(RouterError::Link { node, source });
            }
        }
    }

    /// Completes a pending [`Router::request`](crate::Router::request), if
    /// `env` comes from the request's addressee; an envelope from anyone
    /// else with that correlation is dropped and counted (the request keeps
    /// waiting for its real answer).
    fn complete(&self, env: Envelope) {
        let waiter = {
            let mut pending = self.pending.lock();
            let Some(id) = env.correlation_id else {
                drop(pending);
                return bump(&self.counters.late_replies, 1);
            };
            match pending.get(&id) {
                Some(p) if p.from != env.from => {
                    drop(pending);
                    bump(&self.counters.forged_answers, 1);
                    tracing::warn!(from = %env.from, kind = ?env.kind, "answer from another address than the request's dropped");
                    return;
                }
                _ => pending.remove(&id),
            }
        };
        match waiter {
            Some(p) => {
                if p.tx.send(env).is_err() {
                    bump(&self.counters.late_replies, 1);
                }
            }
            None => bump(&self.counters.late_replies, 1),
        }
    }

    /// Counts a dead letter and sends the Undeliverable answer, unless `env`
    /// is itself an Undeliverable or Error (never bounced: no loops).
    pub(crate) fn bounce(&self, env: Envelope, reason: &str) {
        bump(&self.counters.dead_letters, 1);
        tracing::debug!(to = %env.to, from = %env.from, kind = ?env.kind, reason, "dead letter");
        if let Some(answer) = env.undeliverable(reason) {
            bump(&self.counters.undeliverable_sent, 1);
            self.post(answer);
        }
    }

    /// Routes `env` without waiting: the non-blocking path used for bounces
    /// and system replies. Where a link is full the envelope waits in the
    /// node's outbox; a full mailbox spills into the actor's backlog (with
    /// headroom for answers); what cannot be delivered is bounced.
    pub(crate) fn post(&self, env: Envelope) {
        if *env.to.node() != self.node {
            self.post_remote(env);
            return;
        }
        let waiting = self.deliver_now(env, Delivery::Spill, OwnJson::No);
        debug_assert!(waiting.is_none(), "Delivery::Spill never waits");
    }

    /// The remote half of [`Inner::post`]: straight onto the link when it
    /// takes the envelope now, else into the node's outbox (behind anything
    /// already queued there, so answers keep their order), whose forwarder
    /// waits for room. Never spawns a task per envelope, never waits.
    fn post_remote(&self, env: Envelope) {
        let node = env.to.node().clone();
        let status = self.membership.read().get(&node).map(|m| m.status);
        if status.is_some_and(|s| !s.is_reachable()) {
            bump(&self.counters.dead_letters, 1);
            tracing::debug!(to = %env.to, "answer to an unreachable node dropped");
            return;
        }
        let env = if self.outboxes.is_waiting(&node) {
            env
        } else {
            let header = Envelope {
                payload: Bytes::new(),
                ..env.clone()
            };
            match self.transport.try_send(node.as_str(), to_wire(env)) {
                Ok(()) => return bump(&self.counters.routed_remote, 1),
                // Full, or a known member whose link is not up yet.
                Err(transport::TrySendError::Full(raw))
                | Err(transport::TrySendError::NoLink(raw))
                    if status.is_some() =>
                {
                    Envelope {
                        payload: raw.payload,
                        ..header
                    }
                }
                Err(err) => {
                    bump(&self.counters.dead_letters, 1);
                    tracing::debug!(%node, %err, "answer dropped");
                    return;
                }
            }
        };
        let limits = self.backlog_limits().for_kind(env.kind);
        let queued = self
            .outboxes
            .append(&node, env, Origin::Answer, limits, self.weak_self());
        if let Err(env) = queued {
            bump(&self.counters.dead_letters, 1);
            tracing::warn!(%node, to = %env.to, kind = ?env.kind, "outbox full: answer dropped");
        }
    }

    /// Handles one incoming batch from a node, or a frame from a client.
    async fn dispatch(self: &Arc<Self>, incoming: Incoming) {
        match incoming {
            Incoming::Node { peer, envelopes } => self.dispatch_from_node(&peer, envelopes).await,
            Incoming::Client { id, text } => self.dispatch_from_client(id, &text).await,
            Incoming::ClientGone { id } => {
                tracing::debug!(node = %self.node, client = %id, "client gone");
                if let Some(addr) = self.client_addr(id) {
                    self.announce_departure(addr);
                }
            }
        }
    }

    /// Tells the subscribers that `client` is gone, once everything it
    /// sent is in its actors' mailboxes: its frames were dispatched
    /// already (the departure comes after them on the incoming channel),
    /// but those that met a full mailbox wait in a backlog, and the
    /// departure must not overtake them (a worker's last result would be
    /// failed as "disconnected"). Nobody subscribed is not an error.
    fn announce_departure(&self, client: ActorAddr) {
        let waiting: Vec<(Arc<Backlog>, u64)> = self
            .actors
            .read()
            .values()
            .filter(|slot| slot.client_facing && !slot.backlog.is_empty())
            .map(|slot| (Arc::clone(&slot.backlog), slot.backlog.mark()))
            .collect();
        if waiting.is_empty() {
            let _ = self.client_departures.send(client);
            return;
        }
        let departures = self.client_departures.clone();
        tokio::spawn(async move {
            for (backlog, mark) in waiting {
                backlog.passed(mark).await;
            }
            let _ = departures.send(client);
        });
    }

    async fn dispatch_from_node(&self, peer: &str, envelopes: Vec<transport::Envelope>) {
        let Ok(peer) = NodeId::new(peer) else {
            // The transport accepted a name that is no node id: nothing it
            // sends can be from a valid address.
            bump(&self.counters.bad_senders, envelopes.len() as u64);
            tracing::warn!(
                peer,
                "envelopes from a peer whose name is not a node id dropped"
            );
            return;
        };
        // A batch from the peer is a sign of life (once per batch, not
        // per envelope): its heartbeats may be stuck behind a flood.
        self.membership.write().heard_from(&peer, Instant::now());
        let known = [&self.node, &peer];
        for raw in envelopes {
            let env = match from_wire(raw, &known) {
                Ok(env) => env,
                Err(err) => {
                    self.malformed(err);
                    continue;
                }
            };
            // A node speaks only for its own actors and clients.
            if *env.from.node() != peer {
                bump(&self.counters.bad_senders, 1);
                tracing::warn!(%peer, from = %env.from, to = %env.to, "envelope claiming another node's sender dropped");
                continue;
            }
            if *env.to.node() != self.node {
                let reason = format!("{} arrived at node {} (misrouted)", env.to, self.node);
                self.bounce(env, &reason);
                continue;
            }
            self.deliver_local(env, Delivery::Spill, OwnJson::No).await;
        }
    }

    /// An envelope whose header cannot be read: counted, and answered with
    /// an Error when the sender is known.
    fn malformed(&self, err: HeaderError) {
        bump(&self.counters.dead_letters, 1);
        tracing::warn!(err = %error_chain(&err), "malformed envelope");
        if let HeaderError::To { from, id, kind, .. } = &err {
            if *kind == EnvelopeKind::Message {
                let answer = Envelope {
                    to: from.clone(),
                    from: self.system_addr.clone(),
                    id: MessageId::next(),
                    correlation_id: Some(*id),
                    kind: EnvelopeKind::Error,
                    format: PayloadFormat::Json,
                    payload: json_string(&error_chain(&err)),
                };
                self.post(answer);
            }
        }
    }

    fn on_link_event(self: &Arc<Self>, event: LinkEvent) {
        match event {
            LinkEvent::Up { peer } => {
                self.link_up.notify_waiters();
                if let Ok(node) = NodeId::new(&peer) {
                    gossip::push_table(self, &node, gossip::Push::Gossip);
                }
            }
            LinkEvent::Down { peer, reason } => {
                let clean = reason.is_clean();
                tracing::debug!(node = %self.node, %peer, %reason, clean, "link down");
                if let Ok(node) = NodeId::new(&peer) {
                    let changes = self.membership.write().link_down(&node, Instant::now());
                    gossip::apply(self, changes);
                }
            }
            LinkEvent::ClientConnected { id } => self.welcome(id),
            // Departures are announced in band (`Incoming::ClientGone`).
            _ => {}
        }
    }
}

/// Consumes the transport's incoming batches and dispatches them, one at a
/// time, to local mailboxes. It never waits for a mailbox: a full mailbox
/// spills into that actor's backlog, and a backlog at its bound bounces the
/// envelope to its sender (see the `backlog` module).
pub(crate) async fn incoming_loop(weak: Weak<Inner>, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(batch) = incoming.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        inner.dispatch(batch).await;
    }
}

/// Consumes link events: wakes senders waiting for a link, suspects nodes
/// whose link dropped, welcomes clients.
pub(crate) async fn link_event_loop(weak: Weak<Inner>, mut events: broadcast::Receiver<LinkEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "router lagged behind link events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = weak.upgrade() else { return };
        inner.on_link_event(event);
    }
}
