//! Actor addresses, the envelope, routing, membership and gossip.
//!
//! A [`Router`] runs on every node. It owns the node's
//! [`cluster_transport::Transport`] and gives actors cluster-wide addresses:
//!
//! - **Addresses.** [`ActorAddr`] is `actor@node` ([`ActorName`] `@`
//!   [`NodeId`]); node ids are logical names, resolved to WebSocket URLs by
//!   the membership table. Cloning an address is cheap (shared strings).
//! - **Envelopes.** An [`Envelope`] carries `to`, `from`, an id, an optional
//!   correlation id, a kind (Message, Undeliverable, Error), a payload format
//!   (Json, Binary) and a `Bytes` payload. Because every envelope names its
//!   sender, any receiver answers with [`Envelope::reply`] and
//!   [`Router::send`], across nodes or to an external client. Ids
//!   ([`MessageId::next`]) are random. This is the only envelope type with a
//!   meaning: on node links it travels as the router's header plus payload
//!   inside the transport's opaque [`cluster_transport::Envelope`].
//! - **Routing.** [`Router::register`] binds a name to a local
//!   `ActorRef<Envelope>`. [`Router::send`] delivers to a local mailbox
//!   without touching the network, or hands the envelope to the link of the
//!   destination node; an unknown node is an error
//!   ([`RouterError::UnknownNode`]). A message for an actor that does not
//!   exist at its destination comes back to the sender as an
//!   [`EnvelopeKind::Undeliverable`] envelope and is counted as a dead
//!   letter; Undeliverable and Error envelopes are never bounced, so no two
//!   nodes can ping-pong them. [`Router::request`] is request/reply over a
//!   per-router reply mailbox. Incoming traffic never waits behind one
//!   full mailbox: envelopes for a busy actor join its bounded, ordered
//!   overflow queue ([`RouterConfig::backlog_limit`]), and reading from the
//!   network never pauses for a mailbox: an envelope that finds the overflow
//!   queue full bounces to its sender as Undeliverable (`mailbox of <actor>
//!   on <node> is full`), so nodes whose actors send to each other cannot
//!   deadlock. Local senders wait instead (backpressure).
//! - **External clients.** Any WebSocket client that presents the client
//!   token (see [`cluster_transport::client_token`]) gets a temporary
//!   address `client-<id>@<node>`, announced in a welcome envelope from
//!   `system@<node>` (`{"welcome":"client-7@node-a"}`), and exchanges JSON
//!   envelopes (`{"to","payload","id"}`) with the node. **Clients speak only
//!   as clients**: the router sets `from`, the kind, the format and the
//!   message id itself (the client's `id` is only a tag, returned as the
//!   answers' `correlation_id`), and a client may address only actors
//!   registered with [`Router::register_client_facing`] and the JSON
//!   commands of `system`; anything else is refused with an Error envelope
//!   and counted ([`RouterStats::client_refused`]). Answers are taken only
//!   from where a request went: a node speaks only for its own addresses,
//!   and [`Router::request`] accepts only its addressee's answer. A client
//!   must read its socket: one whose outbound queue is full is disconnected
//!   (close 1013) rather than ever stalling the node's dispatch, and its
//!   envelopes for a node whose link is full or not up wait in that node's
//!   bounded outbox, not in the dispatch task.
//! - **Membership.** A node joins through seed URLs and learns everyone
//!   else by push-pull gossip of the member table (node, URL, incarnation,
//!   status, heartbeat, tags, load). Failure detection is SWIM-style with
//!   Lifeguard's self-awareness: every node sends a heartbeat to every
//!   linked member each [`RouterConfig::probe_interval`]; a member not heard
//!   for `suspect_after` is Suspect and other members are asked whether they
//!   hear it; it is Down only after `down_after` of silence everywhere this
//!   node can ask, confirmed by such a witness. A node that notices it was
//!   paused itself makes no verdicts until it hears from others, a Down
//!   rumour is only believed by nodes that do not hear the member, and a
//!   live node refutes any rumour with a higher incarnation. Down and Left
//!   members are removed after [`RouterConfig::remove_after`] behind a
//!   tombstone. [`Router::leave`] announces Leaving then Left, which the
//!   others never mistake for a failure; a restarted node (higher
//!   incarnation) is Up again. [`Router::subscribe`] streams
//!   [`MemberEvent`]s; [`Router::get_all_peers`] lists the Up members, this
//!   node included. The scheme, its timings and what happens during and
//!   after a partition are in `docs/architecture.md`.
//! - **The `system` actor** on each node answers `{"cmd":"members"}`,
//!   `{"cmd":"info"}` and `{"cmd":"ping"}` (JSON, usable by external
//!   clients) and carries the binary gossip protocol.
//!
//! The public JSON form of envelopes and the system protocol are described
//! in `docs/wire.md` ("Addresses and envelopes (router)").
//!
//! # Example
//!
//! Two nodes; an echo actor on `node-b` answers a request from `node-a`.
//!
//! ```
//! use std::time::Duration;
//! use actor_core::{spawn, Actor, BoxError, Context};
//! use bytes::Bytes;
//! use cluster_router::{EnvelopeKind, Envelope, MemberEvent, PayloadFormat, Router, RouterConfig};
//!
//! struct Echo(Router);
//!
//! #[async_trait::async_trait]
//! impl Actor for Echo {
//!     type Message = Envelope;
//!     async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
//!         self.0.send(env.reply(env.payload.clone())).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fast = |name: &str| RouterConfig::new(name, "cookie").timing(
//!     Duration::from_millis(50), Duration::from_millis(500), Duration::from_secs(1));
//! let a = Router::start(fast("node-a")).await?;
//! let mut events = a.subscribe();
//! let b = Router::start(fast("node-b").seeds([a.url()])).await?;
//! let echo = b.register("echo", spawn("echo", Echo(b.clone())))?;
//! assert_eq!(echo.to_string(), "echo@node-b");
//!
//! // Wait until node-a sees node-b Up.
//! tokio::time::timeout(Duration::from_secs(5), async {
//!     while let Ok(event) = events.recv().await {
//!         if matches!(&event, MemberEvent::Up(m) if m.node == "node-b") { break; }
//!     }
//! }).await?;
//!
//! let reply = a.request(echo, PayloadFormat::Json, Bytes::from_static(b"[1,2]"),
//!                       Duration::from_secs(5)).await?;
//! assert_eq!(reply.kind, EnvelopeKind::Message);
//! assert_eq!(&reply.payload[..], b"[1,2]");
//! assert_eq!(a.get_all_peers().len(), 2);
//!
//! b.leave().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod addr;
mod backlog;
mod client;
mod config;
mod detector;
mod envelope;
mod gossip;
mod header;
mod ids;
mod member;
mod membership;
mod outbox;
mod route;
mod router;
mod stats;
mod system;
mod wire;

pub use addr::{ActorAddr, ActorName, AddrError, AddrPart, NodeId, MAX_PART_LEN};
pub use cluster_transport::{
    client_token, open_stream, split_websocket, Backoff, Connection, Secret, TlsConfig, TlsError,
    TransportConfig, TransportError, WsSink, WsStream,
};
pub use config::RouterConfig;
pub use envelope::{bound_text, Envelope, EnvelopeKind, MessageId, PayloadFormat, MAX_ERROR_TEXT};
pub use error::RouterError;
pub use member::{Load, Member, MemberEvent, MemberStatus};
pub use router::Router;
pub use stats::RouterStats;

pub mod error;

/// Entry points for the fuzz targets in `/fuzz` (the `fuzzing` feature; not
/// a stable API).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

// The crate's README, tested as doctests (it does not replace the guide above).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
