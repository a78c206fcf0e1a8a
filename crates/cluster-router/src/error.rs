//! Error types of the router.

use std::time::Duration;

use crate::addr::{ActorAddr, AddrError, NodeId};
use crate::member::MemberStatus;

/// Errors of [`Router`](crate::Router) operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A name or address is malformed.
    #[error("invalid address")]
    Addr(#[from] AddrError),
    /// The configuration is unusable.
    #[error("invalid router configuration: {0}")]
    InvalidConfig(&'static str),
    /// The transport could not be started.
    #[error("cannot start the transport")]
    Transport(#[source] cluster_transport::TransportError),
    /// No member of the cluster has this node id.
    #[error("unknown node {0} (not in the membership table)")]
    UnknownNode(NodeId),
    /// The node is known but cannot be reached in its current state.
    #[error("node {node} is {status:?} and cannot be reached")]
    NodeUnavailable {
        /// The node.
        node: NodeId,
        /// Its state (Down or Left).
        status: MemberStatus,
    },
    /// The link to the node is gone, or the envelope cannot be sent on it.
    #[error("cannot send to node {node}")]
    Link {
        /// The node.
        node: NodeId,
        /// What the transport said (it holds the unsent envelope).
        #[source]
        source: Box<cluster_transport::SendError>,
    },
    /// Another actor is registered under this name on this node.
    #[error("an actor named {0} is already registered on this node")]
    NameTaken(String),
    /// The name is used by the router itself (`system`, `_reply`, `client-*`).
    #[error("the actor name {0} is reserved by the router")]
    ReservedName(String),
    /// No reply arrived in time.
    #[error("no reply from {to} within {after:?}")]
    Timeout {
        /// Where the request went.
        to: ActorAddr,
        /// The timeout.
        after: Duration,
    },
    /// The destination answered with an Undeliverable or Error envelope.
    #[error("{to} answered {kind}: {reason}")]
    Rejected {
        /// Where the request went.
        to: ActorAddr,
        /// "undeliverable" or "error".
        kind: &'static str,
        /// The reason the destination gave.
        reason: String,
    },
    /// A payload could not be encoded or decoded as JSON.
    #[error("JSON payload error")]
    Json(#[from] serde_json::Error),
    /// The router's own actor (`system`) could not be spawned.
    #[error("cannot spawn the system actor")]
    Actor(#[source] actor_core::ActorError),
    /// The router has been shut down.
    #[error("the router is shut down")]
    Stopped,
}
