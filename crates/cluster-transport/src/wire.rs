//! Wire structs: everything that is serialized lives here.
//!
//! A node-to-node binary frame is one tag byte followed by a body:
//!
//! * [`TAG_BATCH`]: a little-endian `u32` envelope count, then that many
//!   envelopes, each two bincode byte strings (varint length, bytes): the
//!   opaque header, then the payload ([`WireEnvelope`]).
//! * [`TAG_CONTROL`]: one bincode-encoded [`ControlFrame`].
//!
//! Client text frames are opaque to the transport once the client has
//! authenticated ([`AuthRequest`] / [`AuthReply`]); the router defines what
//! they carry. See `docs/wire.md`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The protocol version spoken by this build; exchanged in the handshake.
pub const PROTOCOL_VERSION: u32 = 2;

/// Frame tag of a batch of envelopes.
pub(crate) const TAG_BATCH: u8 = 0;
/// Frame tag of a control frame.
pub(crate) const TAG_CONTROL: u8 = 1;

/// Length of handshake nonces and HMAC-SHA256 proofs.
pub(crate) const NONCE_LEN: usize = 32;

/// A nonce or an HMAC-SHA256 tag.
pub(crate) type Block = [u8; NONCE_LEN];

/// One envelope as decoded from a batch; borrows from the frame so both
/// parts can become zero-copy slices of it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEnvelope<'a> {
    #[serde(borrow)]
    pub(crate) header: &'a [u8],
    #[serde(borrow)]
    pub(crate) payload: &'a [u8],
}

/// One envelope as encoded into a batch (`Bytes` serialize as byte strings).
#[derive(Debug, Serialize)]
pub(crate) struct WireEnvelopeOut<'a> {
    pub(crate) header: &'a Bytes,
    pub(crate) payload: &'a Bytes,
}

/// Why a handshake was refused, as sent to the peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RefuseReason {
    /// Versions differ; both are stated.
    VersionMismatch { ours: u32, yours: u32 },
    /// The peer failed to prove the secret.
    AuthFailed,
    /// The peer's node name is unusable (empty, too long or ours).
    BadName,
    /// The peer broke the handshake sequence.
    Protocol,
}

/// Error codes of [`ControlFrame::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ErrorCode {
    /// A received frame could not be decoded.
    Malformed,
    /// A frame of an unexpected kind (e.g. text on a node link).
    Unexpected,
    /// An envelope exceeded the frame limit and was dropped.
    TooLarge,
}

/// Control frames. The `Hello` variant comes first and starts with the version
/// so that any future version can still read it and state its mismatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ControlFrame {
    /// Dialer -> listener: first message.
    Hello {
        version: u32,
        node: String,
        nonce: Block,
    },
    /// Listener -> dialer: listener's nonce and its proof.
    Challenge {
        version: u32,
        node: String,
        nonce: Block,
        proof: Block,
    },
    /// Dialer -> listener: dialer's proof.
    Proof { proof: Block },
    /// Listener -> dialer: link accepted.
    Welcome,
    /// Listener -> dialer: authenticated, but a link between us already wins.
    Duplicate,
    /// Either side: handshake refused.
    Refuse { reason: RefuseReason },
    /// Liveness signal.
    Heartbeat,
    /// A received frame was rejected; the link stays up.
    Error { code: ErrorCode, message: String },
}

/// A client's authentication message (`{"auth":"<token>"}`).
#[derive(Debug, Deserialize)]
pub(crate) struct AuthRequest {
    pub(crate) auth: String,
}

/// The answer to a successful client authentication.
#[derive(Debug, Serialize)]
pub(crate) struct AuthReply {
    pub(crate) auth: &'static str,
    pub(crate) client_id: u64,
    /// `"raw"` when the client asked for raw payloads (and gets them);
    /// absent otherwise, so a client that asked for nothing sees exactly
    /// the reply it always saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payloads: Option<&'static str>,
}

/// An error sent to a client as a text frame (`{"error":"..."}`).
#[derive(Debug, Serialize)]
pub(crate) struct ClientErrorFrame<'a> {
    pub(crate) error: &'a str,
}
