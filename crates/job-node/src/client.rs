//! The external WebSocket client that `submit` and `status` use.
//!
//! It speaks the transport's client edge (`docs/wire.md`): the upgrade
//! request carries `Authorization: Bearer <client token>` and asks for raw
//! payloads (`?payloads=raw`), the node answers
//! `{"auth":"ok","client_id":N,"payloads":"raw"}`, and then every text
//! frame is one JSON envelope `{"to","from","payload",...}` whose payload,
//! when it is JSON, is the JSON value itself (a node that does not confirm
//! raw payloads sends every payload as a JSON string, which is read as
//! well). Error reports arrive as `{"error":"..."}`. What the payloads mean
//! (job submissions, results, statistics requests) is up to the actor
//! addressed in `to`.

use std::time::Duration;

use std::borrow::Cow;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Why talking to the cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a valid WebSocket URL.
    #[error("invalid cluster URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// The parser's error.
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The node did not answer in time.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// Connecting or the upgrade failed (a 401 means a wrong secret).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The WebSocket error.
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The TCP or TLS connection failed (unreachable, untrusted
    /// certificate, `wss://` without a CA, a plaintext node). The
    /// transport's error (the source) says why.
    #[error("cannot connect to {url}")]
    Dial {
        /// The URL.
        url: String,
        /// The transport's error.
        #[source]
        source: Box<cluster_router::TransportError>,
    },
    /// The node refused us (bad token, protocol error).
    #[error("the node refused the client: {0}")]
    Refused(String),
    /// The connection failed after it was established.
    #[error("connection to the cluster lost: {0}")]
    Lost(#[source] tokio_tungstenite::tungstenite::Error),
    /// The node closed the connection.
    #[error("the node closed the connection{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed {
        /// The close reason, if one was given.
        reason: Option<String>,
    },
    /// The node sent a frame that is not an envelope, an error or an auth reply.
    #[error("unexpected frame from the node: {0}")]
    Protocol(String),
}

/// A refused upgrade: a 401 says plainly that the token (the secret) is
/// wrong, a 503 that the node is at its connection limit.
fn upgrade_error(url: &str, source: tokio_tungstenite::tungstenite::Error) -> ClientError {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match &source {
        WsError::Http(response) if response.status().as_u16() == 401 => ClientError::Refused(
            "wrong client token: the node does not accept the token of this \
             cluster secret (check --secret-file)"
                .to_owned(),
        ),
        WsError::Http(response) if response.status().as_u16() == 503 => ClientError::Refused(
            "the node is at its limit of unauthenticated connections; try again later".to_owned(),
        ),
        _ => ClientError::Connect {
            url: url.to_owned(),
            source,
        },
    }
}

/// One envelope as the client receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientEnvelope {
    /// Our temporary address.
    #[serde(default)]
    pub to: String,
    /// The sender.
    #[serde(default)]
    pub from: String,
    /// The payload (JSON text).
    pub payload: String,
    /// The sender's message id (0 = none).
    #[serde(default)]
    pub id: u64,
    /// The id of our message this answers (0 = none).
    #[serde(default)]
    pub correlation_id: u64,
    /// `message`, `undeliverable` or `error`.
    #[serde(default = "message_kind")]
    pub kind: String,
}

fn message_kind() -> String {
    "message".to_owned()
}

/// What the node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientFrame {
    /// An envelope.
    Envelope(ClientEnvelope),
    /// An error report about one of our frames (the connection stays up).
    Error(String),
}

#[derive(Deserialize)]
struct AuthReply {
    auth: String,
    #[serde(default)]
    client_id: u64,
    /// `"raw"` when the node sends JSON payloads raw.
    #[serde(default)]
    payloads: Option<String>,
}

#[derive(Deserialize)]
struct ErrorFrame {
    error: String,
}

/// The sending half of a connection.
#[derive(Debug)]
pub struct ClientSender {
    sink: cluster_router::WsSink,
    next_id: u64,
}

/// The receiving half of a connection.
#[derive(Debug)]
pub struct ClientReceiver {
    stream: cluster_router::WsStream,
    /// The node confirmed raw payloads (see [`parse_frame`]).
    raw: bool,
}

/// An authenticated connection to one node.
#[derive(Debug)]
pub struct ClusterClient {
    sender: ClientSender,
    receiver: ClientReceiver,
    client_id: u64,
}

