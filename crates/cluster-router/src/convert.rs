//! Conversion between the router's typed [`Envelope`] and the transport's
//! string-based one, at the boundary.

use cluster_transport as transport;

use crate::addr::{ActorAddr, AddrError, NodeId};
use crate::envelope::{Envelope, EnvelopeKind, MessageId, PayloadFormat};

/// Which address of an incoming envelope is malformed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConvertError {
    /// The `to` address.
    #[error("bad 'to' address {raw:?}: {source}")]
    To {
        raw: String,
        from: ActorAddr,
        id: u64,
        kind: EnvelopeKind,
        #[source]
        source: AddrError,
    },
    /// The `from` address.
    #[error("bad 'from' address {raw:?}: {source}")]
    From {
        raw: String,
        #[source]
        source: AddrError,
    },
}

fn kind_to_wire(k: EnvelopeKind) -> transport::EnvelopeKind {
    match k {
        EnvelopeKind::Message => transport::EnvelopeKind::Message,
        EnvelopeKind::Undeliverable => transport::EnvelopeKind::Undeliverable,
        EnvelopeKind::Error => transport::EnvelopeKind::Error,
    }
}

fn kind_from_wire(k: transport::EnvelopeKind) -> EnvelopeKind {
    match k {
        transport::EnvelopeKind::Message => EnvelopeKind::Message,
        transport::EnvelopeKind::Undeliverable => EnvelopeKind::Undeliverable,
        transport::EnvelopeKind::Error => EnvelopeKind::Error,
    }
}

fn format_to_wire(f: PayloadFormat) -> transport::PayloadFormat {
    match f {
        PayloadFormat::Json => transport::PayloadFormat::Json,
        PayloadFormat::Binary => transport::PayloadFormat::Binary,
    }
}

fn format_from_wire(f: transport::PayloadFormat) -> PayloadFormat {
    match f {
        transport::PayloadFormat::Json => PayloadFormat::Json,
        transport::PayloadFormat::Binary => PayloadFormat::Binary,
    }
}

/// The transport form of `env` (the payload is moved, not copied).
pub(crate) fn to_transport(env: Envelope) -> transport::Envelope {
    transport::Envelope {
        to: env.to.to_wire(),
        from: env.from.to_wire(),
        id: env.id.0,
        correlation_id: env.correlation_id.map_or(0, |c| c.0),
        kind: kind_to_wire(env.kind),
        format: format_to_wire(env.format),
        payload: env.payload,
    }
}

/// The typed form of a received envelope. `known` node ids are reused
/// instead of allocating; `from_override` replaces the sender (used for
/// external clients, whose `from` is always their assigned address). An id
/// of 0 ("none") is replaced by a fresh id so replies can correlate.
pub(crate) fn from_transport(
    env: transport::Envelope,
    known: &[&NodeId],
    from_override: Option<&ActorAddr>,
) -> Result<Envelope, ConvertError> {
    let from = match from_override {
        Some(addr) => addr.clone(),
        None => {
            ActorAddr::parse_reusing(&env.from, known).map_err(|source| ConvertError::From {
                raw: truncate(&env.from),
                source,
            })?
        }
    };
    let to = ActorAddr::parse_reusing(&env.to, known).map_err(|source| ConvertError::To {
        raw: truncate(&env.to),
        from: from.clone(),
        id: env.id,
        kind: kind_from_wire(env.kind),
        source,
    })?;
    Ok(Envelope {
        to,
        from,
        id: if env.id == 0 {
            MessageId::next()
        } else {
            MessageId(env.id)
        },
        correlation_id: (env.correlation_id != 0).then_some(MessageId(env.correlation_id)),
        kind: kind_from_wire(env.kind),
        format: format_from_wire(env.format),
        payload: env.payload,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(140).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn addr(s: &str) -> ActorAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips_through_the_transport_form() {
        let mut env = Envelope::new(
            addr("w@b"),
            addr("c@a"),
            PayloadFormat::Binary,
            Bytes::from_static(b"\x01\x02"),
        );
        env.correlation_id = Some(MessageId(77));
        env.kind = EnvelopeKind::Undeliverable;
        let wire = to_transport(env.clone());
        assert_eq!(wire.to, "w@b");
        assert_eq!(wire.from, "c@a");
        assert_eq!(wire.correlation_id, 77);
        assert_eq!(wire.kind, transport::EnvelopeKind::Undeliverable);
        assert_eq!(wire.format, transport::PayloadFormat::Binary);
        let back = from_transport(wire, &[], None).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn client_envelopes_get_an_id_and_their_assigned_sender() {
        let wire = transport::Envelope::json("echo@b", "forged@z", "{}");
        let me = addr("client-4@a");
        let env = from_transport(wire, &[], Some(&me)).unwrap();
        assert_eq!(env.from, me);
        assert_ne!(env.id.0, 0);
        assert_eq!(env.correlation_id, None);
    }

    #[test]
    fn bad_addresses_say_which_one() {
        let err = from_transport(transport::Envelope::json("nobody", "c@a", "{}"), &[], None)
            .unwrap_err();
        assert!(matches!(&err, ConvertError::To { from: f, .. } if *f == addr("c@a")));
        assert!(err.to_string().contains("bad 'to' address \"nobody\""));
        let err =
            from_transport(transport::Envelope::json("w@b", "c@@a", "{}"), &[], None).unwrap_err();
        assert!(matches!(err, ConvertError::From { .. }));
    }
}
