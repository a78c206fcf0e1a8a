//! Actor addresses: `actor@node`.
//!
//! Both parts are 1..=64 characters of `[A-Za-z0-9_.-]`; the address has
//! exactly one `@`. The parts are reference-counted strings, so cloning an
//! address (done for every envelope on the hot path) is two atomic increments
//! and no allocation.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest allowed actor name or node id, in characters.
pub const MAX_PART_LEN: usize = 64;

/// Which part of an address a parse error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrPart {
    /// The actor name, before the `@`.
    Actor,
    /// The node id, after the `@`.
    Node,
}

impl fmt::Display for AddrPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrPart::Actor => "actor name",
            AddrPart::Node => "node id",
        })
    }
}

/// Why a string is not a valid actor name, node id or address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The address has no `@` separator.
    #[error("address {input:?} has no '@' (expected actor@node)")]
    MissingAt {
        /// The rejected input (truncated to 100 characters).
        input: String,
    },
    /// The address has more than one `@`.
    #[error("address {input:?} has more than one '@' (second one at byte {position})")]
    MultipleAt {
        /// The rejected input (truncated to 100 characters).
        input: String,
        /// Byte offset of the second `@` in the address.
        position: usize,
    },
    /// A part is empty.
    #[error("{part} is empty (expected 1..={MAX_PART_LEN} characters of [A-Za-z0-9_.-])")]
    Empty {
        /// The empty part.
        part: AddrPart,
    },
    /// A part is longer than [`MAX_PART_LEN`] characters.
    #[error("{part} is {len} characters long (at most {MAX_PART_LEN} allowed)")]
    TooLong {
        /// The part that is too long.
        part: AddrPart,
        /// Its length in characters.
        len: usize,
    },
    /// A part contains a character outside `[A-Za-z0-9_.-]`.
    #[error("{part} contains {character:?} at position {position} (allowed: [A-Za-z0-9_.-])")]
    InvalidChar {
        /// The part holding the character.
        part: AddrPart,
        /// The offending character.
        character: char,
        /// Character position (0-based) inside the part.
        position: usize,
    },
}

fn truncated(input: &str) -> String {
    input.chars().take(100).collect()
}

/// Whether `c` may appear in an actor name or node id.
pub(crate) fn is_part_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn validate_part(s: &str, part: AddrPart) -> Result<(), AddrError> {
    if s.is_empty() {
        return Err(AddrError::Empty { part });
    }
    for (position, character) in s.chars().enumerate() {
        if position >= MAX_PART_LEN {
            return Err(AddrError::TooLong {
                part,
                len: s.chars().count(),
            });
        }
        if !is_part_char(character) {
            return Err(AddrError::InvalidChar {
                part,
                character,
                position,
            });
        }
    }
    Ok(())
}

macro_rules! part_newtype {
    ($(#[$doc:meta])* $name:ident, $part:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `s` and wraps it.
            ///
            /// # Errors
            ///
            /// [`AddrError`] when `s` is empty, longer than 64 characters or
            /// holds a character outside `[A-Za-z0-9_.-]`.
            pub fn new(s: &str) -> Result<Self, AddrError> {
                validate_part(s, $part)?;
                Ok(Self(Arc::from(s)))
            }

            /// The text of this part.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = AddrError;
            fn from_str(s: &str) -> Result<Self, AddrError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

part_newtype!(
    /// The name of an actor on its node (`worker`, `system`, `client-7`).
    ActorName,
    AddrPart::Actor
);

part_newtype!(
    /// The logical name of a node (`node-a`), never a host:port; the
    /// membership table resolves it to a WebSocket URL.
    NodeId,
    AddrPart::Node
);

/// The address of an actor anywhere in the cluster: `actor@node`.
///
/// ```
/// use cluster_router::ActorAddr;
///
/// let addr: ActorAddr = "worker@node-b".parse()?;
/// assert_eq!(addr.actor().as_str(), "worker");
/// assert_eq!(addr.node().as_str(), "node-b");
/// assert_eq!(addr.to_string(), "worker@node-b");
///
/// let err = "worker@node@b".parse::<ActorAddr>().unwrap_err();
/// assert!(err.to_string().contains("more than one '@'"));
/// # Ok::<(), cluster_router::AddrError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorAddr {
    actor: ActorName,
    node: NodeId,
}

impl ActorAddr {
    /// Builds an address from its parts (no allocation: the parts are shared).
    pub fn new(actor: ActorName, node: NodeId) -> Self {
        Self { actor, node }
    }

    /// Parses `actor@node`.
    ///
    /// # Errors
    ///
    /// [`AddrError`] saying what is wrong: missing or repeated `@`, or which
    /// part is empty, too long, or holds which bad character at which position.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        let Some(at) = s.find('@') else {
            return Err(AddrError::MissingAt {
                input: truncated(s),
            });
        };
        let (actor, rest) = (&s[..at], &s[at + 1..]);
        if let Some(second) = rest.find('@') {
            return Err(AddrError::MultipleAt {
                input: truncated(s),
                position: at + 1 + second,
            });
        }
        Ok(Self {
            actor: ActorName::new(actor)?,
            node: NodeId::new(rest)?,
        })
    }

    /// Parses `actor@node`, reusing `node` (no allocation for that part) when
    /// the node part equals it. Used on the receive path, where most
    /// addresses name this node or the sending peer.
    pub(crate) fn parse_reusing(s: &str, known: &[&NodeId]) -> Result<Self, AddrError> {
        if let Some(at) = s.find('@') {
            let rest = &s[at + 1..];
            if let Some(node) = known.iter().find(|n| n.as_str() == rest) {
                return Ok(Self {
                    actor: ActorName::new(&s[..at])?,
                    node: (*node).clone(),
                });
            }
        }
        Self::parse(s)
    }

    /// The actor name part.
    pub fn actor(&self) -> &ActorName {
        &self.actor
    }

    /// The node id part.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The address as a freshly allocated `String`, sized exactly.
    pub(crate) fn to_wire(&self) -> String {
        let mut s = String::with_capacity(self.actor.0.len() + 1 + self.node.0.len());
        s.push_str(&self.actor.0);
        s.push('@');
        s.push_str(&self.node.0);
        s
    }
}