impl ClusterClient {
    /// Connects to `url` and authenticates with `token`, all within `timeout`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Url`], [`ClientError::Timeout`],
    /// [`ClientError::Connect`], [`ClientError::Refused`] or
    /// [`ClientError::Protocol`].
    pub async fn connect(url: &str, token: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::connect_with(url, token, timeout, None).await
    }

    /// [`ClusterClient::connect`] with TLS settings for `wss://` URLs (the
    /// CA that the node's certificate must chain to).
    ///
    /// # Errors
    ///
    /// As [`ClusterClient::connect`]; [`ClientError::Dial`] when the TCP or
    /// TLS connection fails (or `wss://` without a CA).
    pub async fn connect_with(
        url: &str,
        token: &str,
        timeout: Duration,
        tls: Option<&cluster_router::TlsConfig>,
    ) -> Result<Self, ClientError> {
        let url_error = |source| ClientError::Url {
            url: url.to_owned(),
            source,
        };
        let mut request = url.into_client_request().map_err(url_error)?;
        ask_for_raw_payloads(&mut request).map_err(|e| ClientError::Url {
            url: url.to_owned(),
            source: e.into(),
        })?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
            ClientError::Refused(format!("the client token is not a valid header: {e}"))
        })?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
        let connected = tokio::time::timeout(timeout, async {
            let stream = cluster_router::open_stream(url, tls)
                .await
                .map_err(|source| ClientError::Dial {
                    url: url.to_owned(),
                    source: Box::new(source),
                })?;
            let (ws, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|source| upgrade_error(url, source))?;
            // Each half woken by its own direction of the socket only (an
            // answer arriving does not wake the task that sends).
            let (sink, stream) = cluster_router::split_websocket(ws);
            let mut receiver = ClientReceiver { stream, raw: false };
            let client_id = receiver.auth_reply().await?;
            Ok::<_, ClientError>((sink, receiver, client_id))
        })
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_owned(),
            timeout,
        })?;
        let (sink, receiver, client_id) = connected?;
        Ok(ClusterClient {
            sender: ClientSender { sink, next_id: 1 },
            receiver,
            client_id,
        })
    }

    /// The id the node gave this client.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Sends one envelope; see [`ClientSender::send`].
    ///
    /// # Errors
    ///
    /// See [`ClientSender::send`].
    pub async fn send(&mut self, to: &str, payload_json: &str) -> Result<u64, ClientError> {
        self.sender.send(to, payload_json).await
    }

    /// Receives the next frame; see [`ClientReceiver::recv`].
    ///
    /// # Errors
    ///
    /// See [`ClientReceiver::recv`].
    pub async fn recv(&mut self) -> Result<ClientFrame, ClientError> {
        self.receiver.recv().await
    }

    /// Splits into halves that can be used from two tasks.
    pub fn into_split(self) -> (ClientSender, ClientReceiver) {
        (self.sender, self.receiver)
    }
}

impl ClientSender {
    /// The message id the next [`send`](Self::send) will carry (ids count
    /// up by one from 1).
    pub fn next_message_id(&self) -> u64 {
        self.next_id
    }

    /// Sends `payload_json` (JSON text) to the actor address `to` and
    /// returns the message id it carries; replies name it in
    /// `correlation_id`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Protocol`] if `payload_json` is not JSON,
    /// [`ClientError::Lost`] if the connection failed.
    pub async fn send(&mut self, to: &str, payload_json: &str) -> Result<u64, ClientError> {
        let id = self.feed(to, payload_json).await?;
        self.flush().await?;
        Ok(id)
    }

