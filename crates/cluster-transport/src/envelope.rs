//! The envelope: the unit the transport moves between nodes.

use bytes::Bytes;

/// One envelope on a node link: an opaque header and a payload.
///
/// The transport frames, batches and delivers both parts without looking
/// inside them; what the header means (addresses, message ids, kinds) is the
/// business of the layer above (the router). Both parts are moved, never
/// copied: on the receiving side they are zero-copy slices of the frame
/// they arrived in.
///
/// ```
/// use cluster_transport::Envelope;
/// let env = Envelope::new(&b"route me"[..], &br#"{"id":1}"#[..]);
/// assert_eq!(&env.header[..], b"route me");
/// assert_eq!(&env.payload[..], br#"{"id":1}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The upper layer's header (opaque to the transport).
    pub header: Bytes,
    /// The message body.
    pub payload: Bytes,
}

impl Envelope {
    /// An envelope of `header` and `payload`.
    pub fn new(header: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Envelope {
            header: header.into(),
            payload: payload.into(),
        }
    }
}
