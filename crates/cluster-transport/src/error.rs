//! Error types.

use std::io;

use crate::envelope::Envelope;

/// Errors of the transport as a whole (binding, dialling, handshakes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address that failed.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A non-loopback listen address needs a cluster secret.
    #[error("refusing to listen on public address {0} without a cluster secret")]
    PublicWithoutSecret(std::net::SocketAddr),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The URL is not a `ws://host:port[/path]` or `wss://` URL.
    #[error("invalid URL {0:?} (expected ws://host:port or wss://host:port)")]
    InvalidUrl(String),
    /// A `wss://` URL, but no CA certificates to verify the server with.
    #[error("cannot dial {0}: wss:// needs CA certificates to verify the server (--tls-ca)")]
    TlsNotConfigured(String),
    /// The TLS handshake with the server failed (untrusted or mismatched
    /// certificate, a plaintext server, ...).
    #[error("TLS handshake with {url} failed")]
    Tls {
        /// The URL dialled.
        url: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// TCP connect failed.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL dialled.
        url: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The WebSocket layer failed.
    #[error("websocket error")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The node handshake failed or was refused.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The transport has been shut down.
    #[error("transport is shut down")]
    Shutdown,
}

impl From<tokio_tungstenite::tungstenite::Error> for TransportError {
    fn from(err: tokio_tungstenite::tungstenite::Error) -> Self {
        TransportError::WebSocket(Box::new(err))
    }
}

/// Why a node handshake did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: local version {local}, remote version {remote}")]
    VersionMismatch {
        /// Our version.
        local: u32,
        /// The peer's version.
        remote: u32,
    },
    /// The peer could not prove knowledge of the cluster secret.
    #[error("authentication failed: peer did not prove the cluster secret")]
    AuthFailed,
    /// The peer refused us.
    #[error("refused by peer: {0}")]
    Refused(String),
    /// The peer sent something that is not the expected handshake message.
    #[error("unexpected handshake message: {0}")]
    Unexpected(&'static str),
    /// The peer uses our own node name or an invalid one.
    #[error("invalid peer node name {0:?}")]
    BadName(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed during the handshake.
    #[error("connection closed during handshake")]
    Closed,
}

/// Error of [`Transport::send`](crate::Transport::send); hands the envelope
/// back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T = Envelope> {
    /// No link to that peer (or it closed while waiting).
    #[error("no link to the destination")]
    NoLink(T),
    /// The envelope cannot fit in one frame (`max_frame_size`).
    #[error("envelope larger than the maximum frame size")]
    TooLarge(T),
}

impl<T> SendError<T> {
    /// Recovers the unsent value.
    pub fn into_inner(self) -> T {
        match self {
            SendError::NoLink(e) | SendError::TooLarge(e) => e,
        }
    }
}

/// Error of [`Transport::try_send`](crate::Transport::try_send) (an
/// [`Envelope`]) and [`Transport::try_send_to_client`](crate::Transport::try_send_to_client)
/// (a text frame); hands the unsent value back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T = Envelope> {
    /// The link's (or client's) outbound queue is full.
    #[error("outbound queue full")]
    Full(T),
    /// No link to that peer (or no such client).
    #[error("no link to the destination")]
    NoLink(T),
    /// The value cannot fit in one frame (`max_frame_size`).
    #[error("larger than the maximum frame size")]
    TooLarge(T),
}

impl<T> TrySendError<T> {
    /// Recovers the unsent value.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(e) | TrySendError::NoLink(e) | TrySendError::TooLarge(e) => e,
        }
    }
}
