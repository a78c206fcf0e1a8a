//! The partition protocol between nodes: what a [`RouterFetcher`] asks a
//! node's `partitions` actor, and what it answers.
//!
//! Every payload is binary and starts with [`MR_WIRE_VERSION`]. Requests
//! are small bincode values (bounded by the payload's length). A chunk
//! answer is a fixed 18-byte header followed by the raw blob bytes, so the
//! receiver slices the data out of the envelope without decoding it:
//!
//! ```text
//! version u8 | tag u8 = 1 | total u64 LE | offset u64 LE | data...
//! ```
//!
//! [`RouterFetcher`]: super::RouterFetcher

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::spec::{decode, encode};
use super::store::BlobId;

/// Version byte of every partition-protocol payload.
pub(crate) const MR_WIRE_VERSION: u8 = 1;

const TAG_CHUNK: u8 = 1;
const TAG_OTHER: u8 = 2;
const CHUNK_HEADER: usize = 18;

/// Why a partition-protocol payload could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The payload is empty or its version byte is not ours.
    #[error("partition protocol version {found:?} is not {MR_WIRE_VERSION}")]
    Version {
        /// The version byte found (`None` for an empty payload).
        found: Option<u8>,
    },
    /// The payload is cut short or its body does not decode.
    #[error("malformed partition protocol payload")]
    Malformed(#[source] bincode::Error),
    /// A chunk header that is too short or inconsistent.
    #[error("malformed chunk: {0}")]
    BadChunk(&'static str),
}

/// A request to a `partitions` actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PartitionRequest {
    /// Up to `max_len` bytes of blob `id` from `offset`.
    Fetch {
        id: BlobId,
        offset: u64,
        max_len: u32,
    },
    /// Remove every blob of job `job` (the job ended).
    DropJob { job: String },
}

/// An answer of a `partitions` actor, other than a chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PartitionReply {
    /// The store has no blob under that id.
    Missing,
    /// The offset is past the blob's end.
    BadOffset { total: u64 },
    /// The job's blobs were removed.
    Dropped { blobs: u64 },
    /// The blob is a file range the holder cannot read.
    Unreadable { reason: String },
}

/// A decoded answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `data` is the blob's bytes from `offset`; the blob has `total`.
    Chunk {
        total: u64,
        offset: u64,
        data: Bytes,
    },
    Other(PartitionReply),
}

fn check_version(payload: &[u8]) -> Result<&[u8], WireError> {
    match payload.split_first() {
        Some((&MR_WIRE_VERSION, rest)) => Ok(rest),
        other => Err(WireError::Version {
            found: other.map(|(v, _)| *v),
        }),
    }
}

pub(crate) fn encode_request(request: &PartitionRequest) -> Bytes {
    let body = encode(request).unwrap_or_default();
    let mut out = BytesMut::with_capacity(1 + body.len());
    out.put_u8(MR_WIRE_VERSION);
    out.put_slice(&body);
    out.freeze()
}

pub(crate) fn decode_request(payload: &[u8]) -> Result<PartitionRequest, WireError> {
    decode(check_version(payload)?).map_err(WireError::Malformed)
}

/// A chunk answer: the header, then a copy of `data`.
pub(crate) fn encode_chunk(total: u64, offset: u64, data: &[u8]) -> Bytes {
    let mut out = chunk_header(total, offset, data.len());
    out.put_slice(data);
    out.freeze()
}

/// The header of a chunk answer, with room for `len` bytes of data to be
/// appended (read straight into the buffer, without a copy).
pub(crate) fn chunk_header(total: u64, offset: u64, len: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(CHUNK_HEADER + len);
    out.put_u8(MR_WIRE_VERSION);
    out.put_u8(TAG_CHUNK);
    out.put_u64_le(total);
    out.put_u64_le(offset);
    out
}

pub(crate) fn encode_reply(reply: &PartitionReply) -> Bytes {
    let body = encode(reply).unwrap_or_default();
    let mut out = BytesMut::with_capacity(2 + body.len());
    out.put_u8(MR_WIRE_VERSION);
    out.put_u8(TAG_OTHER);
    out.put_slice(&body);
    out.freeze()
}

/// Decodes an answer; a chunk's data is a zero-copy slice of `payload`.
pub(crate) fn decode_answer(payload: &Bytes) -> Result<Answer, WireError> {
    let rest = check_version(payload)?;
    match rest.first() {
        Some(&TAG_CHUNK) => {
            if payload.len() < CHUNK_HEADER {
                return Err(WireError::BadChunk("header cut short"));
            }
            let word = |at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&payload[at..at + 8]);
                u64::from_le_bytes(bytes)
            };
            let (total, offset) = (word(2), word(10));
            let data = payload.slice(CHUNK_HEADER..);
            let end = offset.checked_add(data.len() as u64);
            if end.is_none_or(|end| end > total) {
                return Err(WireError::BadChunk("chunk extends past the blob's end"));
            }
            Ok(Answer::Chunk {
                total,
                offset,
                data,
            })
        }
        Some(&TAG_OTHER) => decode(&rest[1..])
            .map(Answer::Other)
            .map_err(WireError::Malformed),
        _ => Err(WireError::BadChunk("unknown answer tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_refuse_garbage() {
        let request = PartitionRequest::Fetch {
            id: BlobId::map_output("j", 3, 1),
            offset: 7,
            max_len: 1 << 20,
        };
        assert_eq!(decode_request(&encode_request(&request)).unwrap(), request);
        let drop = PartitionRequest::DropJob { job: "j".into() };
        assert_eq!(decode_request(&encode_request(&drop)).unwrap(), drop);
        assert!(matches!(
            decode_request(b""),
            Err(WireError::Version { found: None })
        ));
        assert!(matches!(
            decode_request(&[9, 0]),
            Err(WireError::Version { found: Some(9) })
        ));
        assert!(matches!(
            decode_request(&[MR_WIRE_VERSION, 0, 200, 200, 200, 200]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn chunks_are_sliced_and_checked() {
        let payload = encode_chunk(10, 4, b"abc");
        let Answer::Chunk {
            total,
            offset,
            data,
        } = decode_answer(&payload).unwrap()
        else {
            panic!("expected a chunk");
        };
        assert_eq!((total, offset, &data[..]), (10, 4, &b"abc"[..]));
        // Past the end, truncated header, unknown tag.
        assert!(decode_answer(&encode_chunk(5, 4, b"abc")).is_err());
        assert!(decode_answer(&payload.slice(..10)).is_err());
        assert!(decode_answer(&Bytes::from_static(&[MR_WIRE_VERSION, 7])).is_err());
        let other = encode_reply(&PartitionReply::Dropped { blobs: 3 });
        assert_eq!(
            decode_answer(&other).unwrap(),
            Answer::Other(PartitionReply::Dropped { blobs: 3 })
        );
    }
}
