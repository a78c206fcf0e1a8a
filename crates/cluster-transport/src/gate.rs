//! The pre-auth gate: what an unauthenticated peer's bytes may do before
//! the WebSocket layer sees them (sans-IO: bytes in, counts out).
//!
//! Before a peer has authenticated, its connection runs the WebSocket layer
//! with a small configuration (64 KiB frames, 4 KiB buffers). Once it has
//! authenticated, the connection is re-wrapped with the full configuration
//! (16 MiB frames for nodes and clients, large buffers for node links). The
//! WebSocket layer offers no way to change its limits in place, and a fresh
//! one must start with nothing half-read in the old one's buffer; the gate
//! makes sure of that: it hands bytes over only up to the next *boundary*
//! (the end of the HTTP upgrade head, the end of a WebSocket frame), so the
//! old layer never holds bytes past the frame that completed the
//! authentication. Whatever the peer sent beyond stays with the socket
//! wrapper and is read first by the new layer: nothing is lost.
//!
//! The gate also bounds the upgrade head ([`MAX_HTTP_HEAD`]), which the
//! WebSocket layer would otherwise buffer without limit.

use std::fmt;

/// Largest HTTP upgrade head (request or response line and headers)
/// accepted before authentication.
pub(crate) const MAX_HTTP_HEAD: usize = 16 * 1024;

/// Why the gate refused a peer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateError {
    /// The upgrade head is longer than [`MAX_HTTP_HEAD`].
    HeadTooLarge,
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::HeadTooLarge => write!(
                f,
                "HTTP upgrade head above {MAX_HTTP_HEAD} bytes before authentication"
            ),
        }
    }
}

impl std::error::Error for GateError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Inside the HTTP head: `seen` bytes so far, `matched` bytes of the
    /// terminating `\r\n\r\n`.
    Http { seen: usize, matched: u8 },
    /// Inside a frame header: `have` of `need` bytes (`need` is 2 until the
    /// second byte tells the real length).
    Header { have: u8, need: u8, head: [u8; 14] },
    /// Inside a frame's payload.
    Payload { remaining: u64 },
}

/// Tracks boundaries in the byte stream of one unauthenticated peer.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    phase: Phase,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            phase: Phase::Http {
                seen: 0,
                matched: 0,
            },
        }
    }
}

const FRAME_START: Phase = Phase::Header {
    have: 0,
    need: 2,
    head: [0; 14],
};

impl Gate {
    /// How many bytes of `data` may be handed to the WebSocket layer now:
    /// at least one (for non-empty `data`), never past the next boundary.
    ///
    /// # Errors
    ///
    /// [`GateError`] when the peer breaks a pre-auth bound.
    pub(crate) fn admit(&mut self, data: &[u8]) -> Result<usize, GateError> {
        let mut used = 0;
        while used < data.len() {
            let (n, boundary) = self.step(&data[used..])?;
            used += n;
            if boundary {
                break;
            }
        }
        Ok(used)
    }

    /// Consumes a prefix of `data` within the current phase; returns its
    /// length and whether it ended at a boundary.
    fn step(&mut self, data: &[u8]) -> Result<(usize, bool), GateError> {
        match &mut self.phase {
            Phase::Http { seen, matched } => {
                for (i, &b) in data.iter().enumerate() {
                    *seen += 1;
                    if *seen > MAX_HTTP_HEAD {
                        return Err(GateError::HeadTooLarge);
                    }
                    *matched = match (*matched, b) {
                        (0 | 2, b'\r') => *matched + 1,
                        (1 | 3, b'\n') => *matched + 1,
                        (_, b'\r') => 1,
                        _ => 0,
                    };
                    if *matched == 4 {
                        self.phase = FRAME_START;
                        return Ok((i + 1, true));
                    }
                }
                Ok((data.len(), false))
            }
            Phase::Header { have, need, head } => {
                let take = usize::from(*need - *have).min(data.len());
                let start = usize::from(*have);
                head[start..start + take].copy_from_slice(&data[..take]);
                *have += take as u8;
                if *have == 2 && *need == 2 {
                    *need = header_len(head[1]);
                }
                if *have < *need {
                    return Ok((take, false));
                }
                let len = payload_len(head);
                if len == 0 {
                    self.phase = FRAME_START;
                    return Ok((take, true));
                }
                self.phase = Phase::Payload { remaining: len };
                Ok((take, false))
            }
            Phase::Payload { remaining } => {
                let take = data
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.phase = FRAME_START;
                    return Ok((take, true));
                }
                Ok((take, false))
            }
        }
    }
}

/// A frame header's length from its second byte: 2, plus 2 or 8 bytes of
/// extended length, plus 4 of mask.
fn header_len(second: u8) -> u8 {
    let ext = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// The payload length a complete header declares.
fn payload_len(head: &[u8; 14]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes([
            head[2], head[3], head[4], head[5], head[6], head[7], head[8], head[9],
        ]),
        n => u64::from(n),
    }
}

/// Runs `data` through a fresh gate and returns the boundaries it finds
/// (the fuzz target's entry point: must never panic).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn split(data: &[u8]) -> Result<Vec<usize>, GateError> {
    let mut gate = Gate::default();
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = gate.admit(&data[at..])?;
        assert!(n > 0, "the gate must make progress");
        at += n;
        cuts.push(at);
    }
    Ok(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    fn frame(masked: bool, len: usize) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(m | len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn cuts_at_the_head_and_at_every_frame_end() {
        let mut data = HEAD.to_vec();
        let a = frame(true, 5);
        let b = frame(false, 300);
        let c = frame(true, 70_000);
        let d = frame(true, 0);
        for f in [&a, &b, &c, &d] {
            data.extend_from_slice(f);
        }
        let cuts = split(&data).unwrap();
        let mut want = vec![HEAD.len()];
        for f in [&a, &b, &c, &d] {
            want.push(want.last().unwrap() + f.len());
        }
        assert_eq!(cuts, want);
    }

    #[test]
    fn byte_by_byte_finds_the_same_boundaries() {
        let mut data = HEAD.to_vec();
        data.extend_from_slice(&frame(true, 200));
        data.extend_from_slice(&frame(true, 3));
        let mut gate = Gate::default();
        let mut ends = Vec::new();
        let mut before = gate.phase;
        for (i, b) in data.iter().enumerate() {
            assert_eq!(gate.admit(std::slice::from_ref(b)).unwrap(), 1);
            let start_again = gate.phase == FRAME_START;
            if start_again && before != FRAME_START {
                ends.push(i + 1);
            }
            before = gate.phase;
        }
        assert_eq!(ends, split(&data).unwrap());
    }

    #[test]
    fn an_endless_head_is_refused() {
        let data = vec![b'a'; MAX_HTTP_HEAD + 1];
        assert_eq!(split(&data), Err(GateError::HeadTooLarge));
        let mut ok = vec![b'a'; MAX_HTTP_HEAD - 4];
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(split(&ok).unwrap(), vec![MAX_HTTP_HEAD]);
    }

    #[test]
    fn crlf_runs_are_matched_properly() {
        assert_eq!(split(b"a\r\r\n\r\nx").unwrap(), vec![6, 7]);
        assert_eq!(split(b"a\r\n\r\r\n\r\n").unwrap(), vec![8]);
    }
}
