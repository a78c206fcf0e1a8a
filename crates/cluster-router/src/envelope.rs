//! The routed message: [`Envelope`] `{ to, from, id, correlation_id, kind, format, payload }`.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::addr::ActorAddr;
use crate::ids::random_id;

/// Identifies one message; replies carry it back as their `correlation_id`.
///
/// Ids made by [`MessageId::next`] are random 64-bit values (never 0, which
/// means "no id" on the wire): nobody can guess the id of another sender's
/// request. External clients never choose one (see `docs/wire.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

impl MessageId {
    /// A fresh random id.
    pub fn next() -> Self {
        Self(random_id())
    }

    /// The raw value (as it travels).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Wraps a raw value received or derived by the router.
    pub(crate) const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an envelope is. Only the router makes Undeliverable envelopes, and
/// external clients can only send Messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// An ordinary message (a request or a reply).
    #[default]
    Message,
    /// The router could not deliver the message whose id is in
    /// `correlation_id`; the payload is a human-readable reason.
    Undeliverable,
    /// The receiver could not process the message (bad command, bad
    /// address); the payload is a human-readable reason.
    Error,
}

/// How the payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PayloadFormat {
    /// UTF-8 JSON text (what external clients use).
    #[default]
    Json,
    /// Opaque bytes (node-to-node traffic, e.g. bincode).
    Binary,
}

/// One routed message.
///
/// Every envelope carries its sender's address, so any receiver can answer
/// with [`Envelope::reply`] and the router takes the answer back, across
/// nodes or to an external client.
///
/// ```
/// use bytes::Bytes;
/// use cluster_router::{ActorAddr, Envelope, EnvelopeKind, PayloadFormat};
///
/// let req = Envelope::new(
///     "echo@node-b".parse()?,
///     "client-1@node-a".parse()?,
///     PayloadFormat::Json,
///     Bytes::from_static(br#"{"say":"hi"}"#),
/// );
/// let answer = req.reply(req.payload.clone());
/// assert_eq!(answer.to, req.from);
/// assert_eq!(answer.from, req.to);
/// assert_eq!(answer.correlation_id, Some(req.id));
/// assert_eq!(answer.kind, EnvelopeKind::Message);
/// # Ok::<(), cluster_router::AddrError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The addressee.
    pub to: ActorAddr,
    /// The sender; replies go here.
    pub from: ActorAddr,
    /// This message's id.
    pub id: MessageId,
    /// The id of the message this one answers, if any.
    pub correlation_id: Option<MessageId>,
    /// Message, Undeliverable or Error.
    pub kind: EnvelopeKind,
    /// Json or Binary.
    pub format: PayloadFormat,
    /// The payload, moved and never copied by the router.
    pub payload: Bytes,
}

impl Envelope {
    /// Whether an external client sent this envelope: a Message whose
    /// `from` is a client's address (`client-<id>@<node>`), which only the
    /// router of the client's node sets and no actor can register.
    pub fn sent_by_client(&self) -> bool {
        crate::client::sent_by_client(self)
    }

    /// A new [`EnvelopeKind::Message`] with a fresh id and no correlation.
    pub fn new(to: ActorAddr, from: ActorAddr, format: PayloadFormat, payload: Bytes) -> Self {
        Self {
            to,
            from,
            id: MessageId::next(),
            correlation_id: None,
            kind: EnvelopeKind::Message,
            format,
            payload,
        }
    }

    /// A JSON message whose payload is `value` serialized.
    ///
    /// # Errors
    ///
    /// The serde error when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(
        to: ActorAddr,
        from: ActorAddr,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        let payload = Bytes::from(serde_json::to_vec(value)?);
        Ok(Self::new(to, from, PayloadFormat::Json, payload))
    }

    /// The answer to this envelope: `to` and `from` swapped, a fresh id,
    /// `correlation_id` = this id, the same payload format.
    pub fn reply(&self, payload: impl Into<Bytes>) -> Envelope {
        self.reply_with(EnvelopeKind::Message, self.format, payload.into())
    }

    /// Like [`Envelope::reply`] with an explicit kind and format.
    pub fn reply_with(&self, kind: EnvelopeKind, format: PayloadFormat, payload: Bytes) -> Self {
        Self {
            to: self.from.clone(),
            from: self.to.clone(),
            id: MessageId::next(),
            correlation_id: Some(self.id),
            kind,
            format,
            payload,
        }
    }

    /// An [`EnvelopeKind::Error`] answer carrying `reason` as a JSON string.
    pub fn error_reply(&self, reason: &str) -> Envelope {
        self.reply_with(
            EnvelopeKind::Error,
            PayloadFormat::Json,
            json_string(reason),
        )
    }

    /// The [`EnvelopeKind::Undeliverable`] answer sent back to `from` when
    /// this envelope cannot be delivered, with `reason` as a JSON string;
    /// `None` when this envelope is itself an Undeliverable or Error (those
    /// are never bounced, so two nodes cannot ping-pong them forever).
    pub fn undeliverable(&self, reason: &str) -> Option<Envelope> {
        (self.kind == EnvelopeKind::Message).then(|| {
            self.reply_with(
                EnvelopeKind::Undeliverable,
                PayloadFormat::Json,
                json_string(reason),
            )
        })
    }

    /// The payload as UTF-8 text, if it is valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// Deserializes a JSON payload.
    ///
    /// # Errors
    ///
    /// The serde error when the payload is not JSON of type `T`.
    pub fn payload_json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// `reason` as a JSON string literal (so Json payloads stay valid JSON).
