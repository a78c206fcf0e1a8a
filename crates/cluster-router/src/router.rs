//! The [`Router`] handle: start, registration, sending, requests, membership
//! queries, leave and shutdown.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actor_core::{ActorRef, SpawnOptions};
use bytes::Bytes;
use cluster_transport::{Transport, TransportStats};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::HashSet;
use tokio::sync::{broadcast, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::addr::{ActorAddr, ActorName, NodeId};
use crate::backlog::{BacklogLimits, OverflowWarnings, Slot};
use crate::config::RouterConfig;
use crate::detector::DetectorTiming;
use crate::envelope::{Envelope, EnvelopeKind, MessageId, PayloadFormat};
use crate::error::RouterError;
use crate::member::{Load, Member, MemberEvent, MemberStatus};
use crate::membership::{Membership, MembershipTiming};
use crate::outbox::Outboxes;
use crate::stats::{Counters, RouterStats};
use crate::system::SystemActor;
use crate::{gossip, route};

/// Name of the router's own actor on every node.
pub(crate) const SYSTEM: &str = "system";
/// Name of the per-router reply mailbox used by [`Router::request`].
pub(crate) const REPLY: &str = "_reply";
/// Prefix of external clients' temporary actor names (`client-<id>`).
pub(crate) const CLIENT_PREFIX: &str = "client-";

/// Capacity of the member event broadcast.
const EVENT_CAPACITY: usize = 1024;

/// State shared by the handle, the system actor and the background tasks.
pub(crate) struct Inner {
    /// The last failure of each seed that could not be joined (seed URL,
    /// why), cleared for a seed once it answers.
    pub(crate) seed_errors: Mutex<Vec<(String, String)>>,
    pub(crate) node: NodeId,
    pub(crate) url: String,
    pub(crate) config: RouterConfig,
    pub(crate) transport: Transport,
    /// Keyed by names registered here (lookups of names that remote
    /// parties choose insert nothing): fast unkeyed hashing.
    pub(crate) actors: RwLock<FxHashMap<ActorName, Slot>>,
    pub(crate) membership: RwLock<Membership>,
    pub(crate) events: broadcast::Sender<MemberEvent>,
    /// The addresses of external clients that disconnected (see
    /// [`Router::subscribe_client_departures`]).
    pub(crate) client_departures: broadcast::Sender<ActorAddr>,
    /// Requests awaiting an answer on `_reply`, by their (random) id.
    pub(crate) pending: Mutex<FxHashMap<MessageId, Pending>>,
    pub(crate) counters: Counters,
    pub(crate) system_addr: ActorAddr,
    pub(crate) reply_addr: ActorAddr,
    /// Woken on every link Up, for senders waiting for a fresh link.
    pub(crate) link_up: Notify,
    /// Nodes with a dial in progress (node ids come from gossip: keyed hashing).
    pub(crate) dialing: Mutex<HashSet<NodeId>>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) stopped: AtomicBool,
    /// Client envelopes waiting for other nodes' links (see `outbox`).
    pub(crate) outboxes: Outboxes,
    /// Rate limit of the "mailbox full" warnings.
    pub(crate) overflow_warnings: OverflowWarnings,
    /// Process-local companions of this node's actors, by type (see
    /// [`Router::set_local`]).
    pub(crate) locals: RwLock<FxHashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// This `Inner` itself (for the tasks it spawns).
    weak: Weak<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
            task.abort();
        }
        if !self.stopped.load(Ordering::Acquire) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let transport = self.transport.clone();
                rt.spawn(async move { transport.shutdown().await });
            }
        }
    }
}

/// Routes [`Envelope`]s to local actors, peer nodes and external clients,
/// and keeps the cluster membership. `Clone` is cheap (an `Arc` inside).
///
/// See the [crate documentation](crate) for a guide.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("node", &self.inner.node)
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

fn incarnation_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}

/// A request awaiting its answer on `_reply`.
pub(crate) struct Pending {
    /// The addressee: the only sender whose answer (of any kind) is taken.
    pub(crate) from: ActorAddr,
    pub(crate) tx: oneshot::Sender<Envelope>,
}

/// Drops the pending entry of an abandoned request.
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: MessageId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.id);
    }
}

