//! Wire structs of the node-to-node system protocol (gossip and join), with
//! a version.
//!
//! These travel as [`PayloadFormat::Binary`](crate::PayloadFormat::Binary)
//! payloads addressed to `system@<node>`: two bytes of little-endian
//! [`WIRE_VERSION`], then a bincode-encoded [`SystemMessage`]. Decoding is
//! bounded by [`MAX_SYSTEM_MESSAGE`] before anything is allocated, and every
//! row is validated when it is converted to a [`Member`]; logic never sees
//! the raw structs.

use bincode::Options;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::addr::{AddrError, NodeId};
use crate::member::{Load, Member, MemberStatus};

/// Version of the system protocol; a peer speaking another one is answered
/// with an Error envelope naming both versions. Version 2 added
/// heartbeats and indirect checks.
pub(crate) const WIRE_VERSION: u16 = 2;

/// Largest system message accepted, in bytes.
pub(crate) const MAX_SYSTEM_MESSAGE: u64 = 4 * 1024 * 1024;

/// Most rows accepted in one gossiped table.
pub(crate) const MAX_MEMBERS: usize = 10_000;

/// Most tags per member, and the longest tag / URL accepted.
pub(crate) const MAX_TAGS: usize = 256;
pub(crate) const MAX_TAG_LEN: usize = 256;
pub(crate) const MAX_URL_LEN: usize = 2048;

/// One message of the system protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum SystemMessage {
    /// A node joining through a seed: here is my table, send me yours.
    Join(Vec<WireMember>),
    /// A periodic push-pull round: here is my table, send me yours.
    Gossip(Vec<WireMember>),
    /// The answer to Join or Gossip: merge it, do not answer.
    Table(Vec<WireMember>),
    /// Sent to every linked member each probe interval: the sender is alive
    /// and runs this incarnation.
    Heartbeat {
        /// The sender's current incarnation.
        incarnation: u64,
    },
    /// An indirect check: "do you still hear `target`?"
    Check {
        /// The suspected member's node id.
        target: String,
    },
    /// The answer to [`SystemMessage::Check`], from the witness's own
    /// failure detector.
    CheckAnswer {
        /// The suspected member's node id.
        target: String,
        /// Whether the witness has a link to it now.
        linked: bool,
        /// Milliseconds since the witness last heard it (`u32::MAX`: never,
        /// or not watched).
        silence_ms: u32,
    },
}

/// A membership row as it travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireMember {
    pub(crate) node: String,
    pub(crate) url: String,
    pub(crate) incarnation: u64,
    pub(crate) status: u8,
    pub(crate) heartbeat: u64,
    pub(crate) tags: Vec<String>,
    pub(crate) cpu_percent: f32,
    pub(crate) in_flight: u32,
    pub(crate) queue_depth: u32,
}

