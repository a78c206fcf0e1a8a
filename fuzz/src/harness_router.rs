//! cluster-router: actor addresses and the versioned system (gossip / join)
//! protocol.

use cluster_router::{ActorAddr, ActorName, NodeId};

use crate::member::{Load, Member, MemberStatus};
use crate::router_wire::{self, SystemMessage, MAX_MEMBERS, WIRE_VERSION};

/// Parses `data` as an address the way every received envelope's `to` and
/// `from` are parsed, through `FromStr`, `parse` and serde, and checks that
/// an accepted address prints back to its input.
pub fn fuzz_router_addr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<ActorAddr>();
    assert_eq!(parsed.is_ok(), ActorAddr::parse(&text).is_ok());
    match parsed {
        Ok(addr) => {
            assert_eq!(addr.to_string(), text, "an address does not print as parsed");
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
pub fn fuzz_router_system_wire(data: &[u8]) {
    let Ok(msg) = router_wire::decode(data) else {
        return;
    };
    let bytes = router_wire::encode(&msg);
    let back = router_wire::decode(&bytes).expect("our own encoding decodes");
    // Compare encodings: rows may carry NaN loads, which are != themselves.
    assert_eq!(router_wire::encode(&back), bytes);
    let rows = match msg {
        SystemMessage::Join(rows) | SystemMessage::Gossip(rows) | SystemMessage::Table(rows) => {
            rows
        }
    };
    let Ok(members) = router_wire::from_wire(rows) else {
        return;
    };
    assert!(members.len() <= MAX_MEMBERS);
    let wire_rows = router_wire::to_wire(&members);
    let again = router_wire::from_wire(wire_rows).expect("validated rows stay valid");
    assert_eq!(again, members);
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

/// Seeds: a few addresses, valid and near-valid.
pub fn seeds_router_addr() -> Vec<Vec<u8>> {
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

/// Seeds: every message kind with empty, one-row and three-row tables, and
/// a message of another version.
pub fn seeds_router_system_wire() -> Vec<Vec<u8>> {
    let rows = router_wire::to_wire(&sample_members());
    let mut out = vec![
        router_wire::encode(&SystemMessage::Join(rows[..1].to_vec())).to_vec(),
        router_wire::encode(&SystemMessage::Gossip(rows.clone())).to_vec(),
        router_wire::encode(&SystemMessage::Table(Vec::new())).to_vec(),
        router_wire::encode(&SystemMessage::Table(rows)).to_vec(),
    ];
    let mut other = out[0].clone();
    other[..2].copy_from_slice(&(WIRE_VERSION + 1).to_le_bytes());
    out.push(other);
    out
}
