//! Entry points for the fuzz targets in `/fuzz` (behind the `fuzzing`
//! feature); not a stable API.
//!
//! Each function takes arbitrary input, runs the real decoder(s) of this
//! crate on it exactly as the router does with what arrives from a link or
//! an external client, and
//! checks the round trips of what is accepted. None of them panics on any
//! input; a panic is a violated invariant, i.e. a bug (what the fuzzers look
//! for). The `*_seeds` functions build seed inputs with the real encoders.
//! The same functions are run on stable by `tests/fuzz_smoke.rs` of the main
//! workspace and by `fuzz/tests/seeds.rs`.

use bytes::Bytes;
use cluster_transport as transport;
use cluster_transport::ClientPayloads;

use crate::addr::{ActorAddr, ActorName, NodeId};
use crate::client;
use crate::envelope::{Envelope, EnvelopeKind, MessageId, PayloadFormat};
use crate::header;
use crate::ids::TagCipher;
use crate::member::{Load, Member, MemberStatus};
use crate::system::Command;
use crate::wire::{self, SystemMessage, MAX_MEMBERS, WIRE_VERSION};

/// Parses `data` (lossy UTF-8) as an address the way every received
/// envelope's `to` and `from` are parsed, through `FromStr`, `parse`,
/// `parse_reusing` and serde, and checks that an accepted address prints
/// back to its input.
pub fn addr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<ActorAddr>();
    assert_eq!(parsed.is_ok(), ActorAddr::parse(&text).is_ok());
    // The receive path reuses a known node id when the node part names one.
    let known = NodeId::new(text.rsplit('@').next().unwrap_or_default()).ok();
    let reused = ActorAddr::parse_reusing(&text, &known.iter().collect::<Vec<_>>());
    match (&reused, &parsed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("parse_reusing gave {a:?}, parse gave {b:?}"),
    }
    match parsed {
        Ok(addr) => {
            assert_eq!(
                addr.to_string(),
                text,
                "an address does not print as parsed"
            );
            assert_eq!(addr.to_wire(), text);
            let again = ActorAddr::parse(&addr.to_string()).expect("printed address parses");
            assert_eq!(again, addr);
            let rebuilt = ActorAddr::new(
                ActorName::new(addr.actor().as_str()).expect("actor part is valid"),
                NodeId::new(addr.node().as_str()).expect("node part is valid"),
            );
            assert_eq!(rebuilt, addr);
            let json = serde_json::to_string(&addr).expect("serializes");
            let back: ActorAddr = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, addr);
        }
        Err(err) => {
            // Error messages echo (truncated) input: must not panic on any char.
            let _ = err.to_string();
        }
    }
    // Serde path with escapes and borrowed / owned strings.
    let _ = serde_json::from_slice::<ActorAddr>(data);
    let _ = serde_json::from_slice::<NodeId>(data);
    let _ = NodeId::new(&text).map(|n| n.to_string());
    let _ = ActorName::new(&text).map(|n| n.to_string());
}

/// Decodes `data` as a system message payload (what the `system` actor does
/// with every binary envelope), validates the rows as a merge does, and
/// checks the round trip of what is accepted.
pub fn system_wire(data: &[u8]) {
    let Ok(msg) = wire::decode(data) else {
        return;
    };
    let bytes = wire::encode(&msg);
    let back = wire::decode(&bytes).expect("our own encoding decodes");
    // Compare encodings: rows may carry NaN loads, which are != themselves.
    assert_eq!(wire::encode(&back), bytes);
    let rows = match msg {
        SystemMessage::Join(rows) | SystemMessage::Gossip(rows) | SystemMessage::Table(rows) => {
            rows
        }
        SystemMessage::Check { target } | SystemMessage::CheckAnswer { target, .. } => {
            if let Ok(node) = wire::check_target(&target) {
                assert_eq!(node.as_str(), target);
            }
            return;
        }
        SystemMessage::Heartbeat { .. } => return,
    };
    let Ok(members) = wire::from_wire(rows) else {
        return;
    };
    assert!(members.len() <= MAX_MEMBERS);
    for m in &members {
        assert!(m.load.cpu_percent.is_finite() && m.load.cpu_percent >= 0.0);
    }
    let again = wire::from_wire(wire::to_wire(&members)).expect("validated rows stay valid");
    assert_eq!(again, members);
}

