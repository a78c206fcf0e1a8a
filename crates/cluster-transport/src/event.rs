//! What the transport reports: incoming frames and link events.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::envelope::Envelope;

/// Identity of an authenticated external client connection (unique per transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    /// Wraps a raw id (as printed by `Display` or sent to the client in `client_id`).
    pub const fn new(raw: u64) -> Self {
        ClientId(raw)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for ClientId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(ClientId)
    }
}

/// How a client asked to receive payloads, at connect time (the upgrade
/// URL's `payloads` query parameter, `docs/wire.md`, "Client auth"). The
/// transport only carries the choice; the router, which owns the client
/// JSON form, applies it to every frame it writes to that client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientPayloads {
    /// Every payload as a JSON string (no parameter, or `payloads=strings`):
    /// the form every client gets unless it asks for another.
    #[default]
    Strings,
    /// A payload that is JSON as the raw JSON value (`payloads=raw`); any
    /// other payload as a string with a `format` that says so.
    Raw,
}

impl ClientPayloads {
    /// The parameter's value: `strings` or `raw`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientPayloads::Strings => "strings",
            ClientPayloads::Raw => "raw",
        }
    }
}

/// What arrived: one frame's worth, from a node or from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// One batch frame from a cluster node.
    Node {
        /// The sender's node name (as proven in the handshake).
        peer: String,
        /// The envelopes of the frame, in the order they were sent.
        envelopes: Vec<Envelope>,
    },
    /// One text frame from an authenticated external client.
    Client {
        /// The client.
        id: ClientId,
        /// The frame's text, valid UTF-8 (opaque to the transport: the
        /// router defines the JSON it must hold).
        text: Bytes,
    },
    /// An external client's connection ended. Sent on the same channel
    /// after the client's last frame, so whoever reads it has seen
    /// everything the client sent before it hung up (a worker's last
    /// result is not overtaken by its departure). The link event
    /// [`LinkEvent::ClientDisconnected`] follows later, once the
    /// connection is closed.
    ClientGone {
        /// The client.
        id: ClientId,
    },
}

/// Link lifecycle events (see [`Transport::subscribe`](crate::Transport::subscribe)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A link to `peer` is established (again).
    Up {
        /// Peer node name.
        peer: String,
    },
    /// The link to `peer` is lost.
    Down {
        /// Peer node name.
        peer: String,
        /// Why: a human-readable text (it derefs to `str`), and whether the
        /// link was closed on purpose ([`DownReason::is_clean`]).
        reason: DownReason,
    },
    /// An external client authenticated.
    ClientConnected {
        /// Its id.
        id: ClientId,
    },
    /// An external client went away.
    ClientDisconnected {
        /// Its id.
        id: ClientId,
    },
}

/// Why a link went down (the `reason` of [`LinkEvent::Down`]).
///
/// A *clean* close is a deliberate one: [`Transport::disconnect`](crate::Transport::disconnect),
/// shutdown, or a close frame from the peer with code 1000 (normal) or
/// 1001 (going away). Everything else (missed heartbeats, a read or write
/// error, a connection that ended without a close frame, any other close
/// code) is a failure. It derefs to the human-readable text.
///
/// ```
/// use cluster_transport::DownReason;
///
/// let bye = DownReason::clean("peer closed (1000: closing)");
/// assert!(bye.is_clean());
/// assert!(bye.contains("1000"));
/// assert!(!DownReason::failure("missed 3 heartbeats").is_clean());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DownReason {
    clean: bool,
    text: String,
}

impl DownReason {
    /// A deliberate close, explained by `text`.
    pub fn clean(text: impl Into<String>) -> Self {
        DownReason {
            clean: true,
            text: text.into(),
        }
    }

    /// An unexpected loss, explained by `text`.
    pub fn failure(text: impl Into<String>) -> Self {
        DownReason {
            clean: false,
            text: text.into(),
        }
    }

    /// Whether the link was closed on purpose (by this node or by the peer).
    pub fn is_clean(&self) -> bool {
        self.clean
    }

    /// The human-readable text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Deref for DownReason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
