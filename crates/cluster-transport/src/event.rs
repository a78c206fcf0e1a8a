//! What the transport reports: incoming batches and link events.

use std::fmt;

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

/// Where an incoming batch came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A cluster node, by its node name.
    Node(String),
    /// An external client.
    Client(ClientId),
}

/// One received frame's worth of envelopes, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Sender.
    pub source: Source,
    /// The envelopes of one frame, in the order they were sent.
    pub envelopes: Vec<Envelope>,
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
        /// Why (human readable).
        reason: String,
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