/// Decodes `data` as the router's header of an envelope received from a
/// node (what the router does with every envelope of every batch), and
/// checks that what is accepted re-encodes to exactly the same bytes, that
/// known node ids are shared instead of allocated, and that the payload is
/// passed through untouched.
pub fn envelope_header(data: &[u8]) {
    let node_a = NodeId::new("node-a").expect("valid node id");
    let node_b = NodeId::new("node-b").expect("valid node id");
    let known = [&node_a, &node_b];
    let payload = Bytes::from_static(b"{\"n\":1}");
    let raw = transport::Envelope::new(Bytes::copy_from_slice(data), payload.clone());
    let env = match header::from_wire(raw, &known) {
        Ok(env) => env,
        Err(err) => {
            let _ = crate::route::error_chain(&err);
            return;
        }
    };
    assert_ne!(env.id.get(), 0, "an accepted header has an id");
    assert_ne!(env.correlation_id.map(MessageId::get), Some(0));
    for addr in [&env.to, &env.from] {
        if let Some(node) = known.iter().find(|n| n.as_str() == addr.node().as_str()) {
            let shared = std::ptr::eq(addr.node().as_str(), node.as_str());
            assert!(shared, "a known node id was copied");
        }
    }
    let again = header::to_wire(env.clone());
    assert_eq!(&again.header[..], data, "the header layout is canonical");
    assert_eq!(again.payload, payload);
    let back = header::from_wire(again, &[]).expect("own output decodes");
    assert_eq!(back, env);
}

/// Runs the client edge on `data` as one text frame from external client 4
/// of `node-a`: decodes it as the router does, builds the envelope a client
/// may send, and checks the rules: the router sets the sender, kind, format
/// and ids (the client's tag never becomes the internal id, and comes back
/// as the correlation of the answers), and what the client is sent back is
/// a JSON envelope whose payload is the original text.
pub fn client_envelope(data: &[u8]) {
    const CLIENT: u64 = 4;
    let me = ActorAddr::parse("client-4@node-a").expect("valid address");
    let msg = match client::decode(data) {
        Ok(msg) => msg,
        Err(err) => {
            let frame = client::error_frame(&crate::route::error_chain(&err));
            let v: serde_json::Value = serde_json::from_str(&frame).expect("error frame is JSON");
            let why = v["error"].as_str().expect("a string");
            assert!(why.len() <= crate::MAX_ERROR_TEXT, "{} bytes", why.len());
            return;
        }
    };
    let id = client::message_id(CLIENT, msg.tag);
    assert_eq!(TagCipher::global().decipher(CLIENT, id.get()), msg.tag);
    let node = NodeId::new("node-a").expect("valid node id");
    let Ok(to) = ActorAddr::parse_reusing(&msg.to, &[&node]) else {
        return;
    };
    let env = Envelope {
        id,
        ..Envelope::new(to, me.clone(), PayloadFormat::Json, msg.payload.clone())
    };
    assert!(client::sent_by_client(&env));
    assert_eq!(env.correlation_id, None);
    let _ = client::never_for_clients(env.to.actor());
    // The node path carries it unchanged.
    let back = header::from_wire(header::to_wire(env.clone()), &[&node]).expect("decodes");
    assert_eq!(back, env);
    // Answers come back with the client's tag; the payload as sent.
    let answers = [env.reply(msg.payload.clone()), env.error_reply("refused")];
    for answer in &answers {
        raw_answer(answer, CLIENT, msg.tag);
    }
    for answer in answers {
        let Ok(text) = client::encode(&answer, CLIENT, ClientPayloads::Strings) else {
            assert!(
                answer.payload_str().is_none(),
                "only non-text payloads are refused"
            );
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).expect("own output is JSON");
        assert_eq!(v["correlation_id"].as_u64().unwrap_or(0), msg.tag);
        assert_eq!(v["from"].as_str(), Some(env.to.to_string().as_str()));
        assert_eq!(v["to"].as_str(), Some("client-4@node-a"));
        assert!(v.get("id").is_none(), "internal ids stay inside");
        let again = client::decode(text.as_bytes()).expect("an answer reads as an envelope");
        assert_eq!(again.payload, answer.payload);
    }
}