impl Router {
    /// Binds the transport, starts the `system` actor, gossip and dispatch,
    /// and makes a first attempt to join through the seeds (later attempts
    /// run in the background until a peer answers).
    ///
    /// # Errors
    ///
    /// [`RouterError::InvalidConfig`] for unusable timings,
    /// [`RouterError::Addr`] for a bad node name,
    /// [`RouterError::Transport`] when the listener cannot be bound.
    pub async fn start(config: RouterConfig) -> Result<Router, RouterError> {
        config.validate().map_err(RouterError::InvalidConfig)?;
        let node = NodeId::new(&config.node_name)?;
        let transport = Transport::bind(config.transport_config())
            .await
            .map_err(RouterError::Transport)?;
        let incoming = transport.take_incoming().ok_or(RouterError::Stopped)?;
        let link_events = transport.subscribe();
        let url = transport.url();
        let me = Member {
            node: node.clone(),
            url: url.clone(),
            incarnation: incarnation_now(),
            status: MemberStatus::Up,
            heartbeat: 0,
            tags: config.tags.clone(),
            load: Load::default(),
        };
        let timing = MembershipTiming {
            detector: DetectorTiming {
                probe_interval: config.probe_interval,
                suspect_after: config.suspect_after,
                down_after: config.down_after,
            },
            indirect_checks: config.indirect_checks,
            give_up_after: config.give_up_after,
            remove_after: config.remove_after,
        };
        let system_name = ActorName::new(SYSTEM)?;
        let reply_addr = ActorAddr::new(ActorName::new(REPLY)?, node.clone());
        let inner = Arc::new_cyclic(|weak| Inner {
            weak: weak.clone(),
            system_addr: ActorAddr::new(system_name.clone(), node.clone()),
            reply_addr,
            membership: RwLock::new(Membership::new(me, timing, Instant::now())),
            node,
            url,
            transport,
            actors: RwLock::default(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            client_departures: broadcast::channel(EVENT_CAPACITY).0,
            pending: Mutex::default(),
            counters: Counters::default(),
            link_up: Notify::new(),
            dialing: Mutex::default(),
            tasks: Mutex::default(),
            stopped: AtomicBool::new(false),
            outboxes: Outboxes::default(),
            overflow_warnings: OverflowWarnings::default(),
            locals: RwLock::default(),
            seed_errors: Mutex::default(),
            config,
        });
        let opts = SpawnOptions::default().capacity(inner.config.system_mailbox);
        let system = actor_core::spawn_with(SYSTEM, SystemActor::new(&inner), opts)
            .map_err(RouterError::Actor)?;
        // Its JSON commands (ping, members, info) are read-only and open to
        // clients; its binary gossip is not (clients can only send JSON).
        let slot = Slot::new(system, inner.backlog_limits(), true);
        inner.actors.write().insert(system_name, slot);
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        inner.tasks.lock().extend([
            tokio::spawn(route::incoming_loop(weak.clone(), incoming)),
            tokio::spawn(route::link_event_loop(weak.clone(), link_events)),
            tokio::spawn(gossip::gossip_loop(weak.clone())),
            tokio::spawn(gossip::probe_loop(weak)),
        ]);
        gossip::join_seeds(&inner).await;
        tracing::info!(node = %inner.node, url = %inner.url, "router started");
        Ok(Router { inner })
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node
    }

    /// Why the seeds could not be joined: the last failure of each seed
    /// that has not answered yet (URL, reason such as a refused handshake
    /// for a different cluster secret). Empty once every seed answered.
    pub fn seed_errors(&self) -> Vec<(String, String)> {
        self.inner.seed_errors.lock().clone()
    }

    /// This node's WebSocket URL (what other nodes use as a seed).
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// The address `name@<this node>`.
    ///
    /// # Errors
    ///
    /// [`RouterError::Addr`] when `name` is not a valid actor name.
    pub fn addr(&self, name: &str) -> Result<ActorAddr, RouterError> {
        Ok(ActorAddr::new(
            ActorName::new(name)?,
            self.inner.node.clone(),
        ))
    }

    /// Registers a local actor under `name`; envelopes from the cluster's
    /// nodes to `name@<this node>` go to its mailbox. External clients cannot
    /// address it (see [`register_client_facing`](Self::register_client_facing)).
    /// Returns its full address.
    ///
    /// # Errors
    ///
    /// [`RouterError::Addr`] for an invalid name,
    /// [`RouterError::ReservedName`] for `system`, `_reply` and `client-*`,
    /// [`RouterError::NameTaken`] when a live actor already has the name.
    pub fn register(
        &self,
        name: &str,
        mailbox: ActorRef<Envelope>,
    ) -> Result<ActorAddr, RouterError> {
        self.register_slot(name, mailbox, false)
    }

    /// Like [`register`](Self::register), and external clients may address
    /// the actor too: it is part of the cluster's public interface (the job
    /// coordinator is). Every envelope from a client is a JSON Message whose
    /// `from` is the client's address and whose ids the router chose; an
    /// actor answers it like any other (see `docs/wire.md`).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_client_facing(
        &self,
        name: &str,
        mailbox: ActorRef<Envelope>,
    ) -> Result<ActorAddr, RouterError> {
        self.register_slot(name, mailbox, true)
    }

