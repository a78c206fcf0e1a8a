//! Wire structs: everything that is serialized lives here.
//!
//! A node-to-node binary frame is one tag byte followed by a body:
//!
//! * [`TAG_BATCH`]: a little-endian `u32` envelope count, then that many
//!   bincode-encoded [`WireEnvelope`]s (varint integers).
//! * [`TAG_CONTROL`]: one bincode-encoded [`ControlFrame`].
//!
//! Client text frames carry one JSON envelope ([`JsonEnvelopeIn`] /
//! [`JsonEnvelopeOut`]) or an auth message. See `docs/wire.md`.

use serde::{Deserialize, Serialize};

use crate::envelope::{EnvelopeKind, PayloadFormat};

/// The protocol version spoken by this build; exchanged in the handshake.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frame tag of a batch of envelopes.
pub(crate) const TAG_BATCH: u8 = 0;
/// Frame tag of a control frame.
pub(crate) const TAG_CONTROL: u8 = 1;

/// Length of handshake nonces and HMAC-SHA256 proofs.
pub(crate) const NONCE_LEN: usize = 32;

/// A nonce or an HMAC-SHA256 tag.
pub(crate) type Block = [u8; NONCE_LEN];

/// One envelope as decoded from a batch; borrows from the frame so the payload
/// can become a zero-copy slice of it. Field order is the wire order and must
/// match [`crate::Envelope`]'s serde order.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEnvelope<'a> {
    #[serde(borrow)]
    pub(crate) to: &'a str,
    #[serde(borrow)]
    pub(crate) from: &'a str,
    pub(crate) id: u64,
    pub(crate) correlation_id: u64,
    pub(crate) kind: EnvelopeKind,
    pub(crate) format: PayloadFormat,
    #[serde(borrow)]
    pub(crate) payload: &'a [u8],
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
}

/// An error sent to a client as a text frame (`{"error":"..."}`).
#[derive(Debug, Serialize)]
pub(crate) struct ClientErrorFrame<'a> {
    pub(crate) error: &'a str,
}

/// An envelope as a client sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonEnvelopeIn {
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) from: String,
    pub(crate) payload: serde_json::Value,
    #[serde(default)]
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) correlation_id: u64,
    #[serde(default)]
    pub(crate) kind: EnvelopeKind,
    #[serde(default)]
    pub(crate) format: PayloadFormat,
}

/// An envelope as a client receives it.
#[derive(Debug, Serialize)]
pub(crate) struct JsonEnvelopeOut<'a> {
    pub(crate) to: &'a str,
    pub(crate) from: &'a str,
    pub(crate) payload: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) id: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) correlation_id: u64,
    #[serde(skip_serializing_if = "is_message")]
    pub(crate) kind: EnvelopeKind,
    #[serde(skip_serializing_if = "is_json")]
    pub(crate) format: PayloadFormat,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_message(k: &EnvelopeKind) -> bool {
    *k == EnvelopeKind::Message
}

fn is_json(f: &PayloadFormat) -> bool {
    *f == PayloadFormat::Json
}