/// The raw form of `answer` for a client that asked for raw payloads: a
/// payload without a `format` is the payload's own JSON (as sent, without
/// the whitespace around it), one with `"format":"text"` a string holding
/// the payload's text, which then is not JSON.
fn raw_answer(answer: &Envelope, client: u64, tag: u64) {
    let Ok(text) = client::encode(answer, client, ClientPayloads::Raw) else {
        assert!(
            answer.payload_str().is_none(),
            "only non-text payloads are refused"
        );
        return;
    };
    #[derive(serde::Deserialize)]
    struct Out<'a> {
        #[serde(borrow)]
        payload: &'a serde_json::value::RawValue,
        format: Option<String>,
        #[serde(default)]
        correlation_id: u64,
    }
    let out: Out<'_> = serde_json::from_str(&text).expect("own output is JSON");
    assert_eq!(out.correlation_id, tag);
    let sent = answer.payload_str().expect("encoded, so text");
    match out.format.as_deref() {
        None => {
            let trimmed = sent.trim_matches([' ', '\t', '\n', '\r']);
            assert_eq!(
                out.payload.get(),
                trimmed,
                "a JSON payload travels as it is"
            );
        }
        Some("text") => {
            let value: String = serde_json::from_str(out.payload.get()).expect("a string");
            assert_eq!(value, sent);
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(sent).is_err());
        }
        Some(other) => panic!("format {other} for a Json payload"),
    }
}

/// Parses `data` as the JSON command payload of an envelope to the `system`
/// actor (`{"cmd":"members"}`), and builds the answer's error reply when it
/// is refused: the reason must travel as a JSON string.
pub fn system_command_json(data: &[u8]) {
    match Command::parse(data) {
        Ok(command) => {
            // serde also takes a struct's sequence form (`["members"]`).
            let value: serde_json::Value = serde_json::from_slice(data).expect("parsed as JSON");
            let cmd = match &value {
                serde_json::Value::Array(items) => &items[0],
                other => &other["cmd"],
            };
            assert_eq!(cmd.as_str(), Some(command.name()));
        }
        Err(reason) => {
            let request = Envelope::new(
                ActorAddr::parse("system@node-a").expect("valid address"),
                ActorAddr::parse("client-1@node-a").expect("valid address"),
                PayloadFormat::Json,
                Bytes::copy_from_slice(data),
            );
            let reply = request.error_reply(&reason);
            assert_eq!(reply.kind, EnvelopeKind::Error);
            let text: String = reply.payload_json().expect("error reason is a JSON string");
            // A long reason is cut (found by this fuzzer: a reason quoting
            // a hundred escaped control characters of the payload).
            assert_eq!(text, crate::bound_text(&reason));
            assert!(text.len() <= crate::MAX_ERROR_TEXT, "{} bytes", text.len());
        }
    }
}

fn sample_members() -> Vec<Member> {
    let node = |s: &str| NodeId::new(s).expect("valid node id");
    vec![
        Member {
            node: node("node-a"),
            url: "ws://127.0.0.1:7000".into(),
            incarnation: 3,
            status: MemberStatus::Up,
            heartbeat: 42,
            tags: vec!["gpu".into(), "kind:sha256".into()],
            load: Load {
                cpu_percent: 12.5,
                in_flight: 3,
                queue_depth: 9,
            },
        },
        Member {
            node: node("node-b"),
            url: "ws://127.0.0.1:7001".into(),
            incarnation: 1,
            status: MemberStatus::Leaving,
            heartbeat: 7,
            tags: Vec::new(),
            load: Load::default(),
        },
        Member {
            node: node("n.3_x-9"),
            url: String::new(),
            incarnation: u64::MAX,
            status: MemberStatus::Left,
            heartbeat: 0,
            tags: vec!["kind:echo".into()],
            load: Load {
                cpu_percent: 400.0,
                in_flight: u32::MAX,
                queue_depth: 0,
            },
        },
    ]
}