pub(crate) fn json_string(reason: &str) -> Bytes {
    Bytes::from(serde_json::Value::from(bound_text(reason)).to_string())
}

/// The longest error text sent back to a sender, in bytes. Errors quote
/// what could not be taken (an unknown command's name, a field, an id),
/// which the sender may have made megabytes long.
pub const MAX_ERROR_TEXT: usize = 512;

/// `text` if it fits in [`MAX_ERROR_TEXT`] bytes, else its first 200 and
/// last 300 bytes (a parser's message ends with what it expected and at
/// which column) around an ellipsis. Error and undeliverable answers and
/// a client's error frames pass their reason through it.
pub fn bound_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ERROR_TEXT {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut head = 200;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - 300;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    std::borrow::Cow::Owned(format!("{} … {}", &text[..head], &text[tail..]))
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Envelope");
        d.field("to", &self.to)
            .field("from", &self.from)
            .field("id", &self.id.0)
            .field("correlation_id", &self.correlation_id.map(|c| c.0))
            .field("kind", &self.kind)
            .field("format", &self.format);
        match (self.format, self.payload_str()) {
            (PayloadFormat::Json, Some(text)) if text.len() <= 256 => d.field("payload", &text),
            _ => d.field("payload_len", &self.payload.len()),
        };
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ActorAddr {
        s.parse().unwrap()
    }

    #[test]
    fn error_answers_quote_a_bounded_reason() {
        assert_eq!(bound_text("short"), "short");
        let at_limit = "x".repeat(MAX_ERROR_TEXT);
        assert_eq!(bound_text(&at_limit), at_limit);
        // Multi-byte characters across both cuts.
        let long = format!(
            "unknown variant `{}` at line 1 column 99",
            "é".repeat(40_000)
        );
        let cut = bound_text(&long);
        assert!(cut.len() <= MAX_ERROR_TEXT, "{} bytes", cut.len());
        assert!(
            cut.starts_with("unknown variant `éé") && cut.ends_with("column 99"),
            "{cut}"
        );
        assert!(cut.contains(" … "));
        let env = Envelope::new(
            addr("a@n1"),
            addr("b@n2"),
            PayloadFormat::Json,
            Bytes::from_static(b"{}"),
        );
        for answer in [env.error_reply(&long), env.undeliverable(&long).unwrap()] {
            let reason: String = answer.payload_json().unwrap();
            assert_eq!(reason, cut);
        }
    }

    #[test]
    fn ids_are_fresh_and_non_zero() {
        let a = MessageId::next();
        let b = MessageId::next();
        assert_ne!(a, b);
        assert_ne!(a.0, 0);
    }

    #[test]
    fn reply_swaps_and_correlates() {
        let req = Envelope::new(
            addr("a@n1"),
            addr("b@n2"),
            PayloadFormat::Binary,
            Bytes::from_static(b"x"),
        );
        let rep = req.reply(Bytes::from_static(b"y"));
        assert_eq!(
            (rep.to.clone(), rep.from.clone()),
            (addr("b@n2"), addr("a@n1"))
        );
        assert_eq!(rep.correlation_id, Some(req.id));
        assert_ne!(rep.id, req.id);
        assert_eq!(rep.format, PayloadFormat::Binary);
        assert_eq!(&rep.payload[..], b"y");
    }

    #[test]
    fn undeliverable_is_never_bounced_twice() {
        let req =
            Envelope::json(addr("ghost@n1"), addr("b@n2"), &serde_json::json!({"x": 1})).unwrap();
        let und = req.undeliverable("no actor \"ghost\" on node n1").unwrap();
        assert_eq!(und.kind, EnvelopeKind::Undeliverable);
        assert_eq!(und.correlation_id, Some(req.id));
        let reason: String = und.payload_json().unwrap();
        assert_eq!(reason, "no actor \"ghost\" on node n1");
        assert!(und.undeliverable("again").is_none());
        assert!(req.error_reply("bad").undeliverable("again").is_none());
    }

    #[test]
    fn debug_shows_short_json_payloads() {
        let e = Envelope::json(addr("a@n"), addr("b@n"), &"hi").unwrap();
        assert!(format!("{e:?}").contains("\"\\\"hi\\\"\""));
        let e = Envelope::new(
            addr("a@n"),
            addr("b@n"),
            PayloadFormat::Binary,
            Bytes::from_static(b"\0\0"),
        );
        assert!(format!("{e:?}").contains("payload_len: 2"));
    }
}