/// Why a system message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WireError {
    /// Shorter than the version header.
    #[error("system message of {0} bytes is shorter than its 2-byte version header")]
    Truncated(usize),
    /// Another protocol version.
    #[error("system protocol version mismatch: peer speaks {got}, this node speaks {expected}")]
    Version { got: u16, expected: u16 },
    /// Not valid bincode, or over the size limit.
    #[error("undecodable system message")]
    Decode(#[source] bincode::Error),
    /// Too many rows.
    #[error("gossiped table has {0} rows (at most {MAX_MEMBERS} accepted)")]
    TooManyMembers(usize),
    /// A row with a bad node id.
    #[error("member row {index} has a bad node id")]
    NodeId {
        index: usize,
        #[source]
        source: AddrError,
    },
    /// A row with an impossible field.
    #[error("member row {index} is invalid: {what}")]
    InvalidRow { index: usize, what: &'static str },
    /// An indirect check (or its answer) about a bad node id.
    #[error("indirect check names a bad node id")]
    Target(#[source] AddrError),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_SYSTEM_MESSAGE)
}

/// Encodes `msg` with its version header.
pub(crate) fn encode(msg: &SystemMessage) -> Bytes {
    let mut out = WIRE_VERSION.to_le_bytes().to_vec();
    // Serializing plain structs into a Vec cannot fail except over the
    // limit, which a table of at most MAX_MEMBERS rows does not reach.
    if let Err(err) = options().serialize_into(&mut out, msg) {
        tracing::error!(%err, "cannot encode a system message");
    }
    Bytes::from(out)
}

/// Decodes a versioned system message, bounded by [`MAX_SYSTEM_MESSAGE`].
pub(crate) fn decode(bytes: &[u8]) -> Result<SystemMessage, WireError> {
    let Some((head, body)) = bytes.split_first_chunk::<2>() else {
        return Err(WireError::Truncated(bytes.len()));
    };
    let got = u16::from_le_bytes(*head);
    if got != WIRE_VERSION {
        return Err(WireError::Version {
            got,
            expected: WIRE_VERSION,
        });
    }
    options().deserialize(body).map_err(WireError::Decode)
}

fn status_code(s: MemberStatus) -> u8 {
    match s {
        MemberStatus::Up => 0,
        MemberStatus::Suspect => 1,
        MemberStatus::Down => 2,
        MemberStatus::Leaving => 3,
        MemberStatus::Left => 4,
    }
}

fn status_from_code(c: u8) -> Option<MemberStatus> {
    Some(match c {
        0 => MemberStatus::Up,
        1 => MemberStatus::Suspect,
        2 => MemberStatus::Down,
        3 => MemberStatus::Leaving,
        4 => MemberStatus::Left,
        _ => return None,
    })
}

impl From<&Member> for WireMember {
    fn from(m: &Member) -> Self {
        Self {
            node: m.node.to_string(),
            url: m.url.clone(),
            incarnation: m.incarnation,
            status: status_code(m.status),
            heartbeat: m.heartbeat,
            tags: m.tags.clone(),
            cpu_percent: m.load.cpu_percent,
            in_flight: m.load.in_flight,
            queue_depth: m.load.queue_depth,
        }
    }
}

/// Converts a table to wire rows.
pub(crate) fn to_wire(members: &[Member]) -> Vec<WireMember> {
    members.iter().map(WireMember::from).collect()
}

/// Validates the node id an indirect check is about.
pub(crate) fn check_target(target: &str) -> Result<NodeId, WireError> {
    NodeId::new(target).map_err(WireError::Target)
}

/// Validates and converts gossiped rows.
pub(crate) fn from_wire(rows: Vec<WireMember>) -> Result<Vec<Member>, WireError> {
    if rows.len() > MAX_MEMBERS {
        return Err(WireError::TooManyMembers(rows.len()));
    }
    rows.into_iter()
        .enumerate()
        .map(|(index, row)| member_from_wire(index, row))
        .collect()
}

fn member_from_wire(index: usize, row: WireMember) -> Result<Member, WireError> {
    let invalid = |what| WireError::InvalidRow { index, what };
    let node = NodeId::new(&row.node).map_err(|source| WireError::NodeId { index, source })?;
    let status = status_from_code(row.status).ok_or(invalid("unknown status code"))?;
    if row.url.len() > MAX_URL_LEN {
        return Err(invalid("URL too long"));
    }
    if row.tags.len() > MAX_TAGS || row.tags.iter().any(|t| t.len() > MAX_TAG_LEN) {
        return Err(invalid("too many or too long tags"));
    }
    if !row.cpu_percent.is_finite() || row.cpu_percent < 0.0 {
        return Err(invalid("cpu_percent is negative or not finite"));
    }
    Ok(Member {
        node,
        url: row.url,
        incarnation: row.incarnation,
        status,
        heartbeat: row.heartbeat,
        tags: row.tags,
        load: Load {
            cpu_percent: row.cpu_percent,
            in_flight: row.in_flight,
            queue_depth: row.queue_depth,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Member {
        Member {
            node: NodeId::new("node-a").unwrap(),
            url: "ws://127.0.0.1:7000".into(),
            incarnation: 3,
            status: MemberStatus::Leaving,
            heartbeat: 42,
            tags: vec!["gpu".into(), "kind:sha256".into()],
            load: Load {
                cpu_percent: 12.5,
                in_flight: 3,
                queue_depth: 9,
            },
        }
    }

    #[test]
    fn round_trips_a_table() {
        let msg = SystemMessage::Gossip(to_wire(&[sample()]));
        let bytes = encode(&msg);
        assert_eq!(&bytes[..2], &WIRE_VERSION.to_le_bytes());
        let back = decode(&bytes).unwrap();
        assert_eq!(back, msg);
        let SystemMessage::Gossip(rows) = back else {
            panic!("wrong variant")
        };
        assert_eq!(from_wire(rows).unwrap(), vec![sample()]);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut bytes = encode(&SystemMessage::Table(vec![])).to_vec();
        bytes[0] = 9;
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "system protocol version mismatch: peer speaks 9, this node speaks 2"
        );
        assert!(matches!(decode(&[1]), Err(WireError::Truncated(1))));
        assert!(matches!(decode(&[2, 0, 200]), Err(WireError::Decode(_))));
        // A huge announced length is refused without allocating it.
        let mut huge = WIRE_VERSION.to_le_bytes().to_vec();
        huge.extend_from_slice(&[1, 253, 255, 255, 255, 255, 255, 255, 255, 127]);
        assert!(matches!(decode(&huge), Err(WireError::Decode(_))));
    }

    #[test]
    fn round_trips_the_liveness_messages() {
        for msg in [
            SystemMessage::Heartbeat {
                incarnation: 1_764_237_600_123,
            },
            SystemMessage::Check {
                target: "node-b".into(),
            },
            SystemMessage::CheckAnswer {
                target: "node-b".into(),
                linked: true,
                silence_ms: u32::MAX,
            },
        ] {
            assert_eq!(decode(&encode(&msg)).unwrap(), msg);
        }
        // A heartbeat is a dozen bytes: cheap enough for every link, 10 per second.
        assert!(
            encode(&SystemMessage::Heartbeat {
                incarnation: u64::MAX
            })
            .len()
                <= 12
        );
        assert!(check_target("node-b").is_ok());
        assert!(matches!(check_target("a b"), Err(WireError::Target(_))));
    }

    #[test]
    fn validates_rows() {
        let mut row = WireMember::from(&sample());
        row.node = "bad node".into();
        assert!(matches!(
            from_wire(vec![row]),
            Err(WireError::NodeId { index: 0, .. })
        ));
        let mut row = WireMember::from(&sample());
        row.status = 77;
        assert!(matches!(
            from_wire(vec![row]),
            Err(WireError::InvalidRow { .. })
        ));
        let mut row = WireMember::from(&sample());
        row.cpu_percent = f32::NAN;
        assert!(from_wire(vec![row]).is_err());
        let mut row = WireMember::from(&sample());
        row.tags = vec!["x".repeat(MAX_TAG_LEN + 1)];
        assert!(from_wire(vec![row]).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut versioned = WIRE_VERSION.to_le_bytes().to_vec();
            versioned.extend_from_slice(&bytes);
            match decode(&versioned) {
                Ok(SystemMessage::Gossip(rows) | SystemMessage::Join(rows) | SystemMessage::Table(rows)) => {
                    let _ = from_wire(rows);
                }
                Ok(SystemMessage::Check { target } | SystemMessage::CheckAnswer { target, .. }) => {
                    let _ = check_target(&target);
                }
                _ => {}
            }
        }
    }
}