    fn register_slot(
        &self,
        name: &str,
        mailbox: ActorRef<Envelope>,
        client_facing: bool,
    ) -> Result<ActorAddr, RouterError> {
        let actor = ActorName::new(name)?;
        if is_reserved(name) {
            return Err(RouterError::ReservedName(name.to_owned()));
        }
        let slot = Slot::new(mailbox, self.inner.backlog_limits(), client_facing);
        let mut actors = self.inner.actors.write();
        if actors.get(&actor).is_some_and(|s| s.actor.is_alive()) {
            return Err(RouterError::NameTaken(name.to_owned()));
        }
        actors.insert(actor.clone(), slot);
        Ok(ActorAddr::new(actor, self.inner.node.clone()))
    }

    /// Removes a local actor's registration (reserved names are ignored).
    pub fn unregister(&self, name: &str) {
        if !is_reserved(name) {
            self.inner.actors.write().remove(name);
        }
    }

    /// Names of the registered local actors (the `system` actor included), sorted.
    pub fn local_actors(&self) -> Vec<String> {
        self.inner.local_actor_names()
    }

    /// Routes `env`: to a local mailbox without touching the network (waits
    /// while the mailbox is full), or to the link of the node in `env.to`
    /// (waits while the link's queue is full).
    ///
    /// A message for an actor that does not exist at its destination comes
    /// back to `env.from` as an [`EnvelopeKind::Undeliverable`] envelope
    /// (and is counted as a dead letter); `send` itself still succeeds.
    ///
    /// # Errors
    ///
    /// [`RouterError::UnknownNode`] when the node is not a member and has no
    /// link to this node,
    /// [`RouterError::NodeUnavailable`] when it is Down or Left,
    /// [`RouterError::Link`] when no link came up within
    /// [`RouterConfig::link_wait`] or the envelope is over the frame limit,
    /// [`RouterError::Stopped`] after shutdown.
    ///
    /// # Cancel safety
    ///
    /// Cancelling while waiting for queue space drops the envelope unsent.
    pub async fn send(&self, env: Envelope) -> Result<(), RouterError> {
        self.inner.send(env).await
    }

