//! Transports for the `transport_*` tests: binding, linking and stopping
//! endpoints, each step bounded by [`T`].

use std::time::Duration;

use bytes::Bytes;
use cluster_transport::{Envelope, Incoming, Transport, TransportConfig};
use tokio::time::timeout;

/// Bound of every single await in these tests.
pub const T: Duration = Duration::from_secs(10);

/// Binds a transport configured by `cfg`.
pub async fn bind(cfg: TransportConfig) -> Transport {
    timeout(T, Transport::bind(cfg)).await.unwrap().unwrap()
}

/// Binds a transport named `name` with the cluster secret `secret`.
pub async fn node(name: &str, secret: &str) -> Transport {
    bind(TransportConfig::new(name, secret)).await
}

/// Binds `node-a` and `node-b` (secret `k`) and links a to b.
pub async fn pair() -> (Transport, Transport) {
    let a = node("node-a", "k").await;
    let b = node("node-b", "k").await;
    timeout(T, a.connect(&b.url())).await.unwrap().unwrap();
    (a, b)
}

/// Shuts every transport down, in order.
pub async fn stop(transports: &[&Transport]) {
    for t in transports {
        timeout(T, t.shutdown()).await.unwrap();
    }
}

/// An envelope with `header` and `payload` (the transport does not care
/// what either holds).
pub fn env(header: &str, payload: impl Into<Bytes>) -> Envelope {
    Envelope::new(Bytes::copy_from_slice(header.as_bytes()), payload.into())
}

/// The peer and envelopes of an incoming node batch (panics on client frames).
pub fn from_node(incoming: Incoming) -> (String, Vec<Envelope>) {
    match incoming {
        Incoming::Node { peer, envelopes } => (peer, envelopes),
        other => panic!("expected a node batch, got {other:?}"),
    }
}

/// Waits until `done()` holds, yielding between checks. Unbounded: wrap
/// it in a timeout.
pub async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// A raw node: a test-side implementation of the node handshake over a
/// plain tokio-tungstenite socket (not the project's transport), so that
/// tests can send frames a real node never would (garbage, other protocol
/// versions, silence) on an authenticated link. Wire format: `docs/wire.md`.
pub mod raw {
    use bincode::Options;
    use futures_util::{SinkExt, StreamExt};
    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    use super::T;

    /// Frame tag of a batch; of a control frame.
    pub const TAG_BATCH: u8 = 0;
    pub const TAG_CONTROL: u8 = 1;

