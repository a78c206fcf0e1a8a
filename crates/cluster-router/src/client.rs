//! The client edge: the JSON envelope external clients exchange with a node
//! (one per text frame, after the transport has authenticated them), and
//! what a client may do.
//!
//! **Clients speak only as clients.** From a client's JSON the router takes
//! the destination (`to`), the payload and the client's own tag (`id`).
//! Everything else it sets itself: `from` is the client's address, the kind
//! is Message, the format Json, there is no correlation, and the internal
//! message id is the client's tag enciphered with a per-process key
//! ([`crate::ids`]); the answers' correlation ids are deciphered back into
//! the tag on the way out. A client-set `kind`, `correlation_id` or
//! `format` is ignored and counted.
//!
//! A client may address only actors registered as client-facing
//! ([`Router::register_client_facing`](crate::Router::register_client_facing))
//! and the JSON commands of `system`; never `_reply`, another client, or an
//! internal protocol actor. Refusals are answered with an Error envelope and
//! counted where the addressee lives.

use bytes::Bytes;
use cluster_transport::{ClientId, ClientPayloads, TrySendError};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::addr::{ActorAddr, ActorName};
use crate::envelope::{json_string, Envelope, EnvelopeKind, MessageId, PayloadFormat};
use crate::ids::TagCipher;
use crate::route::{error_chain, Delivery};
use crate::router::{Inner, CLIENT_PREFIX, REPLY};
use crate::stats::bump;

/// An envelope as a client sends it. `from` (the seed's shape) and any
/// other field are accepted and ignored. The payload is borrowed as raw
/// JSON text: it is only forwarded, so it is never built into a tree.
#[derive(Debug, Deserialize)]
struct ClientEnvelopeIn<'a> {
    to: String,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
    /// The client's own tag, returned as the answers' `correlation_id`.
    #[serde(default)]
    id: u64,
    kind: Option<IgnoredAny>,
    correlation_id: Option<IgnoredAny>,
    format: Option<IgnoredAny>,
}

/// What the router takes from a client's envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientMessage {
    /// The destination, as written (parsed by the caller).
    pub(crate) to: String,
    /// The client's tag (0 = none).
    pub(crate) tag: u64,
    /// The payload: a JSON string's text, or any other JSON value serialized.
    pub(crate) payload: Bytes,
    /// The client tried to set a field only the router sets.
    pub(crate) ignored_fields: bool,
}

/// Why a client's frame is not an envelope.
#[derive(Debug, thiserror::Error)]
#[error("malformed envelope: {0}")]
pub(crate) struct MalformedEnvelope(#[source] serde_json::Error);

/// Decodes a client's text frame.
pub(crate) fn decode(text: &[u8]) -> Result<ClientMessage, MalformedEnvelope> {
    let raw: ClientEnvelopeIn<'_> = serde_json::from_slice(text).map_err(MalformedEnvelope)?;
    let json = raw.payload.get();
    let payload = if json.starts_with('"') {
        // A JSON string: its value is the payload text.
        let value: String = serde_json::from_str(json).map_err(MalformedEnvelope)?;
        Bytes::from(value)
    } else {
        // Any other value: its JSON text as sent (already checked by the parse).
        Bytes::copy_from_slice(json.as_bytes())
    };
    Ok(ClientMessage {
        to: raw.to,
        tag: raw.id,
        payload,
        ignored_fields: raw.kind.is_some() || raw.correlation_id.is_some() || raw.format.is_some(),
    })
}

/// The internal id of client `client`'s envelope tagged `tag`.
pub(crate) fn message_id(client: u64, tag: u64) -> MessageId {
    MessageId::from_raw(TagCipher::global().encipher(client, tag))
}

/// An envelope as a client receives it.
#[derive(Debug, Serialize)]
struct ClientEnvelopeOut<'a> {
    to: &'a ActorAddr,
    from: &'a ActorAddr,
    payload: PayloadOut<'a>,
    #[serde(skip_serializing_if = "is_zero")]
    correlation_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
}