    /// Queues one envelope like [`send`](Self::send) without flushing the
    /// connection: envelopes fed back to back leave in as few writes as
    /// the WebSocket's buffer allows. Call [`flush`](Self::flush) before
    /// waiting for answers.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn feed(&mut self, to: &str, payload_json: &str) -> Result<u64, ClientError> {
        let text = self
            .envelope_text(to, payload_json)
            .map_err(ClientError::Protocol)?;
        self.sink
            .feed(Message::Text(text.into()))
            .await
            .map_err(ClientError::Lost)?;
        Ok(self.next_id - 1)
    }

    /// Sends an envelope whose client JSON form the caller built itself
    /// (see [`envelope_head`] and [`envelope_tail`]) with the id
    /// [`next_message_id`](Self::next_message_id) gave, and flushes: the
    /// text goes out as it is, without a check or a copy. Returns the id.
    ///
    /// # Errors
    ///
    /// [`ClientError::Lost`] if the connection failed.
    pub(crate) async fn send_envelope_text(&mut self, text: Utf8Bytes) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.sink
            .send(Message::Text(text))
            .await
            .map_err(ClientError::Lost)?;
        Ok(id)
    }

    /// Writes out every envelope queued by [`feed`](Self::feed).
    ///
    /// # Errors
    ///
    /// [`ClientError::Lost`] if the connection failed.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.sink.flush().await.map_err(ClientError::Lost)
    }

    /// The client JSON form of one envelope; the payload is checked to be
    /// JSON and copied as it is (no parse into a tree and back).
    /// The error is the text of a [`ClientError::Protocol`].
    fn envelope_text(&mut self, to: &str, payload_json: &str) -> Result<String, String> {
        serde_json::from_str::<serde::de::IgnoredAny>(payload_json)
            .map_err(|e| format!("payload is not JSON: {e}"))?;
        let to = serde_json::to_string(to).map_err(|e| e.to_string())?;
        let id = self.next_id;
        self.next_id += 1;
        let payload = payload_json.trim();
        let mut text = String::with_capacity(to.len() + payload.len() + 48);
        text.push_str("{\"to\":");
        text.push_str(&to);
        text.push_str(",\"from\":\"\",\"payload\":");
        text.push_str(payload);
        text.push_str(",\"id\":");
        text.push_str(&id.to_string());
        text.push('}');
        Ok(text)
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = self.sink.close().await;
    }
}

/// Adds `payloads=raw` to the upgrade request's query: JSON payloads then
/// arrive as JSON values, not as JSON strings holding their text (one
/// escape on the node and one unescape here less per payload).
fn ask_for_raw_payloads(
    request: &mut tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<(), tokio_tungstenite::tungstenite::http::Error> {
    let uri = request.uri();
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let query = match uri.query() {
        // The user's own choice stands (a second `payloads` is refused).
        Some(query) if query.split('&').any(|p| p.starts_with("payloads=")) => return Ok(()),
        Some(query) if !query.is_empty() => format!("{query}&payloads=raw"),
        _ => "payloads=raw".to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(format!("{path}?{query}").parse()?);
    *request.uri_mut() = tokio_tungstenite::tungstenite::http::Uri::from_parts(parts)?;
    Ok(())
}

/// The client JSON form of an envelope up to its payload:
/// `{"to":<to>,"from":"","payload":`. The payload (JSON text) follows,
/// then [`envelope_tail`].
pub(crate) fn envelope_head(to: &str) -> String {
    // A string always serializes.
    let to = serde_json::to_string(to).unwrap_or_default();
    format!("{{\"to\":{to},\"from\":\"\",\"payload\":")
}

/// Ends an envelope begun with [`envelope_head`]: `,"id":<id>}`.
pub(crate) fn envelope_tail(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'}');
}

/// An envelope as it arrives, before its payload is read: the payload is
/// a slice of the frame, and `format` says what it holds.
#[derive(Debug, Deserialize)]
struct WireEnvelope<'a> {
    #[serde(default, borrow)]
    to: Cow<'a, str>,
    #[serde(default, borrow)]
    from: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    id: u64,
    #[serde(default)]
    correlation_id: u64,
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    format: Option<Cow<'a, str>>,
}

/// A JSON string's value, borrowed from the frame unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> WireEnvelope<'a> {
    /// The payload's text. With raw payloads (`raw`), a payload without a
    /// `format` is a JSON value and its text is the value's JSON, read in
    /// place; every other payload is a JSON string holding the text.
    fn payload_text(&self, raw: bool) -> Result<Cow<'a, str>, serde_json::Error> {
        if raw && self.format.is_none() {
            return Ok(Cow::Borrowed(self.payload.get()));
        }
        serde_json::from_str::<Text<'a>>(self.payload.get()).map(|t| t.0)
    }
}

/// An envelope as received, read without copying what it need not: the
/// payload is borrowed from the frame unless it is a string with escapes.
#[derive(Debug)]
pub(crate) struct EnvelopeRef<'a> {
    /// The payload's text (JSON text when the sender sent JSON).
    pub(crate) payload: Cow<'a, str>,
    /// The id of our message this answers (0 = none).
    pub(crate) correlation_id: u64,
    /// `undeliverable` or `error`; absent for a message.
    pub(crate) kind: Option<Cow<'a, str>>,
}