impl fmt::Display for ActorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.actor, self.node)
    }
}

impl fmt::Debug for ActorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorAddr({}@{})", self.actor, self.node)
    }
}

impl FromStr for ActorAddr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        Self::parse(s)
    }
}

impl Serialize for ActorAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for ActorAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_valid_addresses() {
        let a = ActorAddr::parse("worker@node-b").unwrap();
        assert_eq!(a.actor(), "worker");
        assert_eq!(a.node(), "node-b");
        assert_eq!(a.to_wire(), "worker@node-b");
        let long = "x".repeat(64);
        assert!(ActorAddr::parse(&format!("{long}@{long}")).is_ok());
        assert!(ActorAddr::parse("A.b_c-9@n").is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(
            ActorAddr::parse("worker"),
            Err(AddrError::MissingAt { .. })
        ));
        assert_eq!(
            ActorAddr::parse("a@b@c").unwrap_err(),
            AddrError::MultipleAt {
                input: "a@b@c".into(),
                position: 3
            }
        );
        assert_eq!(
            ActorAddr::parse("@node").unwrap_err(),
            AddrError::Empty {
                part: AddrPart::Actor
            }
        );
        assert_eq!(
            ActorAddr::parse("a@").unwrap_err(),
            AddrError::Empty {
                part: AddrPart::Node
            }
        );
        let err = ActorAddr::parse("wor ker@n").unwrap_err();
        assert_eq!(
            err,
            AddrError::InvalidChar {
                part: AddrPart::Actor,
                character: ' ',
                position: 3
            }
        );
        assert!(err
            .to_string()
            .contains("actor name contains ' ' at position 3"));
        let err = ActorAddr::parse(&format!("a@{}", "n".repeat(65))).unwrap_err();
        assert_eq!(
            err,
            AddrError::TooLong {
                part: AddrPart::Node,
                len: 65
            }
        );
        assert!(err.to_string().contains("node id is 65 characters long"));
        let err = ActorAddr::parse("a@nödé").unwrap_err();
        assert!(matches!(
            err,
            AddrError::InvalidChar {
                part: AddrPart::Node,
                character: 'ö',
                position: 1
            }
        ));
    }

    #[test]
    fn parse_reusing_shares_the_known_node() {
        let me = NodeId::new("node-a").unwrap();
        let a = ActorAddr::parse_reusing("w@node-a", &[&me]).unwrap();
        assert!(Arc::ptr_eq(&a.node().0, &me.0));
        let b = ActorAddr::parse_reusing("w@node-b", &[&me]).unwrap();
        assert_eq!(b.node(), "node-b");
        assert!(ActorAddr::parse_reusing("w@node-a@x", &[&me]).is_err());
        assert!(ActorAddr::parse_reusing("w w@node-a", &[&me]).is_err());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let a = ActorAddr::parse("w@n").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"w@n\"");
        let back: ActorAddr = serde_json::from_str("\"w@n\"").unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<ActorAddr>("\"w@\"").is_err());
    }

    fn part() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,64}"
    }

    proptest! {
        #[test]
        fn display_and_fromstr_round_trip(actor in part(), node in part()) {
            let text = format!("{actor}@{node}");
            let addr: ActorAddr = text.parse().unwrap();
            prop_assert_eq!(addr.to_string(), text.clone());
            prop_assert_eq!(addr.to_wire(), text);
            let again: ActorAddr = addr.to_string().parse().unwrap();
            prop_assert_eq!(again, addr);
        }

        #[test]
        fn arbitrary_strings_never_panic_and_valid_ones_round_trip(s in "\\PC{0,140}") {
            if let Ok(addr) = s.parse::<ActorAddr>() {
                prop_assert_eq!(addr.to_string(), s);
            }
        }

        #[test]
        fn bad_characters_are_located(actor in part(), bad in "[^A-Za-z0-9_.@-]", pos in 0usize..64) {
            let mut chars: Vec<char> = actor.chars().collect();
            let pos = pos.min(chars.len());
            let bad_char = bad.chars().next().unwrap();
            chars.insert(pos, bad_char);
            let name: String = chars.iter().collect();
            let err = ActorAddr::parse(&format!("{name}@n")).unwrap_err();
            if pos < MAX_PART_LEN {
                prop_assert_eq!(err, AddrError::InvalidChar { part: AddrPart::Actor, character: bad_char, position: pos });
            }
        }
    }
}
