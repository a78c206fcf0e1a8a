//! Authenticated WebSocket links between cluster nodes, and the edge where
//! external clients connect.
//!
//! A [`Transport`] listens on one address and dials others. Between two nodes
//! it keeps exactly one link (also when both dial each other at the same
//! moment: the connection dialed by the node whose name sorts lower wins). A
//! link is established by a mutual challenge-response handshake over the
//! cluster [`Secret`] (HMAC-SHA256 over fresh nonces bound to both node names;
//! the secret never crosses the wire) after a protocol version check.
//!
//! * **Envelopes are opaque.** An [`Envelope`] is an opaque header plus a
//!   payload; the transport never looks inside either. What they mean
//!   (addresses, kinds, ids) belongs to the layer above, the router.
//! * **Frames.** Node links carry binary frames: *batches* of envelopes plus
//!   control frames (handshake, heartbeat, error). One writer task per link
//!   drains everything queued into one frame per write; on receipt, headers
//!   and payloads are zero-copy slices of the frame. External clients, once
//!   authenticated, exchange text frames whose content is the router's
//!   business ([`Incoming::Client`], [`Transport::try_send_to_client`]).
//! * **Limits.** Every frame is checked against
//!   [`TransportConfig::max_frame_size`] before it is allocated; a larger frame
//!   closes the connection with code 1009. An undecodable frame is counted,
//!   logged and answered with an error frame; the link stays up.
//! * **Liveness.** Heartbeats every [`TransportConfig::heartbeat_interval`]; a
//!   link that hears nothing for `heartbeat_misses` intervals is reported
//!   [`LinkEvent::Down`]. Links we dialled with [`Transport::connect`] are
//!   redialled with capped exponential backoff and jitter until
//!   [`Transport::disconnect`].
//! * **Flow control.** Each link has a bounded outbound queue:
//!   [`Transport::send`] waits when it is full, [`Transport::try_send`] hands the
//!   envelope back. Incoming envelopes arrive batched per frame (and client
//!   text frames one by one) through the one receiver returned by
//!   [`Transport::take_incoming`].
//! * **Clients get a window.** A client's socket is read only while fewer
//!   than [`TransportConfig::client_window`] of its frames are unanswered;
//!   an answer ([`Transport::try_answer_client`]) returns its credit when it
//!   has been written to the socket. So a client that sends without reading
//!   is paused, never dropped, and its bounded outbound queue
//!   (`client_window + client_queue`) holds what it owes room for. Queuing
//!   never waits; a client that reads nothing for
//!   [`TransportConfig::client_idle_limit`] while frames wait, or whose queue
//!   overflows ([`Transport::close_slow_client`]), is closed with 1013
//!   (logged, counted in [`TransportStats::slow_clients_dropped`]).
//!
//! The codec and the handshake are sans-IO (bytes in, bytes out); the socket
//! code is a thin layer around them. The wire format is in `docs/wire.md`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use cluster_transport::{Envelope, Incoming, Transport, TransportConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let a = Transport::bind(TransportConfig::new("node-a", "cookie")).await?;
//! let b = Transport::bind(TransportConfig::new("node-b", "cookie")).await?;
//! let mut inbox = b.take_incoming().expect("taken once");
//!
//! let peer = a.connect(&b.url()).await?;
//! assert_eq!(peer, "node-b");
//! a.send("node-b", Envelope::new(&b"opaque header"[..], &br#"{"n":1}"#[..])).await?;
//!
//! let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await?.expect("open");
//! let Incoming::Node { peer, envelopes } = got else { panic!("from a node") };
//! assert_eq!(peer, "node-a");
//! assert_eq!(&envelopes[0].header[..], b"opaque header");
//! assert_eq!(&envelopes[0].payload[..], br#"{"n":1}"#);
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod auth;
mod client;
mod codec;
mod config;
mod envelope;
mod event;
mod gate;
mod handshake;
mod link;
mod split;
mod stats;
mod stream;
mod tls;
mod transport;
mod window;
mod wire;

pub use auth::client_token;
pub use config::{Backoff, Secret, TransportConfig};
pub use envelope::Envelope;
pub use error::{HandshakeError, SendError, TransportError, TrySendError};
pub use event::{ClientId, ClientPayloads, DownReason, Incoming, LinkEvent};
pub use split::{split as split_websocket, SplitWs, WsSink, WsStream};
pub use stats::TransportStats;
pub use stream::Connection;
pub use tls::{open_stream, TlsConfig, TlsError};
pub use transport::Transport;
pub use wire::PROTOCOL_VERSION;

pub mod error;

/// Entry points for the fuzz targets in `/fuzz` (the `fuzzing` feature; not
/// a stable API).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

// The crate's README, tested as doctests (it does not replace the guide above).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