    /// [`send`](Self::send) for a [`PayloadFormat::Json`] payload that this
    /// process serialized from its own types: valid JSON, nested at most a
    /// few levels (no foreign JSON embedded raw). To a local client that
    /// takes raw payloads it goes into the frame as it is, where
    /// [`send`](Self::send) would parse it first (to check that it is one
    /// JSON value the client's parser can read); to anyone else this is
    /// [`send`](Self::send). A payload that breaks the promise reaches such
    /// a client as an unreadable frame, so only code that wrote the JSON
    /// itself may use this.
    ///
    /// # Errors
    ///
    /// Those of [`send`](Self::send).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_own_json(&self, env: Envelope) -> Result<(), RouterError> {
        self.inner.send_own_json(env).await
    }

    /// Sends `payload` to `to` from this router's reply mailbox and waits for
    /// the answer (the envelope from `to` whose `correlation_id` is the
    /// request's id), whatever its kind: check [`Envelope::kind`] for
    /// [`EnvelopeKind::Undeliverable`] or [`EnvelopeKind::Error`]. An
    /// envelope with that correlation from anyone else is not taken as the
    /// answer (it is dropped and counted in
    /// [`RouterStats::forged_answers`](crate::RouterStats::forged_answers)).
    ///
    /// # Errors
    ///
    /// The errors of [`Router::send`], and [`RouterError::Timeout`] when no
    /// answer arrives within `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling abandons the request; a late answer is counted and dropped.
    pub async fn request(
        &self,
        to: ActorAddr,
        format: PayloadFormat,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Envelope, RouterError> {
        let env = Envelope::new(to.clone(), self.inner.reply_addr.clone(), format, payload);
        let rx = self.inner.expect_answer(&env);
        let _guard = PendingGuard {
            inner: &self.inner,
            id: env.id,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.inner.send(env)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(RouterError::Timeout { to, after: timeout }),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(RouterError::Stopped),
            Err(_) => Err(RouterError::Timeout { to, after: timeout }),
        }
    }

    /// Round-trip time of a `{"cmd":"ping"}` to `system@node`.
    ///
    /// # Errors
    ///
    /// The errors of [`Router::request`] (with
    /// [`RouterConfig::request_timeout`]), or [`RouterError::Rejected`] when
    /// the answer is not a pong.
    pub async fn ping(&self, node: &NodeId) -> Result<Duration, RouterError> {
        let to = ActorAddr::new(self.inner.system_addr.actor().clone(), node.clone());
        let started = Instant::now();
        let payload = Bytes::from_static(br#"{"cmd":"ping"}"#);
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .request(to.clone(), PayloadFormat::Json, payload, timeout)
            .await?;
        let elapsed = started.elapsed();
        rejected(&to, &reply)?;
        Ok(elapsed)
    }

    /// Every member, this node included, whatever its status, sorted by node id.
    pub fn members(&self) -> Vec<Member> {
        self.inner.membership.read().members()
    }

    /// The members that are [`MemberStatus::Up`], **this node included**
    /// (while it is Up), sorted by node id: the nodes work can be sent to.
    pub fn get_all_peers(&self) -> Vec<Member> {
        self.inner.membership.read().up_members()
    }

    /// The row of one member.
    pub fn member(&self, node: &NodeId) -> Option<Member> {
        self.inner.membership.read().get(node).cloned()
    }

    /// How many times the link to `node` dropped while it was reachable
    /// (each time a [`MemberEvent::LinkLost`]) since it entered this node's
    /// table; 0 for an unknown node. A subscriber whose subscription lagged
    /// compares it with what it saw to find the losses it missed.
    pub fn link_losses(&self, node: &NodeId) -> u64 {
        self.inner.membership.read().link_losses(node)
    }

    /// Subscribes to membership events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.inner.events.subscribe()
    }

    /// Subscribes to the departures of this node's external clients from
    /// now on: the address (`client-<id>@<this node>`) of each client whose
    /// connection closed. Actors that serve a client for longer than one
    /// request (external workers) release what it held. A receiver that
    /// lags (more than 1,024 departures unread) misses the oldest ones.
    pub fn subscribe_client_departures(&self) -> broadcast::Receiver<ActorAddr> {
        self.inner.client_departures.subscribe()
    }

    /// Publishes this node's load; it reaches the others with the next
    /// gossip round.
    pub fn set_load(&self, load: Load) {
        self.inner.membership.write().set_load(load);
    }

    /// Replaces this node's tags (e.g. `gpu`, `kind:sha256`); a change is
    /// pushed at once to every reachable linked peer (and gossiped as
    /// usual), so a pool that starts or drains is seen within a round trip.
    /// Subscribers here see `Updated`.
    pub fn set_tags(&self, tags: Vec<String>) {
        let changes = self.inner.membership.write().set_tags(tags);
        let changed = !changes.events.is_empty();
        gossip::apply(&self.inner, changes);
        if changed {
            gossip::push_to_peers(&self.inner);
        }
    }

    /// Publishes a process-local companion of an actor of this node, one
    /// per type `T` (replacing the previous one): a value that other actors
    /// of the same process look up with [`local`](Self::local), e.g. a typed
    /// handle that skips envelopes between two actors that live side by
    /// side. The router only keeps it; it never crosses the network.
    /// Returns the value it replaced.
    pub fn set_local<T: Any + Send + Sync>(&self, value: Arc<T>) -> Option<Arc<T>> {
        let old = self.inner.locals.write().insert(TypeId::of::<T>(), value);
        old.and_then(|old| old.downcast().ok())
    }

    /// The companion of type `T` published with [`set_local`](Self::set_local).
    pub fn local<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let value = self.inner.locals.read().get(&TypeId::of::<T>()).cloned()?;
        value.downcast().ok()
    }

    /// Withdraws the companion of type `T` if it is still `value` (a later
    /// one, published by a successor, is kept); whether it was withdrawn.
    pub fn remove_local<T: Any + Send + Sync>(&self, value: &Arc<T>) -> bool {
        let mut locals = self.inner.locals.write();
        let current = locals.get(&TypeId::of::<T>());
        let same = current
            .is_some_and(|current| std::ptr::addr_eq(Arc::as_ptr(current), Arc::as_ptr(value)));
        if same {
            locals.remove(&TypeId::of::<T>());
        }
        same
    }

    /// A snapshot of the routing counters.
    pub fn stats(&self) -> RouterStats {
        self.inner.counters.snapshot()
    }

    /// A snapshot of the transport's counters.
    pub fn transport_stats(&self) -> TransportStats {
        self.inner.transport.stats()
    }

    /// Leaves the cluster gracefully, then shuts down.
    ///
    /// 1. Announces Leaving to every reachable peer that has a link and
    ///    waits for each to acknowledge (its table in answer), so that none
    ///    will take the silence that follows for a failure.
    /// 2. Marks itself Left and announces it. A peer that hears it marks this
    ///    node Left and closes its link at once: that close (or an answer
    ///    that still got through) is its acknowledgement.
    /// 3. Shuts down.
    ///
    /// Each step waits at most [`RouterConfig::request_timeout`]; on a
    /// healthy loopback cluster the whole leave takes a few milliseconds.
    /// The others report [`MemberEvent::Leaving`] then [`MemberEvent::Left`]
    /// for this node, never Suspect or Down.
    pub async fn leave(&self) {
        if self.inner.stopped.load(Ordering::Acquire) {
            return;
        }
        for status in [MemberStatus::Leaving, MemberStatus::Left] {
            let changes = self
                .inner
                .membership
                .write()
                .set_my_status(status, Instant::now());
            gossip::apply(&self.inner, changes);
            gossip::announce(&self.inner).await;
        }
        tracing::info!(node = %self.inner.node, "left the cluster");
        self.shutdown().await;
    }

    /// Stops abruptly, without telling anyone (the others will detect the
    /// silence and mark this node Down): stops gossip, dispatch and the
    /// `system` actor, fails pending requests with
    /// [`RouterError::Stopped`], forgets the local registrations (actors are
    /// not stopped, but one whose only handle was its registration then
    /// ends), and shuts the transport down. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        for task in inner.tasks.lock().drain(..) {
            task.abort();
        }
        let system = inner.actors.write().remove(SYSTEM);
        if let Some(system) = system {
            system.backlog.close();
            system.actor.stop();
        }
        // Forget the registrations: actors holding a `Router` would otherwise
        // keep the router alive through their own mailbox handles.
        let slots: Vec<Slot> = inner.actors.write().drain().map(|(_, s)| s).collect();
        for slot in slots {
            slot.backlog.close();
        }
        inner.pending.lock().clear();
        inner.locals.write().clear();
        inner.outboxes.clear();
        inner.transport.shutdown().await;
    }
}