/// A payload as a client receives it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum PayloadOut<'a> {
    /// A JSON string whose value is the payload text.
    Text(&'a str),
    /// The payload itself, a JSON value (raw payloads only).
    Raw(&'a RawValue),
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Why an envelope cannot be shown to a client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotForClients {
    /// Payloads travel as JSON text.
    #[error("its payload is not UTF-8 text")]
    NotText,
    /// Serialization failed (it does not for these types).
    #[error("cannot encode it as JSON")]
    Json(#[source] serde_json::Error),
}

/// The JSON text frame of `env` for client `client`, with its payload in
/// the form the client asked for: a JSON string (always, with
/// [`ClientPayloads::Strings`]), or with [`ClientPayloads::Raw`] the
/// payload's own JSON when it is a Json payload that parses as one JSON
/// value, else a JSON string marked `"format":"text"` (or `"binary"`).
/// The correlation id, if any, is turned back into the client's own tag
/// (0 when the answer correlates to an untagged envelope, and then
/// omitted).
pub(crate) fn encode(
    env: &Envelope,
    client: u64,
    payloads: ClientPayloads,
) -> Result<String, NotForClients> {
    encode_for(env, client, payloads, OwnJson::No)
}

/// Whether an envelope's JSON payload was serialized by this process from
/// its own types ([`Router::send_own_json`](crate::Router::send_own_json)):
/// valid and shallow, so a raw-payload client gets it without a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnJson {
    Yes,
    No,
}

/// [`encode`], skipping the payload's check for [`OwnJson::Yes`].
pub(crate) fn encode_for(
    env: &Envelope,
    client: u64,
    payloads: ClientPayloads,
    own: OwnJson,
) -> Result<String, NotForClients> {
    let text = env.payload_str().ok_or(NotForClients::NotText)?;
    let binary = env.format == PayloadFormat::Binary;
    if own == OwnJson::Yes && !binary && payloads == ClientPayloads::Raw {
        return own_json_frame(env, text, client);
    }
    let (payload, format) = match payloads {
        ClientPayloads::Raw if !binary => match serde_json::from_str::<&RawValue>(text) {
            // A checked JSON value: written as it is (a payload with
            // whitespace around its value is rewritten without it).
            Ok(raw) if nesting_at_most(raw.get(), MAX_RAW_DEPTH) => (PayloadOut::Raw(raw), None),
            _ => (PayloadOut::Text(text), Some("text")),
        },
        _ => (PayloadOut::Text(text), binary.then_some("binary")),
    };
    let out = ClientEnvelopeOut {
        to: &env.to,
        from: &env.from,
        payload,
        correlation_id: client_tag(env, client),
        kind: kind_name(env.kind),
        format,
    };
    serde_json::to_string(&out).map_err(NotForClients::Json)
}

/// The client's own tag for `env`'s correlation id (0: none).
fn client_tag(env: &Envelope, client: u64) -> u64 {
    env.correlation_id
        .map_or(0, |c| TagCipher::global().decipher(client, c.get()))
}

fn kind_name(kind: EnvelopeKind) -> Option<&'static str> {
    match kind {
        EnvelopeKind::Message => None,
        EnvelopeKind::Undeliverable => Some("undeliverable"),
        EnvelopeKind::Error => Some("error"),
    }
}

/// The frame [`ClientEnvelopeOut`] serializes to for a raw payload,
/// written around `payload` (JSON this process wrote itself) instead of
/// parsing it into a `RawValue` first: the same bytes (a test compares).
fn own_json_frame(env: &Envelope, payload: &str, client: u64) -> Result<String, NotForClients> {
    use std::fmt::Write as _;
    let to = serde_json::to_string(&env.to).map_err(NotForClients::Json)?;
    let from = serde_json::to_string(&env.from).map_err(NotForClients::Json)?;
    let mut out = String::with_capacity(payload.len() + to.len() + from.len() + 80);
    out.push_str("{\"to\":");
    out.push_str(&to);
    out.push_str(",\"from\":");
    out.push_str(&from);
    out.push_str(",\"payload\":");
    out.push_str(payload);
    let tag = client_tag(env, client);
    if tag != 0 {
        let _ = write!(out, ",\"correlation_id\":{tag}");
    }
    if let Some(kind) = kind_name(env.kind) {
        let _ = write!(out, ",\"kind\":\"{kind}\"");
    }
    out.push('}');
    Ok(out)
}

/// The deepest JSON value that goes raw to a client: common parsers stop
/// at 128 levels (serde_json's default recursion limit, counted over the
/// whole frame, whose envelope is one level), so a deeper value would make
/// the client's frame unreadable; it goes as a string marked `text`.
pub(crate) const MAX_RAW_DEPTH: usize = 100;

/// Whether the JSON text `json` (already checked to be JSON) nests arrays
/// and objects at most `limit` levels deep (one pass, no recursion).
fn nesting_at_most(json: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// `{"error":"<why>"}`: the answer to a frame that is not an envelope.
pub(crate) fn error_frame(why: &str) -> String {
    serde_json::json!({ "error": crate::envelope::bound_text(why) }).to_string()
}

/// Whether `addr` is an external client's address (`client-<id>@node`).
pub(crate) fn is_client(addr: &ActorAddr) -> bool {
    addr.actor().as_str().starts_with(CLIENT_PREFIX)
}

/// Names no client may ever address, whatever is registered: the reply
/// mailbox and other clients.
pub(crate) fn never_for_clients(name: &ActorName) -> bool {
    name.as_str() == REPLY || name.as_str().starts_with(CLIENT_PREFIX)
}

/// Whether `env` was sent by an external client. Clients send only
/// Messages (their router sets the kind); an Undeliverable or Error whose
/// `from` is a client's address is a router's answer about that client
/// (a bounce, a refusal), not something the client said.
pub(crate) fn sent_by_client(env: &Envelope) -> bool {
    env.kind == EnvelopeKind::Message && is_client(&env.from)
}

impl Inner {
    /// Handles one text frame from external client `id`: decodes it, builds
    /// the envelope the router allows a client to send, and routes it.
    pub(crate) async fn dispatch_from_client(&self, id: ClientId, text: &[u8]) {
        let Some(client) = self.client_addr(id) else {
            return;
        };
        bump(&self.counters.from_clients, 1);
        let msg = match decode(text) {
            Ok(msg) => msg,
            Err(err) => {
                bump(&self.counters.client_malformed, 1);
                tracing::debug!(%client, err = %error_chain(&err), "malformed client envelope");
                // Answers the frame: returns its unit of the client's window.
                self.send_text_to_client(id, error_frame(&error_chain(&err)), true);
                return;
            }
        };
        if msg.ignored_fields {
            bump(&self.counters.client_fields_ignored, 1);
            tracing::debug!(%client, "client set kind, correlation_id or format: ignored");
        }
        let id = message_id(id.get(), msg.tag);
        let to = match ActorAddr::parse_reusing(&msg.to, &[&self.node]) {
            Ok(to) => to,
            Err(err) => {
                bump(&self.counters.dead_letters, 1);
                let reason = format!("bad 'to' address {:?}: {err}", truncate(&msg.to));
                let answer = Envelope {
                    to: client,
                    from: self.system_addr.clone(),
                    id: MessageId::next(),
                    correlation_id: Some(id),
                    kind: EnvelopeKind::Error,
                    format: PayloadFormat::Json,
                    payload: json_string(&reason),
                };
                return self.post(answer);
            }
        };
        let env = Envelope {
            id,
            ..Envelope::new(to, client, PayloadFormat::Json, msg.payload)
        };
        if *env.to.node() == self.node || never_for_clients(env.to.actor()) {
            // Refused here (reply mailboxes and clients, on any node) or
            // delivered here.
            self.deliver_local(env, Delivery::Spill, OwnJson::No).await;
        } else {
            // Never waits for a full or not-yet-up link (see `outbox`); the
            // addressee's node applies the client rules.
            self.forward_from_client(env);
        }
    }

    /// `client-<id>@<this node>`.
    pub(crate) fn client_addr(&self, id: ClientId) -> Option<ActorAddr> {
        let name = ActorName::new(&format!("{CLIENT_PREFIX}{id}")).ok()?;
        Some(ActorAddr::new(name, self.node.clone()))
    }

    /// Tells a newly connected client its address (without waiting: its
    /// queue is empty, and a client that is already too slow is dropped).
    pub(crate) fn welcome(&self, id: ClientId) {
        let Some(client) = self.client_addr(id) else {
            return;
        };
        let payload = serde_json::json!({ "welcome": client.to_string() });
        let text = Envelope::json(client, self.system_addr.clone(), &payload)
            .map_err(NotForClients::Json)
            .and_then(|env| encode(&env, id.get(), self.payloads_of(id)));
        match text {
            Ok(text) => self.send_text_to_client(id, text, false),
            Err(err) => tracing::error!(%err, "cannot encode the welcome"),
        }
    }

    /// How client `id` asked for payloads (strings if it is gone: its
    /// frame is then refused by the transport anyway).
    fn payloads_of(&self, id: ClientId) -> ClientPayloads {
        self.transport.client_payloads(id).unwrap_or_default()
    }

    /// Queues a text frame for a client without waiting (`answer`: it
    /// answers one of the client's frames); a client whose queue is full is
    /// disconnected as too slow.
    fn send_text_to_client(&self, id: ClientId, text: String, answer: bool) {
        let queued = if answer {
            self.transport.try_answer_client(id, text)
        } else {
            self.transport.try_send_to_client(id, text)
        };
        match queued {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.transport.close_slow_client(id);
            }
            Err(err) => tracing::debug!(%err, client = %id, "client gone"),
        }
    }

    /// Whether the local addressee of `env`, an envelope from an external
    /// client, may take it: a client-facing actor (or the JSON commands of
    /// `system`), never `_reply` or another client, and only with a Json
    /// payload (a client's router makes every client envelope Json). An
    /// addressee that does not exist is not refused here: it bounces as
    /// Undeliverable.
    pub(crate) fn takes_from_clients(&self, env: &Envelope) -> bool {
        if never_for_clients(env.to.actor()) || env.format != PayloadFormat::Json {
            return false;
        }
        self.actors
            .read()
            .get(env.to.actor())
            .is_none_or(|slot| slot.client_facing)
    }

    /// Refuses a client's envelope for an addressee it may not reach:
    /// counted, logged, answered with an Error envelope.
    pub(crate) fn refuse_client(&self, env: Envelope) {
        bump(&self.counters.client_refused, 1);
        tracing::warn!(client = %env.from, to = %env.to, "client envelope refused: not addressable by clients");
        let reason = format!(
            "{} does not take messages from external clients (only client-facing actors and the JSON commands of system do)",
            env.to
        );
        self.post(env.error_reply(&reason));
    }

    /// Hands `env` to a local client's socket without ever waiting: this
    /// runs on the incoming-dispatch task, which one client that stopped
    /// reading must not stall. An envelope with a correlation id answers
    /// one of the client's envelopes and returns a unit of its window once
    /// written (flow control, see the transport's `client_window`). A
    /// client whose outbound queue still overflows is disconnected as too
    /// slow (close 1013) and `env` bounces.
    pub(crate) fn deliver_to_client(&self, client: Option<ClientId>, env: Envelope, own: OwnJson) {
        let Some(client) = client else {
            let reason = format!("no client named {} on node {}", env.to.actor(), self.node);
            self.bounce(env, &reason);
            return;
        };
        let text = match encode_for(&env, client.get(), self.payloads_of(client), own) {
            Ok(text) => text,
            Err(err) => {
                let reason = format!("cannot deliver to {}: {err}", env.to);
                self.bounce(env, &reason);
                return;
            }
        };
        let header = Envelope {
            payload: Bytes::new(),
            ..env
        };
        let queued = if header.correlation_id.is_some() {
            self.transport.try_answer_client(client, text)
        } else {
            self.transport.try_send_to_client(client, text)
        };
        let err = match queued {
            Ok(()) => return bump(&self.counters.routed_to_clients, 1),
            Err(err) => err,
        };
        let reason = match err {
            TrySendError::Full(_) => {
                self.transport.close_slow_client(client);
                format!(
                    "cannot deliver to {}: the client does not read its socket and was disconnected",
                    header.to
                )
            }
            other => format!("cannot deliver to {}: {other}", header.to),
        };
        self.bounce(header, &reason);
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(140).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ActorAddr {
        s.parse().unwrap()
    }

    #[test]
    fn takes_only_to_payload_and_tag() {
        let m = decode(br#"{"to":"a@b","payload":{"x":[1,2]}}"#).unwrap();
        assert_eq!(m.payload, Bytes::from_static(br#"{"x":[1,2]}"#));
        assert_eq!((m.tag, m.ignored_fields), (0, false));
        let m = decode(br#"{"to":"a@b","from":"forged@z","payload":"42","id":7}"#).unwrap();
        assert_eq!(
            (&m.payload[..], m.tag, m.ignored_fields),
            (&b"42"[..], 7, false)
        );
        let forged = br#"{"to":"_reply@b","payload":1,"kind":"undeliverable","correlation_id":9}"#;
        assert!(decode(forged).unwrap().ignored_fields);
        assert!(
            decode(br#"{"to":"a@b","payload":1,"format":"binary"}"#)
                .unwrap()
                .ignored_fields
        );
    }

    #[test]
    fn malformed_frames_say_why() {
        for bad in [&b"not json"[..], br#"{"payload":1}"#, br#"{"to":"a@b"}"#] {
            let err = decode(bad).unwrap_err().to_string();
            assert!(err.starts_with("malformed envelope"), "{err}");
        }
        assert!(decode(br#"{"to":"a@b","payload":1,"id":-1}"#).is_err());
    }

    #[test]
    fn answers_carry_the_clients_tag() {
        let id = message_id(4, 77);
        assert_ne!(id.get(), 77, "the tag is not the internal id");
        let req = Envelope {
            id,
            ..Envelope::new(
                addr("echo@b"),
                addr("client-4@a"),
                PayloadFormat::Json,
                Bytes::from_static(b"{}"),
            )
        };
        let answer = req.error_reply("no");
        let text = encode(&answer, 4, ClientPayloads::Strings).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["correlation_id"], 77);
        assert_eq!(v["kind"], "error");
        assert_eq!(v["payload"], "\"no\"");
        assert!(v.get("id").is_none(), "internal ids stay inside: {v}");
        // Another client's answer does not decode to the tag.
        assert_ne!(
            serde_json::from_str::<serde_json::Value>(
                &encode(&answer, 5, ClientPayloads::Strings).unwrap()
            )
            .unwrap()["correlation_id"],
            77
        );
        // An untagged envelope's answers carry no correlation.
        let untagged = Envelope {
            id: message_id(4, 0),
            ..req.clone()
        };
        let text = encode(
            &untagged.reply(Bytes::from_static(b"1")),
            4,
            ClientPayloads::Strings,
        )
        .unwrap();
        assert!(!text.contains("correlation_id"), "{text}");
        let binary = Envelope {
            payload: Bytes::from_static(&[0xff]),
            ..req.reply(Bytes::new())
        };
        assert!(matches!(
            encode(&binary, 4, ClientPayloads::Raw),
            Err(NotForClients::NotText)
        ));
    }

    fn frame_of(payload: &'static [u8], format: PayloadFormat, payloads: ClientPayloads) -> String {
        let env = Envelope::new(
            addr("client-4@a"),
            addr("echo@b"),
            format,
            Bytes::from_static(payload),
        );
        encode(&env, 4, payloads).unwrap()
    }

    #[test]
    fn raw_payloads_only_for_clients_that_asked() {
        use ClientPayloads::{Raw, Strings};
        let json = br#"{"results":[{"id":"a","result":"\"x\""}]}"#;
        // Today's form, unchanged: the payload's text as a JSON string.
        let text = frame_of(json, PayloadFormat::Json, Strings);
        assert_eq!(
            text,
            r#"{"to":"client-4@a","from":"echo@b","payload":"{\"results\":[{\"id\":\"a\",\"result\":\"\\\"x\\\"\"}]}"}"#
        );
        // Raw: the payload's own JSON, byte for byte.
        let text = frame_of(json, PayloadFormat::Json, Raw);
        assert_eq!(
            text,
            format!(
                r#"{{"to":"client-4@a","from":"echo@b","payload":{}}}"#,
                std::str::from_utf8(json).unwrap()
            )
        );
        // Every JSON value, strings and scalars too; surrounding
        // whitespace is dropped.
        for (payload, want) in [
            (&b"\"a reason\""[..], r#""a reason""#),
            (b"42", "42"),
            (b"null", "null"),
            (b" [1, 2] \n", "[1, 2]"),
        ] {
            let env = Envelope::new(
                addr("client-4@a"),
                addr("echo@b"),
                PayloadFormat::Json,
                Bytes::copy_from_slice(payload),
            );
            let text = encode(&env, 4, Raw).unwrap();
            let want = format!(r#"{{"to":"client-4@a","from":"echo@b","payload":{want}}}"#);
            assert_eq!(text, want);
        }
        // A Json payload that is not JSON (a client's string payload is
        // its text): a string marked as text.
        for payload in [&b"hello"[..], b"", b"{\"open\":", b"1 2", b"\"a\" x"] {
            let env = Envelope::new(
                addr("client-4@a"),
                addr("echo@b"),
                PayloadFormat::Json,
                Bytes::copy_from_slice(payload),
            );
            let v: serde_json::Value =
                serde_json::from_str(&encode(&env, 4, Raw).unwrap()).unwrap();
            assert_eq!(v["format"], "text");
            assert_eq!(v["payload"].as_str().unwrap().as_bytes(), payload);
        }
        // A value nested up to MAX_RAW_DEPTH goes raw (brackets inside
        // strings do not count); a deeper one goes as text, so the client's
        // parser (serde_json: 128 levels per frame) can read the frame.
        let nested = |depth: usize| {
            let open = r#"{"a":["x[{\"[","#.repeat(depth / 2);
            let close = "]}".repeat(depth / 2);
            format!("{open}1{close}")
        };
        for (depth, raw) in [
            (MAX_RAW_DEPTH, true),
            (MAX_RAW_DEPTH + 2, false),
            (10_000, false),
        ] {
            let deep = nested(depth);
            let env = Envelope::new(
                addr("client-4@a"),
                addr("echo@b"),
                PayloadFormat::Json,
                Bytes::from(deep.clone()),
            );
            let text = encode(&env, 4, Raw).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).expect("a readable frame");
            if raw {
                assert!(text.contains(&format!(r#""payload":{deep}}}"#)), "{depth}");
                assert!(v.get("format").is_none());
            } else {
                assert_eq!(v["format"], "text", "{depth}");
                assert_eq!(v["payload"].as_str(), Some(deep.as_str()));
            }
        }
        // Binary payloads that are text: a string marked binary, in both
        // forms, even when the bytes happen to be JSON.
        for payloads in [Strings, Raw] {
            let v: serde_json::Value =
                serde_json::from_str(&frame_of(b"[1]", PayloadFormat::Binary, payloads)).unwrap();
            assert_eq!(
                (&v["payload"], &v["format"]),
                (&"[1]".into(), &"binary".into())
            );
        }
    }

    /// A payload the node wrote itself (`Router::send_own_json`) skips the
    /// check, and its frame is byte for byte the checked one, for every
    /// kind, with and without a correlation; other cases are unchanged.
    #[test]
    fn own_json_frames_are_the_checked_frames() {
        use ClientPayloads::{Raw, Strings};
        let payloads: [&[u8]; 4] = [
            br#"{"results":[{"id":"a\"b","result":"\u00e9\n[{","worker_node":"n-1","attempt":1,"elapsed_ms":0.25}],"refused":[]}"#,
            "{\"reason\":\"déjà vu ✓\"}".as_bytes(),
            b"[]",
            b"\"a string\"",
        ];
        for payload in payloads {
            for kind in [
                EnvelopeKind::Message,
                EnvelopeKind::Undeliverable,
                EnvelopeKind::Error,
            ] {
                for correlation in [None, Some(MessageId::from_raw(77))] {
                    let mut env = Envelope::new(
                        addr("client-4@a"),
                        addr("coordinator@a"),
                        PayloadFormat::Json,
                        Bytes::copy_from_slice(payload),
                    );
                    env.kind = kind;
                    env.correlation_id = correlation;
                    for mode in [Raw, Strings] {
                        let own = encode_for(&env, 4, mode, OwnJson::Yes).unwrap();
                        assert_eq!(own, encode(&env, 4, mode).unwrap(), "{kind:?} {mode:?}");
                        serde_json::from_str::<serde_json::Value>(&own).expect("JSON");
                    }
                }
            }
        }
        // Binary payloads are never raw, own or not.
        let mut env = Envelope::new(
            addr("client-4@a"),
            addr("coordinator@a"),
            PayloadFormat::Binary,
            Bytes::from_static(b"[1]"),
        );
        env.correlation_id = Some(MessageId::from_raw(5));
        assert_eq!(
            encode_for(&env, 4, Raw, OwnJson::Yes).unwrap(),
            encode(&env, 4, Raw).unwrap()
        );
    }

    #[test]
    fn who_clients_may_address() {
        assert!(is_client(&addr("client-3@a")));
        assert!(!is_client(&addr("coordinator@a")));
        for name in ["_reply", "client-9"] {
            assert!(never_for_clients(&ActorName::new(name).unwrap()));
        }
        assert!(!never_for_clients(&ActorName::new("coordinator").unwrap()));
    }
}