impl EnvelopeRef<'_> {
    /// `message`, `undeliverable` or `error`.
    pub(crate) fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("message")
    }
}

/// A frame from the node, borrowed from its text.
#[derive(Debug)]
pub(crate) enum FrameRef<'a> {
    /// An envelope.
    Envelope(EnvelopeRef<'a>),
    /// An error report about one of our frames.
    Error(String),
}

/// Reads a frame [`ClientReceiver::recv_text`] returned, as
/// [`ClientReceiver::recv`] would; `raw` is
/// [`ClientReceiver::raw_payloads`].
///
/// # Errors
///
/// The start of a frame that is neither an envelope nor an error report
/// (the text of a [`ClientError::Protocol`]).
pub(crate) fn parse_frame(text: &str, raw: bool) -> Result<FrameRef<'_>, String> {
    if let Some(env) = parse_envelope(text, raw) {
        let (wire, payload) = env;
        return Ok(FrameRef::Envelope(EnvelopeRef {
            payload,
            correlation_id: wire.correlation_id,
            kind: wire.kind,
        }));
    }
    if let Ok(err) = serde_json::from_str::<ErrorFrame>(text) {
        return Ok(FrameRef::Error(err.error));
    }
    Err(truncate(text))
}

/// An envelope frame and its payload's text; `None` if `text` is not one.
fn parse_envelope(text: &str, raw: bool) -> Option<(WireEnvelope<'_>, Cow<'_, str>)> {
    let wire = serde_json::from_str::<WireEnvelope<'_>>(text).ok()?;
    let payload = wire.payload_text(raw).ok()?;
    Some((wire, payload))
}

impl ClientReceiver {
    async fn next_text(&mut self) -> Result<String, ClientError> {
        Ok(self.recv_text().await?.as_str().to_owned())
    }

    /// The next text frame, as received (no copy); read it with
    /// [`parse_frame`].
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Self::recv).
    pub(crate) async fn recv_text(&mut self) -> Result<Utf8Bytes, ClientError> {
        loop {
            match self.stream.next().await {
                None => return Err(ClientError::Closed { reason: None }),
                Some(Err(err)) => return Err(ClientError::Lost(err)),
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame
                        .map(|f| f.reason.to_string())
                        .filter(|r| !r.is_empty());
                    return Err(ClientError::Closed { reason });
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ClientError::Protocol(
                        "binary frame sent to a client".into(),
                    ))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Whether the node sends JSON payloads raw (it confirmed
    /// `payloads=raw`); [`parse_frame`] needs to know.
    pub(crate) fn raw_payloads(&self) -> bool {
        self.raw
    }

    async fn auth_reply(&mut self) -> Result<u64, ClientError> {
        let text = self.next_text().await?;
        if let Ok(reply) = serde_json::from_str::<AuthReply>(&text) {
            if reply.auth == "ok" {
                self.raw = reply.payloads.as_deref() == Some("raw");
                return Ok(reply.client_id);
            }
            return Err(ClientError::Refused(reply.auth));
        }
        if let Ok(err) = serde_json::from_str::<ErrorFrame>(&text) {
            return Err(ClientError::Refused(err.error));
        }
        Err(ClientError::Protocol(truncate(&text)))
    }

    /// Waits for the next envelope or error report.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`], [`ClientError::Lost`] or
    /// [`ClientError::Protocol`] for a frame that is neither.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is consumed only when it is returned.
    pub async fn recv(&mut self) -> Result<ClientFrame, ClientError> {
        let text = self.recv_text().await?;
        if let Some((wire, payload)) = parse_envelope(&text, self.raw) {
            return Ok(ClientFrame::Envelope(ClientEnvelope {
                to: wire.to.into_owned(),
                from: wire.from.into_owned(),
                payload: payload.into_owned(),
                id: wire.id,
                correlation_id: wire.correlation_id,
                kind: wire.kind.map_or_else(message_kind, Cow::into_owned),
            }));
        }
        if let Ok(err) = serde_json::from_str::<ErrorFrame>(&text) {
            return Ok(ClientFrame::Error(err.error));
        }
        Err(ClientError::Protocol(truncate(&text)))
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