/// `Err(Rejected)` when `reply` is an Undeliverable or Error answer.
pub(crate) fn rejected(to: &ActorAddr, reply: &Envelope) -> Result<(), RouterError> {
    let kind = match reply.kind {
        EnvelopeKind::Undeliverable => "undeliverable",
        EnvelopeKind::Error => "error",
        _ => return Ok(()),
    };
    let reason = reply
        .payload_json::<String>()
        .ok()
        .or_else(|| reply.payload_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{} bytes", reply.payload.len()));
    Err(RouterError::Rejected {
        to: to.clone(),
        kind,
        reason,
    })
}

/// Names the router keeps for itself.
pub(crate) fn is_reserved(name: &str) -> bool {
    name == SYSTEM || name == REPLY || name.starts_with(CLIENT_PREFIX)
}

impl Inner {
    /// A weak handle on this router's shared state.
    pub(crate) fn weak_self(&self) -> Weak<Inner> {
        self.weak.clone()
    }

    /// Registers `request` (sent from `_reply`) as awaiting its answer,
    /// which only its addressee may give.
    pub(crate) fn expect_answer(&self, request: &Envelope) -> oneshot::Receiver<Envelope> {
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            from: request.to.clone(),
            tx,
        };
        self.pending.lock().insert(request.id, pending);
        rx
    }

    /// The bounds of every local actor's backlog.
    pub(crate) fn backlog_limits(&self) -> BacklogLimits {
        BacklogLimits {
            envelopes: self.config.backlog_limit.max(1),
            bytes: self.config.backlog_bytes.max(1),
        }
    }

    pub(crate) fn local_actor_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.actors.read().keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// `system@node`.
    pub(crate) fn system_of(&self, node: &NodeId) -> ActorAddr {
        ActorAddr::new(self.system_addr.actor().clone(), node.clone())
    }
}
