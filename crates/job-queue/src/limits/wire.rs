//! The lease protocol's messages, between `limits@<node>` actors: bincode
//! after a version byte, decoded with a size limit and checked before any
//! field is used.

use bincode::Options;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::job::Job;

/// First byte of every limits message.
const VERSION: u8 = 1;
/// The largest message decoded (a kind name and a few numbers).
const MAX_MESSAGE: u64 = 512;

/// A message of the lease protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LimitMsg {
    /// Holder -> leader: what this coordinator runs and wants of `kind`;
    /// renews its lease.
    Report(Report),
    /// Leader -> holder: how many may run there, and fresh start tokens.
    Grant(Grant),
}

/// See [`LimitMsg::Report`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) kind: String,
    /// The holder's counter of reports, echoed by the answer.
    pub(crate) report_seq: u64,
    /// The `seq` of the last grant the holder applied.
    pub(crate) acked: u64,
    /// Attempts of `kind` it runs now.
    pub(crate) used: u32,
    /// Attempts it would run if allowed (running plus waiting).
    pub(crate) want: u32,
    /// Start tokens it wants (jobs waiting for one).
    pub(crate) want_tokens: u32,
}

/// See [`LimitMsg::Grant`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) kind: String,
    /// The last report the leader had from this holder.
    pub(crate) report_seq: u64,
    /// Changes whenever `allowed` does; the holder echoes it.
    pub(crate) seq: u64,
    /// Most attempts the holder may have running.
    pub(crate) allowed: u32,
    /// Starts the holder may make now (valid briefly).
    pub(crate) tokens: u32,
    /// The lease, counted by the holder from when it sent `report_seq`.
    pub(crate) lease_ms: u64,
}

impl LimitMsg {
    pub(crate) fn kind(&self) -> &str {
        match self {
            LimitMsg::Report(r) => &r.kind,
            LimitMsg::Grant(g) => &g.kind,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut out = vec![VERSION];
        options()
            .serialize_into(&mut out, self)
            .expect("a limits message serializes");
        Bytes::from(out)
    }

    /// Decodes a message; refuses other versions, oversized input and
    /// kind names no job can have.
    pub(crate) fn decode(bytes: &[u8]) -> Result<LimitMsg, DecodeError> {
        let field = |field, reason| DecodeError::Field { field, reason };
        let (&version, body) = bytes.split_first().ok_or(field("version", "empty"))?;
        if version != VERSION {
            return Err(field("version", "unknown limits protocol version"));
        }
        if body.len() as u64 > MAX_MESSAGE {
            return Err(field("limits message", "too large"));
        }
        let msg: LimitMsg = options()
            .deserialize(body)
            .map_err(|_| field("limits message", "not a limits message"))?;
        let kind = msg.kind();
        if kind.is_empty() || kind.len() > Job::MAX_KIND_LEN {
            return Err(field("kind", "1 to 64 bytes"));
        }
        Ok(msg)
    }
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_MESSAGE)
        .reject_trailing_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let msg = LimitMsg::Report(Report {
            kind: "sleep".into(),
            report_seq: 3,
            acked: 2,
            used: 1,
            want: 9,
            want_tokens: 8,
        });
        assert_eq!(LimitMsg::decode(&msg.encode()).unwrap(), msg);
        let mut bad = msg.encode().to_vec();
        bad[0] = 9;
        assert!(LimitMsg::decode(&bad).is_err());
        assert!(LimitMsg::decode(&[]).is_err());
        assert!(LimitMsg::decode(&[VERSION, 7, 7, 7]).is_err());
        let huge = LimitMsg::Grant(Grant {
            kind: "x".repeat(65),
            report_seq: 0,
            seq: 0,
            allowed: 0,
            tokens: 0,
            lease_ms: 0,
        });
        assert!(LimitMsg::decode(&huge.encode()).is_err());
        let mut long = vec![VERSION];
        long.extend(std::iter::repeat_n(0xFF, 4096));
        assert!(LimitMsg::decode(&long).is_err());
    }
}
