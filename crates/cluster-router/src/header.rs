//! The router's header on node links: what the transport carries, opaque,
//! in front of each payload ([`cluster_transport::Envelope::header`]).
//!
//! ```text
//! flags: u8            bits 0-1 kind (0 Message, 1 Undeliverable, 2 Error)
//!                      bit 2    format (0 Json, 1 Binary)
//!                      bit 3    a correlation id follows
//!                      bits 4-7 header version (HEADER_VERSION)
//! id: u64 LE           never 0
//! correlation: u64 LE  only with bit 3; never 0
//! to_len: u8, to       "actor@node", UTF-8
//! from_len: u8, from   "actor@node", UTF-8
//! ```
//!
//! Decoding is bounded (every length is checked against the bytes left
//! before it is used; an address is at most 129 bytes) and refuses anything
//! else: another version, an unknown kind, a zero id, trailing bytes, a
//! malformed address. See `docs/wire.md`.

use bytes::{BufMut, Bytes, BytesMut};
use cluster_transport as transport;

use crate::addr::{ActorAddr, AddrError, NodeId, MAX_PART_LEN};
use crate::envelope::{Envelope, EnvelopeKind, MessageId, PayloadFormat};

/// Version of the header layout (the high nibble of the flags byte).
pub(crate) const HEADER_VERSION: u8 = 1;

const KIND_MASK: u8 = 0b0011;
const FORMAT_BINARY: u8 = 0b0100;
const CORRELATED: u8 = 0b1000;
/// The longest address: two parts and the `@`.
const MAX_ADDR_LEN: usize = 2 * MAX_PART_LEN + 1;
/// Flags, id, correlation and two length bytes.
const FIXED_MAX: usize = 1 + 8 + 8 + 2;

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Shorter than its fields say.
    #[error("truncated envelope header ({0} bytes)")]
    Truncated(usize),
    /// Another header layout.
    #[error("envelope header version {got} (this node speaks {HEADER_VERSION})")]
    Version { got: u8 },
    /// Bits that mean nothing.
    #[error("envelope header with unknown kind {0}")]
    Kind(u8),
    /// An id of 0.
    #[error("envelope header without a message id")]
    NoId,
    /// Bytes after the last field.
    #[error("{0} trailing bytes after the envelope header")]
    Trailing(usize),
    /// The `from` address.
    #[error("bad 'from' address {raw:?}")]
    From {
        raw: String,
        #[source]
        source: AddrError,
    },
    /// The `to` address (the sender is known: it can be told).
    #[error("bad 'to' address {raw:?}")]
    To {
        raw: String,
        from: ActorAddr,
        id: MessageId,
        kind: EnvelopeKind,
        #[source]
        source: AddrError,
    },
}

fn kind_bits(kind: EnvelopeKind) -> u8 {
    match kind {
        EnvelopeKind::Message => 0,
        EnvelopeKind::Undeliverable => 1,
        EnvelopeKind::Error => 2,
    }
}

fn kind_from_bits(bits: u8) -> Result<EnvelopeKind, HeaderError> {
    match bits {
        0 => Ok(EnvelopeKind::Message),
        1 => Ok(EnvelopeKind::Undeliverable),
        2 => Ok(EnvelopeKind::Error),
        other => Err(HeaderError::Kind(other)),
    }
}

/// Encoded length of an address: `actor@node`.
fn addr_len(addr: &ActorAddr) -> usize {
    addr.actor().as_str().len() + 1 + addr.node().as_str().len()
}

fn put_addr(out: &mut BytesMut, addr: &ActorAddr) {
    let (actor, node) = (addr.actor().as_str(), addr.node().as_str());
    // Both parts are at most MAX_PART_LEN bytes: the length fits a u8.
    out.put_u8(addr_len(addr) as u8);
    out.put_slice(actor.as_bytes());
    out.put_u8(b'@');
    out.put_slice(node.as_bytes());
}

/// The header of `env`, as it travels.
pub(crate) fn encode_header(env: &Envelope) -> Bytes {
    let mut out = BytesMut::with_capacity(FIXED_MAX + addr_len(&env.to) + addr_len(&env.from));
    let mut flags = HEADER_VERSION << 4 | kind_bits(env.kind);
    if env.format == PayloadFormat::Binary {
        flags |= FORMAT_BINARY;
    }
    if env.correlation_id.is_some() {
        flags |= CORRELATED;
    }
    out.put_u8(flags);
    out.put_u64_le(env.id.get());
    if let Some(c) = env.correlation_id {
        out.put_u64_le(c.get());
    }
    put_addr(&mut out, &env.to);
    put_addr(&mut out, &env.from);
    out.freeze()
}

/// `env` as the transport carries it (the payload is moved, not copied).
pub(crate) fn to_wire(env: Envelope) -> transport::Envelope {
    transport::Envelope {
        header: encode_header(&env),
        payload: env.payload,
    }
}

/// Reads the header's fields in order, each bounded by what is left.
struct Reader<'a> {
    rest: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, HeaderError> {
        let (&b, rest) = self
            .rest
            .split_first()
            .ok_or(HeaderError::Truncated(self.len))?;
        self.rest = rest;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, HeaderError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(HeaderError::Truncated(self.len))?;
        self.rest = rest;
        Ok(u64::from_le_bytes(*bytes))
    }

    /// A length-prefixed address, as raw bytes (at most [`MAX_ADDR_LEN`]
    /// are taken; a longer one fails to parse as an address).
    fn addr(&mut self) -> Result<&'a [u8], HeaderError> {
        let len = usize::from(self.u8()?);
        if len > self.rest.len() {
            return Err(HeaderError::Truncated(self.len));
        }
        let (raw, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(raw)
    }
}

