//! Sans-IO frame codec: bytes in, bytes out; no sockets, no clock, no tokio.
//!
//! Node frames are binary (see [`crate::wire`]). Client text frames are not
//! decoded here: after authentication they are opaque to the transport.
//! Every decode is bounded by the configured frame limit and returns an error
//! (never panics) on arbitrary input.

use std::fmt;

use bincode::Options;
use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};

use crate::envelope::Envelope;
use crate::wire::{ControlFrame, WireEnvelope, WireEnvelopeOut, TAG_BATCH, TAG_CONTROL};

#[cfg(test)]
mod props;

/// Bytes of a batch frame before the first envelope (tag + `u32` count).
pub(crate) const BATCH_HEADER: usize = 5;
/// Smallest possible encoded envelope (two empty byte strings).
const MIN_ENVELOPE: usize = 2;
/// Upper bound of an envelope's encoding beyond its two parts (two varint
/// lengths of at most 9 bytes each).
const ENVELOPE_OVERHEAD: usize = 2 * 9;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("empty frame")]
    Empty,
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    #[error("truncated batch header")]
    TruncatedHeader,
    #[error("batch claims {count} envelopes but has only {bytes} bytes")]
    ImpossibleCount { count: u32, bytes: usize },
    #[error("undecodable binary frame")]
    Bincode(#[from] bincode::Error),
}

/// A decoded node frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NodeFrame {
    Batch(Vec<Envelope>),
    Control(ControlFrame),
}

fn options(limit: usize) -> impl Options {
    bincode::options().with_limit(limit as u64)
}

/// Upper bound of the encoded size of `env` inside a batch.
pub(crate) fn envelope_bound(env: &Envelope) -> usize {
    env.header.len() + env.payload.len() + ENVELOPE_OVERHEAD
}

/// Whether `env` can travel in a frame of at most `max_frame_size` bytes.
pub(crate) fn fits_in_frame(env: &Envelope, max_frame_size: usize) -> bool {
    envelope_bound(env) + BATCH_HEADER <= max_frame_size
}

/// Encodes a control frame.
pub(crate) fn encode_control(frame: &ControlFrame) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(TAG_CONTROL);
    // Serializing into a growable buffer has no failure mode for these types.
    if let Err(err) = options(usize::MAX).serialize_into((&mut out).writer(), frame) {
        tracing::error!(%err, "control frame encoding failed");
    }
    out.freeze()
}

/// Decodes one binary node frame. Batch payloads are zero-copy slices of `frame`.
pub(crate) fn decode_node_frame(frame: &Bytes, limit: usize) -> Result<NodeFrame, CodecError> {
    let (&tag, body) = frame.split_first().ok_or(CodecError::Empty)?;
    match tag {
        TAG_BATCH => decode_batch(frame, body, limit).map(NodeFrame::Batch),
        TAG_CONTROL => Ok(NodeFrame::Control(options(limit).deserialize(body)?)),
        other => Err(CodecError::UnknownTag(other)),
    }
}

fn decode_batch(frame: &Bytes, body: &[u8], limit: usize) -> Result<Vec<Envelope>, CodecError> {
    let (count, rest) = body
        .split_first_chunk::<4>()
        .ok_or(CodecError::TruncatedHeader)?;
    let count = u32::from_le_bytes(*count);
    if count as usize > rest.len() / MIN_ENVELOPE {
        return Err(CodecError::ImpossibleCount {
            count,
            bytes: rest.len(),
        });
    }
    let seed = BatchSeed {
        frame,
        count: count as usize,
    };
    Ok(options(limit).deserialize_seed(seed, rest)?)
}

/// Deserializes `count` envelopes as a tuple, turning each borrowed header
/// and payload into a slice of the frame.
struct BatchSeed<'f> {
    frame: &'f Bytes,
    count: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Envelope>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let count = self.count;
        d.deserialize_tuple(count, self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Envelope>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a batch of {} envelopes", self.count)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(self.count);
        while let Some(w) = seq.next_element::<WireEnvelope<'de>>()? {
            out.push(Envelope {
                header: slice_of(self.frame, w.header),
                payload: slice_of(self.frame, w.payload),
            });
        }
        Ok(out)
    }
}

/// `part` (borrowed from `frame`) as a zero-copy `Bytes`.
fn slice_of(frame: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        Bytes::new()
    } else {
        frame.slice_ref(part)
    }
}

/// Outcome of [`BatchEncoder::push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// The envelope is in the batch.
    Added,
    /// The batch is full; the envelope was not added (start a new batch).
    Full,
    /// The envelope alone exceeds the frame limit; it was not added.
    TooLarge,
}

/// Preferred upper size of a coalesced frame: large enough to amortize the
/// per-write cost, small enough to stay cache-friendly on both ends.
pub(crate) const COALESCE_TARGET: usize = 512 * 1024;

/// Builds batch frames in a reusable buffer, never above `max_frame_size`;
/// a batch that has reached [`COALESCE_TARGET`] takes no more envelopes.
#[derive(Debug)]
pub(crate) struct BatchEncoder {
    buf: BytesMut,
    count: u32,
    max_frame_size: usize,
    target: usize,
}

impl BatchEncoder {
    pub(crate) fn new(max_frame_size: usize) -> Self {
        BatchEncoder {
            buf: BytesMut::with_capacity(64 * 1024),
            count: 0,
            max_frame_size,
            target: COALESCE_TARGET.min(max_frame_size),
        }
    }

    /// Number of envelopes in the current batch.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Appends `env` to the current batch if it fits.
    pub(crate) fn push(&mut self, env: &Envelope) -> Push {
        if self.count == 0 {
            self.buf.clear();
            self.buf.put_u8(TAG_BATCH);
            self.buf.put_u32_le(0);
        }
        let before = self.buf.len();
        let fits = before + envelope_bound(env) <= self.max_frame_size;
        let reached = self.count > 0 && before >= self.target;
        if !fits || reached || self.count == u32::MAX {
            return if self.count == 0 {
                Push::TooLarge
            } else {
                Push::Full
            };
        }
        self.buf.reserve(envelope_bound(env));
        let wire = WireEnvelopeOut {
            header: &env.header,
            payload: &env.payload,
        };
        if let Err(err) = options(usize::MAX).serialize_into((&mut self.buf).writer(), &wire) {
            tracing::error!(%err, "envelope encoding failed");
            self.buf.truncate(before);
            return Push::TooLarge;
        }
        self.count += 1;
        Push::Added
    }

    /// Finishes the current batch and returns its frame (empty batches are
    /// valid frames too). The buffer is reused for the next batch.
    pub(crate) fn finish(&mut self) -> Bytes {
        if self.count == 0 {
            self.buf.clear();
            self.buf.put_u8(TAG_BATCH);
            self.buf.put_u32_le(0);
        }
        self.buf[1..BATCH_HEADER].copy_from_slice(&self.count.to_le_bytes());
        self.count = 0;
        self.buf.split().freeze()
    }
}

/// Encodes a slice of envelopes as one batch frame (tests and tools).
#[cfg(test)]
pub(crate) fn encode_batch(envs: &[Envelope], max_frame_size: usize) -> Option<Bytes> {
    let mut enc = BatchEncoder::new(max_frame_size);
    for env in envs {
        if enc.push(env) != Push::Added {
            return None;
        }
    }
    Some(enc.finish())
}
