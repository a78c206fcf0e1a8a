//! Entry points for the fuzz targets in `/fuzz`; not a stable API.
//!
//! Each function takes arbitrary input, runs the real decoder(s) of this
//! crate on it exactly as the router does with what arrives from a link, and
//! checks the round trips of what is accepted. None of them panics on any
//! input; a panic is a violated invariant, i.e. a bug (what the fuzzers look
//! for). The `*_seeds` functions build seed inputs with the real encoders.
//! The same functions are run on stable by `tests/fuzz_smoke.rs` of the main
//! workspace and by `fuzz/tests/seeds.rs`.

use bytes::Bytes;
use cluster_transport as transport;

use crate::addr::{ActorAddr, ActorName, NodeId};
use crate::convert;
use crate::envelope::{Envelope, EnvelopeKind, MessageId, PayloadFormat};
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

/// Splits the fuzz input for [`envelope_from_transport`]: byte 0 holds
/// flags, the rest (lossy UTF-8) is `to`, `from`, then known node ids, one
/// per line.
struct EnvelopeInput {
    flags: u8,
    to: String,
    from: String,
    known: Vec<NodeId>,
}

impl EnvelopeInput {
    const CLIENT: u8 = 0b0000_0100;
    const BINARY: u8 = 0b0000_1000;
    const NO_ID: u8 = 0b0001_0000;
    const CORRELATED: u8 = 0b0010_0000;

    fn parse(data: &[u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let text = String::from_utf8_lossy(rest);
        let mut lines = text.split('\n');
        let to = lines.next().unwrap_or_default().to_owned();
        let from = lines.next().unwrap_or_default().to_owned();
        let known = lines.filter_map(|l| NodeId::new(l).ok()).take(8).collect();
        Some(Self {
            flags,
            to,
            from,
            known,
        })
    }

    fn kind(&self) -> transport::EnvelopeKind {
        match self.flags & 0b11 {
            1 => transport::EnvelopeKind::Undeliverable,
            2 => transport::EnvelopeKind::Error,
            _ => transport::EnvelopeKind::Message,
        }
    }
}

/// Runs `convert::from_transport` (the router's boundary with the
/// transport, through `ActorAddr::parse_reusing`) on an envelope built from
/// `data` (see [`EnvelopeInput`]): it must accept exactly the envelopes
/// whose addresses `ActorAddr::parse` accepts, share known node ids instead
/// of allocating, and round-trip through `to_transport`.
pub fn envelope_from_transport(data: &[u8]) {
    let Some(input) = EnvelopeInput::parse(data) else {
        return;
    };
    let client = ActorAddr::parse("client-1@node-a").expect("valid address");
    let from_override = (input.flags & EnvelopeInput::CLIENT != 0).then_some(&client);
    let id = if input.flags & EnvelopeInput::NO_ID != 0 {
        0
    } else {
        u64::from(input.flags) << 32 | 7
    };
    let correlation_id = if input.flags & EnvelopeInput::CORRELATED != 0 {
        id.wrapping_add(1)
    } else {
        0
    };
    let format = if input.flags & EnvelopeInput::BINARY != 0 {
        transport::PayloadFormat::Binary
    } else {
        transport::PayloadFormat::Json
    };
    let wire_env = transport::Envelope {
        to: input.to.clone(),
        from: input.from.clone(),
        id,
        correlation_id,
        kind: input.kind(),
        format,
        payload: Bytes::from_static(b"{\"n\":1}"),
    };
    let known: Vec<&NodeId> = input.known.iter().collect();
    let result = convert::from_transport(wire_env.clone(), &known, from_override);
    let to = ActorAddr::parse(&input.to);
    let from = match from_override {
        Some(addr) => Ok(addr.clone()),
        None => ActorAddr::parse(&input.from),
    };
    let env = match (result, from, to) {
        (Ok(env), Ok(from), Ok(to)) => {
            assert_eq!((&env.to, &env.from), (&to, &from));
            env
        }
        (Err(err), from, to) => {
            assert!(
                from.is_err() || to.is_err(),
                "refused valid addresses: {err}"
            );
            let _ = err.to_string();
            return;
        }
        (Ok(env), from, to) => panic!("accepted {env:?} although {from:?} / {to:?}"),
    };
    if let Some(node) = known.iter().find(|n| n.as_str() == env.to.node().as_str()) {
        let shared = std::ptr::eq(env.to.node().as_str(), node.as_str());
        assert!(shared, "a known node id was copied");
    }
    assert_ne!(env.id.0, 0, "an envelope without id got none");
    if id != 0 {
        assert_eq!(env.id, MessageId(id));
    }
    assert_eq!(env.correlation_id.is_some(), correlation_id != 0);
    let back = convert::to_transport(env.clone());
    assert_eq!(back.to, input.to);
    assert_eq!(
        back.from,
        from_override.map_or(input.from, ActorAddr::to_wire)
    );
    assert_eq!((back.kind, back.format), (wire_env.kind, wire_env.format));
    assert_eq!(back.payload, wire_env.payload);
    let again = convert::from_transport(back, &known, None).expect("own output converts");
    assert_eq!(again, env);
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
            assert_eq!(text, reason);
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

/// Seeds for [`envelope_from_transport`]: node and client envelopes, with
/// and without known node ids, and malformed addresses.
pub fn envelope_from_transport_seeds() -> Vec<Vec<u8>> {
    let c = EnvelopeInput::CLIENT;
    let b = EnvelopeInput::BINARY;
    let n = EnvelopeInput::NO_ID;
    let r = EnvelopeInput::CORRELATED;
    [
        (0, "worker@node-b\ncoordinator@node-a\nnode-a\nnode-b"),
        (b | r | 1, "coordinator@node-a\nworker@node-b\nnode-a"),
        (c | n, "echo@node-b\nforged@z"),
        (2, "system@node-a\nsystem@node-b"),
        (0, "nobody\nc@a"),
        (b, "w@b\nc@@a\nb"),
    ]
    .into_iter()
    .map(|(flags, text)| [&[flags][..], text.as_bytes()].concat())
    .collect()
}

/// Seeds for [`system_command_json`]: each command, an unknown one and
/// malformed ones.
pub fn system_command_json_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Command::ALL
        .iter()
        .map(|c| format!(r#"{{"cmd":"{}"}}"#, c.name()).into_bytes())
        .collect();
    out.push(br#"{"cmd":"reboot","force":true}"#.to_vec());
    out.push(br#"{"cmd":7}"#.to_vec());
    out.push(br#"{"cmd":"pi\u006eg"}"#.to_vec());
    out.push(b"[\"members\"]".to_vec());
    out
}