/// Parses one address; the error text shows at most [`MAX_ADDR_LEN`]
/// characters of it.
fn parse_addr(raw: &[u8], known: &[&NodeId]) -> Result<ActorAddr, (String, AddrError)> {
    let text = String::from_utf8_lossy(raw);
    ActorAddr::parse_reusing(&text, known)
        .map_err(|source| (text.chars().take(MAX_ADDR_LEN).collect(), source))
}

/// The typed form of an envelope received from a node. `known` node ids are
/// shared instead of allocated.
pub(crate) fn from_wire(
    raw: transport::Envelope,
    known: &[&NodeId],
) -> Result<Envelope, HeaderError> {
    let mut r = Reader {
        rest: &raw.header,
        len: raw.header.len(),
    };
    let flags = r.u8()?;
    if flags >> 4 != HEADER_VERSION {
        return Err(HeaderError::Version { got: flags >> 4 });
    }
    let kind = kind_from_bits(flags & KIND_MASK)?;
    let id = r.u64()?;
    if id == 0 {
        return Err(HeaderError::NoId);
    }
    let correlation_id = if flags & CORRELATED != 0 {
        match r.u64()? {
            0 => return Err(HeaderError::NoId),
            c => Some(MessageId::from_raw(c)),
        }
    } else {
        None
    };
    let (to_raw, from_raw) = (r.addr()?, r.addr()?);
    if !r.rest.is_empty() {
        return Err(HeaderError::Trailing(r.rest.len()));
    }
    let from =
        parse_addr(from_raw, known).map_err(|(raw, source)| HeaderError::From { raw, source })?;
    let id = MessageId::from_raw(id);
    let to = parse_addr(to_raw, known).map_err(|(raw, source)| HeaderError::To {
        raw,
        from: from.clone(),
        id,
        kind,
        source,
    })?;
    let format = if flags & FORMAT_BINARY != 0 {
        PayloadFormat::Binary
    } else {
        PayloadFormat::Json
    };
    Ok(Envelope {
        to,
        from,
        id,
        correlation_id,
        kind,
        format,
        payload: raw.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ActorAddr {
        s.parse().unwrap()
    }

    fn sample() -> Envelope {
        let mut env = Envelope::new(
            addr("w@b"),
            addr("c@a"),
            PayloadFormat::Binary,
            Bytes::from_static(b"\x01\x02"),
        );
        env.correlation_id = Some(MessageId::from_raw(77));
        env.kind = EnvelopeKind::Undeliverable;
        env
    }

    #[test]
    fn round_trips() {
        let env = sample();
        let wire = to_wire(env.clone());
        assert_eq!(wire.header[0] >> 4, HEADER_VERSION);
        assert_eq!(from_wire(wire, &[]).unwrap(), env);
        let plain = Envelope::new(addr("x@y"), addr("z@y"), PayloadFormat::Json, Bytes::new());
        assert_eq!(from_wire(to_wire(plain.clone()), &[]).unwrap(), plain);
    }

    #[test]
    fn known_node_ids_are_shared() {
        let node = NodeId::new("b").unwrap();
        let env = from_wire(to_wire(sample()), &[&node]).unwrap();
        assert!(std::ptr::eq(env.to.node().as_str(), node.as_str()));
    }

    #[test]
    fn refuses_what_is_not_a_header() {
        let good = to_wire(sample()).header;
        let with = |header: Vec<u8>| transport::Envelope::new(header, Bytes::new());
        let mut bad_version = good.to_vec();
        bad_version[0] = (bad_version[0] & 0x0f) | 0x20;
        assert!(matches!(
            from_wire(with(bad_version), &[]),
            Err(HeaderError::Version { got: 2 })
        ));
        let mut bad_kind = good.to_vec();
        bad_kind[0] |= 3;
        assert!(matches!(
            from_wire(with(bad_kind), &[]),
            Err(HeaderError::Kind(3))
        ));
        for cut in 0..good.len() {
            let err = from_wire(with(good[..cut].to_vec()), &[]).unwrap_err();
            assert!(matches!(err, HeaderError::Truncated(_)), "{cut}: {err}");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(
            from_wire(with(long), &[]),
            Err(HeaderError::Trailing(1))
        ));
        let mut zero_id = good.to_vec();
        zero_id[1..9].copy_from_slice(&[0; 8]);
        assert!(matches!(
            from_wire(with(zero_id), &[]),
            Err(HeaderError::NoId)
        ));
    }

    #[test]
    fn bad_addresses_say_which_one() {
        let mut env = sample();
        let header = encode_header(&env);
        // Replace the `to` address "w@b" by "w@@" (same length).
        let mut bytes = header.to_vec();
        // (Search the whole address: the random id may hold a `w` byte.)
        let at = bytes.windows(3).position(|w| w == b"w@b").unwrap();
        bytes[at + 2] = b'@';
        let err = from_wire(transport::Envelope::new(bytes, Bytes::new()), &[]).unwrap_err();
        assert!(matches!(&err, HeaderError::To { from, .. } if *from == addr("c@a")));
        assert!(
            err.to_string().contains("bad 'to' address \"w@@\""),
            "{err}"
        );
        env.to = addr("w@b");
        let mut bytes = encode_header(&env).to_vec();
        let last = bytes.len() - 1;
        bytes[last] = b' ';
        let err = from_wire(transport::Envelope::new(bytes, Bytes::new()), &[]).unwrap_err();
        assert!(matches!(err, HeaderError::From { .. }));
    }
}
