//! The envelope: the unit the transport moves.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One message in flight between nodes or between a node and a client.
///
/// The transport carries `to` and `from` as opaque routing strings; it never
/// interprets them. `payload` is moved, never copied, on the node-to-node path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Destination address (interpreted by the router, not the transport).
    pub to: String,
    /// Sender address (interpreted by the router, not the transport).
    pub from: String,
    /// Sender-assigned message id (`0` = none).
    pub id: u64,
    /// Id of the request this answers (`0` = none).
    pub correlation_id: u64,
    /// What kind of envelope this is.
    pub kind: EnvelopeKind,
    /// How `payload` is encoded.
    pub format: PayloadFormat,
    /// The message body.
    pub payload: Bytes,
}

impl Envelope {
    /// A plain [`EnvelopeKind::Message`] with a JSON text payload and no ids.
    ///
    /// ```
    /// use cluster_transport::{Envelope, PayloadFormat};
    /// let env = Envelope::json("worker@b", "coordinator@a", r#"{"id":1}"#);
    /// assert_eq!(env.format, PayloadFormat::Json);
    /// assert_eq!(&env.payload[..], br#"{"id":1}"#);
    /// ```
    pub fn json(
        to: impl Into<String>,
        from: impl Into<String>,
        payload: impl Into<String>,
    ) -> Self {
        Self::new(to, from, PayloadFormat::Json, Bytes::from(payload.into()))
    }

    /// A plain [`EnvelopeKind::Message`] with a binary payload and no ids.
    pub fn binary(
        to: impl Into<String>,
        from: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Self {
        Self::new(to, from, PayloadFormat::Binary, payload.into())
    }

    fn new(
        to: impl Into<String>,
        from: impl Into<String>,
        format: PayloadFormat,
        payload: Bytes,
    ) -> Self {
        Envelope {
            to: to.into(),
            from: from.into(),
            id: 0,
            correlation_id: 0,
            kind: EnvelopeKind::Message,
            format,
            payload,
        }
    }
}

/// What an envelope means to the router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeKind {
    /// An ordinary message.
    #[default]
    Message,
    /// A message handed back because it could not be delivered.
    Undeliverable,
    /// An error report.
    Error,
}

/// How an envelope's payload is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// The payload is UTF-8 JSON text.
    #[default]
    Json,
    /// The payload is opaque bytes (for example bincode).
    Binary,
}