/// Seeds for [`addr`]: a few addresses, valid and near-valid.
pub fn addr_seeds() -> Vec<Vec<u8>> {
    let long = "x".repeat(64);
    [
        "worker@node-b".to_owned(),
        "system@a".to_owned(),
        "client-17@node-a".to_owned(),
        "A.b_c-9@n".to_owned(),
        format!("{long}@{long}"),
        "\"echo@node-b\"".to_owned(),
        "worker@node@b".to_owned(),
        "nobody".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Seeds for [`system_wire`]: every message kind with empty, one-row and
/// three-row tables, and a message of another version.
pub fn system_wire_seeds() -> Vec<Vec<u8>> {
    let rows = wire::to_wire(&sample_members());
    let mut out = vec![
        wire::encode(&SystemMessage::Join(rows[..1].to_vec())).to_vec(),
        wire::encode(&SystemMessage::Gossip(rows.clone())).to_vec(),
        wire::encode(&SystemMessage::Table(Vec::new())).to_vec(),
        wire::encode(&SystemMessage::Table(rows)).to_vec(),
        wire::encode(&SystemMessage::Heartbeat { incarnation: 42 }).to_vec(),
        wire::encode(&SystemMessage::Check {
            target: "node-b".into(),
        })
        .to_vec(),
        wire::encode(&SystemMessage::CheckAnswer {
            target: "node-b".into(),
            linked: false,
            silence_ms: 1500,
        })
        .to_vec(),
    ];
    let mut other = out[0].clone();
    other[..2].copy_from_slice(&(WIRE_VERSION + 1).to_le_bytes());
    out.push(other);
    out
}

/// Seeds for [`envelope_header`]: node envelopes of every kind, with and
/// without correlation, and a malformed one.
pub fn envelope_header_seeds() -> Vec<Vec<u8>> {
    let addr = |s: &str| ActorAddr::parse(s).expect("valid address");
    let request = Envelope::new(
        addr("worker@node-b"),
        addr("coordinator@node-a"),
        PayloadFormat::Binary,
        Bytes::new(),
    );
    // Fixed ids (fresh ones are random): the committed seeds stay current.
    let request = Envelope {
        id: MessageId::from_raw(0x0123_4567_89ab_cdef),
        ..request
    };
    let answers = [
        request.reply(Bytes::new()),
        request.undeliverable("gone").expect("a message bounces"),
        request.error_reply("bad"),
    ];
    let mut out: Vec<Vec<u8>> = answers
        .into_iter()
        .enumerate()
        .map(|(i, answer)| Envelope {
            id: MessageId::from_raw(i as u64 + 1),
            ..answer
        })
        .chain([request])
        .map(|e| header::encode_header(&e).to_vec())
        .collect();
    let mut bad = out[0].clone();
    bad.push(0);
    out.push(bad);
    out
}

/// Seeds for [`client_envelope`]: what clients send (tagged, untagged, with
/// object payloads, with the fields only the router may set), and garbage.
pub fn client_envelope_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"to":"coordinator@node-a","from":"","payload":"{\"kind\":\"echo\"}","id":1}"#,
        r#"{"to":"echo@node-b","payload":{"say":"hi","n":[1,2.5,null,true]}}"#,
        r#"{"to":"system@node-a","payload":{"cmd":"ping"},"id":18446744073709551615}"#,
        r#"{"to":"_reply@node-a","payload":"x","kind":"undeliverable","correlation_id":7,"format":"binary"}"#,
        r#"{"to":"nobody","payload":1}"#,
        r#"{"payload":1}"#,
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Seeds for [`system_command_json`]: each command, an unknown one,
/// malformed ones, and one whose refusal is longer than an error text may be.
pub fn system_command_json_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Command::ALL
        .iter()
        .map(|c| format!(r#"{{"cmd":"{}"}}"#, c.name()).into_bytes())
        .collect();
    out.push(br#"{"cmd":"reboot","force":true}"#.to_vec());
    out.push(br#"{"cmd":7}"#.to_vec());
    out.push(br#"{"cmd":"pi\u006eg"}"#.to_vec());
    out.push(b"[\"members\"]".to_vec());
    // A refusal that quotes the payload at more than `MAX_ERROR_TEXT`.
    out.push(format!("\"m{}\"", "\u{7f}".repeat(110)).into_bytes());
    out
}