    /// The transport's control frames, in its variant order.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Control {
        Hello {
            version: u32,
            node: String,
            nonce: [u8; 32],
        },
        Challenge {
            version: u32,
            node: String,
            nonce: [u8; 32],
            proof: [u8; 32],
        },
        Proof {
            proof: [u8; 32],
        },
        Welcome,
        Duplicate,
        Refuse {
            reason: Refusal,
        },
        Heartbeat,
        Error {
            code: u32,
            message: String,
        },
    }

    /// Why a handshake was refused, in the transport's variant order.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Refusal {
        VersionMismatch { ours: u32, yours: u32 },
        AuthFailed,
        BadName,
        Protocol,
    }

    /// A control frame as it travels: tag, then bincode (varint).
    pub fn control(frame: &Control) -> Vec<u8> {
        let mut out = vec![TAG_CONTROL];
        bincode::options()
            .serialize_into(&mut out, frame)
            .expect("encodes");
        out
    }

    /// Decodes a control frame (`None` for anything else).
    pub fn decode_control(frame: &[u8]) -> Option<Control> {
        let (&tag, body) = frame.split_first()?;
        (tag == TAG_CONTROL)
            .then(|| bincode::options().deserialize(body).ok())
            .flatten()
    }

    /// A batch frame of `(header, payload)` envelopes.
    pub fn batch(envelopes: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![TAG_BATCH];
        out.extend_from_slice(&(envelopes.len() as u32).to_le_bytes());
        for (header, payload) in envelopes {
            for part in [header, payload] {
                // A byte string: its length as a varint u64, then the bytes.
                bincode::options()
                    .serialize_into(&mut out, &(part.len() as u64))
                    .expect("encodes");
                out.extend_from_slice(part);
            }
        }
        out
    }

    fn proof(secret: &str, label: &[u8], fields: [&[u8]; 4]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        for field in std::iter::once(label).chain(fields) {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field);
        }
        mac.finalize().into_bytes().into()
    }

    /// A socket to a node.
    pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

    /// Sends one binary frame.
    pub async fn send(ws: &mut RawWs, frame: Vec<u8>) {
        timeout(T, ws.send(Message::binary(frame)))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// The next binary frame (`None` once the node closed the socket).
    pub async fn next_binary(ws: &mut RawWs) -> Option<Vec<u8>> {
        loop {
            match timeout(T, ws.next()).await.expect("frame in time")? {
                Ok(Message::Binary(b)) => return Some(b.to_vec()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next control frame that is not a heartbeat (`None` once closed).
    pub async fn next_control(ws: &mut RawWs) -> Option<Control> {
        loop {
            let frame = next_binary(ws).await?;
            match decode_control(&frame) {
                Some(Control::Heartbeat) | None => continue,
                Some(other) => return Some(other),
            }
        }
    }

    /// Dials `url` as node `name` announcing `version`, and runs the
    /// dialer's side of the handshake with `secret`. Returns the socket and
    /// the node's verdict (`Welcome`, or a `Refuse`/`Challenge` it stopped at).
    pub async fn dial(url: &str, name: &str, secret: &str, version: u32) -> (RawWs, Control) {
        let (mut ws, _) = timeout(T, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("upgrade");
        let nonce: [u8; 32] = rand::random();
        let hello = Control::Hello {
            version,
            node: name.to_owned(),
            nonce,
        };
        send(&mut ws, control(&hello)).await;
        let (peer, theirs) = match next_control(&mut ws).await {
            Some(Control::Challenge { node, nonce, .. }) => (node, nonce),
            Some(other) => return (ws, other),
            None => {
                let closed = Control::Refuse {
                    reason: Refusal::Protocol,
                };
                return (ws, closed);
            }
        };
        let fields = [&nonce[..], &theirs[..], name.as_bytes(), peer.as_bytes()];
        let mine = proof(secret, b"jobmesh handshake v1 dialer", fields);
        send(&mut ws, control(&Control::Proof { proof: mine })).await;
        let verdict = next_control(&mut ws).await.expect("a verdict");
        (ws, verdict)
    }

    /// Dials `url` as node `name` and completes the handshake: the node has
    /// an authenticated link to us when this returns.
    pub async fn link(url: &str, name: &str, secret: &str) -> RawWs {
        let version = cluster_transport::PROTOCOL_VERSION;
        let (ws, verdict) = dial(url, name, secret, version).await;
        assert_eq!(verdict, Control::Welcome, "handshake accepted");
        ws
    }

    /// Listens once on 127.0.0.1 (port 0); returns the URL and a task that
    /// accepts one dialer, answers its `Hello` with a `Challenge` announcing
    /// `version` as node `name`, and returns the dialer's next control frame.
    pub async fn listen_once(
        name: &str,
        version: u32,
    ) -> (String, tokio::task::JoinHandle<Option<Control>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let (tcp, _) = timeout(T, listener.accept()).await.ok()?.ok()?;
            let ws = tokio_tungstenite::accept_async(MaybeTlsStream::Plain(tcp));
            let mut ws = timeout(T, ws).await.ok()?.ok()?;
            let Some(Control::Hello { .. }) = next_control(&mut ws).await else {
                return None;
            };
            let challenge = Control::Challenge {
                version,
                node: name,
                nonce: rand::random(),
                proof: [0; 32],
            };
            send(&mut ws, control(&challenge)).await;
            next_control(&mut ws).await
        });
        (url, task)
    }
}
