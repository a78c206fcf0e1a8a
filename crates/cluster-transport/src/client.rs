//! External clients: bearer or first-frame authentication, then text
//! frames in both directions, opaque to the transport (the router defines
//! the JSON envelope they carry).
//!
//! Everything before authentication (the upgrade callback, [`first_frame`])
//! is the *pre-auth path*: the only code that reads what an unauthenticated
//! peer sends. Limits that apply before a peer has proven anything belong
//! there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::{header::AUTHORIZATION, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::config::Secret;
use crate::event::{ClientId, ClientPayloads, Incoming, LinkEvent};
use crate::link::{refill_now, Ws};
use crate::split::{self, WsSink, WsStream};
use crate::stats::Counters;
use crate::transport::{PreAuthSlot, Shared};
use crate::window::ClientWindow;
use crate::wire::{AuthReply, AuthRequest, ClientErrorFrame};

/// Capacity of a client's queue of error replies (each a frame of ours
/// answering a bad frame of theirs; more are dropped).
const ERROR_REPLIES: usize = 8;
/// Most frames a client writer takes per wake-up.
const DRAIN_CHUNK: usize = 256;
/// How long a slow client's close frame may take to enter its socket
/// before the connection is simply dropped.
const SLOW_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Least time the close frame of an idle client may take to enter its
/// socket: such a client has not been reading, so its socket is full; when
/// it comes back and reads, it should still learn why it was closed.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Close reason sent to a client whose outbound queue overflowed (at most 123 bytes).
const SLOW_REASON: &str = "too slow: outbound queue full; a client must read its socket";
/// Close reason sent to a client that read nothing for `client_idle_limit`
/// while frames waited for it (at most 123 bytes).
const IDLE_REASON: &str = "too slow: read nothing for the idle limit while answers waited";

/// One text frame queued for a client.
#[derive(Debug)]
pub(crate) struct OutFrame {
    pub(crate) text: String,
    /// It answers one of the client's frames: writing it returns one unit
    /// of the client's window.
    pub(crate) answer: bool,
}

/// What a client's reader asks its writer to send besides the queued
/// frames. Small on purpose (no `Message`, 56 bytes): the channel that
/// carries it allocates a block of 32 of them for every client.
#[derive(Debug)]
enum Reply {
    /// An error frame answering a bad frame of the client's.
    Error(&'static str),
    /// A close frame, sent after the frames already queued.
    Close(CloseCode, &'static str),
}

impl Reply {
    fn into_message(self) -> Message {
        match self {
            Reply::Error(why) => error_text(why),
            Reply::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        }
    }
}

/// The transport's handle on one connected client.
#[derive(Debug)]
pub(crate) struct ClientHandle {
    /// The client's bounded outbound queue of text frames
    /// (`client_window + client_queue`).
    pub(crate) tx: mpsc::Sender<OutFrame>,
    /// Cancelled to disconnect the client as too slow.
    kick: CancellationToken,
    kicked: AtomicBool,
    /// How the client asked to receive payloads.
    pub(crate) payloads: ClientPayloads,
}

impl ClientHandle {
    fn new(tx: mpsc::Sender<OutFrame>, kick: CancellationToken, payloads: ClientPayloads) -> Self {
        ClientHandle {
            tx,
            kick,
            kicked: AtomicBool::new(false),
            payloads,
        }
    }

    /// Starts disconnecting the client; false if that had already begun.
    pub(crate) fn kick(&self) -> bool {
        if self.kicked.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.kick.cancel();
        true
    }
}

/// Outcome of inspecting the upgrade request: its `Authorization` header
/// and its `payloads` query parameter.
#[derive(Debug)]
pub(crate) struct HeaderAuth<'a> {
    secret: &'a Secret,
    verdict: Option<bool>,
    payloads: ClientPayloads,
    bad_option: Option<BadClientOption>,
}

impl<'a> HeaderAuth<'a> {
    pub(crate) fn new(secret: &'a Secret) -> Self {
        HeaderAuth {
            secret,
            verdict: None,
            payloads: ClientPayloads::default(),
            bad_option: None,
        }
    }

    /// A valid bearer token was presented.
    pub(crate) fn accepted(&self) -> bool {
        self.verdict == Some(true)
    }

    /// An invalid bearer token was presented (the upgrade was answered 401).
    pub(crate) fn refused(&self) -> bool {
        self.verdict == Some(false)
    }

    /// How the peer, if it is a client, asked to receive payloads.
    pub(crate) fn payloads(&self) -> ClientPayloads {
        self.payloads
    }

    /// Why the upgrade was refused with HTTP 400 (a bad `payloads`).
    pub(crate) fn bad_option(&self) -> Option<&BadClientOption> {
        self.bad_option.as_ref()
    }
}

impl Callback for &mut HeaderAuth<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        match payloads_from_query(request.uri().query()) {
            Ok(payloads) => self.payloads = payloads,
            Err(err) => {
                let mut refusal = ErrorResponse::new(Some(err.to_string()));
                *refusal.status_mut() = StatusCode::BAD_REQUEST;
                self.bad_option = Some(err);
                return Err(refusal);
            }
        }
        let Some(value) = request.headers().get(AUTHORIZATION) else {
            return Ok(response);
        };
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
        if token.is_some_and(|t| auth::verify_client_token(self.secret, t)) {
            self.verdict = Some(true);
            return Ok(response);
        }
        self.verdict = Some(false);
        let mut refusal = ErrorResponse::new(Some("invalid client token".to_owned()));
        *refusal.status_mut() = StatusCode::UNAUTHORIZED;
        Err(refusal)
    }
}

/// Why the upgrade URL's `payloads` parameter was refused (answered with
/// HTTP 400 and this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BadClientOption {
    /// A value other than `raw` or `strings` (its first characters, up to
    /// 64 bytes once escaped as in Rust's debug form).
    #[error("unknown payloads value \"{0}\" in the upgrade URL (expected \"raw\" or \"strings\")")]
    Value(String),
    /// The parameter given more than once.
    #[error("payloads given more than once in the upgrade URL")]
    Repeated,
}

/// The `payloads` parameter of an upgrade URL's query (sans-IO: part of
/// the pre-auth path). Other parameters are ignored, as they always were.
pub(crate) fn payloads_from_query(query: Option<&str>) -> Result<ClientPayloads, BadClientOption> {
    let mut found = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "payloads" {
            continue;
        }
        let payloads = match value {
            "raw" => ClientPayloads::Raw,
            "strings" => ClientPayloads::Strings,
            other => {
                // The request line is bounded by the HTTP parser; the
                // error repeats at most 64 bytes of it, counted after
                // escaping (a character escapes to up to 10) and
                // cut between characters.
                let mut shown = String::new();
                for c in other.chars() {
                    let escaped = c.escape_debug().to_string();
                    if shown.len() + escaped.len() > 64 {
                        break;
                    }
                    shown.push_str(&escaped);
                }
                return Err(BadClientOption::Value(shown));
            }
        };
        if found.replace(payloads).is_some() {
            return Err(BadClientOption::Repeated);
        }
    }
    Ok(found.unwrap_or_default())
}

fn error_text(why: &str) -> Message {
    let text = serde_json::to_string(&ClientErrorFrame { error: why })
        .unwrap_or_else(|_| r#"{"error":"internal"}"#.to_owned());
    Message::Text(Utf8Bytes::from(text))
}

/// Refuses an unauthenticated client: error frame, then close 1008.
async fn refuse(mut ws: Ws, why: &'static str) {
    let _ = ws.feed(error_text(why)).await;
    let close = CloseFrame {
        code: CloseCode::Policy,
        reason: why.into(),
    };
    let _ = ws.close(Some(close)).await;
}

/// What an unauthenticated client's first text frame amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FirstFrame {
    /// `{"auth":"<token>"}` with the right token.
    Accepted,
    /// An auth message with a wrong token.
    WrongToken,
    /// Anything else (an envelope before authenticating, garbage).
    NotAuth,
}

/// Judges a client's first text frame (sans-IO: the pre-auth decoder, and
/// the entry point of its fuzz target).
pub(crate) fn check_first_frame(secret: &Secret, text: &str) -> FirstFrame {
    match serde_json::from_str::<AuthRequest>(text) {
        Ok(req) if auth::verify_client_token(secret, &req.auth) => FirstFrame::Accepted,
        Ok(_) => FirstFrame::WrongToken,
        Err(_) => FirstFrame::NotAuth,
    }
}

/// Handles a client whose first message was `text` (it must be the auth
/// frame); `payloads` is what its upgrade URL asked for.
pub(crate) async fn first_frame(
    shared: Arc<Shared>,
    ws: Ws,
    text: Utf8Bytes,
    addr: SocketAddr,
    slot: PreAuthSlot,
    payloads: ClientPayloads,
) {
    match check_first_frame(&shared.config.secret, text.as_str()) {
        FirstFrame::Accepted => {
            drop(slot);
            let ws = crate::link::reopen(ws, Role::Server, shared.client_ws_config()).await;
            spawn_run(&shared, ws, addr, payloads);
        }
        FirstFrame::WrongToken => {
            Counters::bump(&shared.counters.auth_failures);
            if let Some(suppressed) = shared.handshake_log.permit() {
                tracing::warn!(%addr, suppressed, "client refused: invalid token");
            }
            refuse(ws, "authentication failed").await;
        }
        FirstFrame::NotAuth => {
            Counters::bump(&shared.counters.auth_failures);
            if let Some(suppressed) = shared.handshake_log.permit() {
                tracing::warn!(%addr, suppressed, "client refused: sent data before authenticating");
            }
            refuse(ws, "not authenticated: send {\"auth\":\"<token>\"} first").await;
        }
    }
}

/// Runs an authenticated client in a task of its own: the connection's
/// accept task (sized for the TLS and WebSocket handshakes) ends, and an
/// idle client costs only what [`run`] holds.
pub(crate) fn spawn_run(shared: &Arc<Shared>, ws: Ws, addr: SocketAddr, payloads: ClientPayloads) {
    let task_shared = Arc::clone(shared);
    shared.spawn(run(task_shared, ws, addr, payloads));
}

/// Runs an authenticated client until it disconnects.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut ws: Ws,
    addr: SocketAddr,
    payloads: ClientPayloads,
) {
    let id = ClientId::new(shared.next_id());
    let config = &shared.config;
    // Room for the window's answers plus frames that answer nothing; tokio
    // allocates the channel's blocks as they fill, not up front.
    let capacity = config.client_window.max(1) + config.client_queue.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let window = Arc::new(ClientWindow::new(config.client_window));
    let kick = CancellationToken::new();
    if !register(&shared, id, ClientHandle::new(tx, kick.clone(), payloads)) {
        refuse_busy(&shared, ws, addr).await;
        return;
    }
    let reply = AuthReply {
        auth: "ok",
        client_id: id.get(),
        payloads: (payloads != ClientPayloads::Strings).then_some(payloads.as_str()),
    };
    let sent = match serde_json::to_string(&reply) {
        Ok(text) => ws.send(Message::Text(Utf8Bytes::from(text))).await.is_ok(),
        Err(_) => false,
    };
    if !sent {
        shared.clients.write().remove(&id.get());
        return;
    }
    Counters::bump(&shared.counters.clients_connected);
    tracing::info!(%addr, client = %id, "client connected");
    shared.emit(LinkEvent::ClientConnected { id });

    let (sink, stream) = split::split(ws);
    // Error replies are rare; a client flooding bad frames loses some.
    let (err_tx, err_rx) = mpsc::channel(ERROR_REPLIES);
    let queues = WriterQueues {
        frames: rx,
        replies: err_rx,
        kick: kick.clone(),
        window: Arc::clone(&window),
        id,
    };
    let mut writer = tokio::spawn(write_loop(Arc::clone(&shared), sink, queues));
    let mut stream = stream;
    let linger = tokio::select! {
        oversized = read_loop(&shared, &mut stream, id, &err_tx, &window) => oversized,
        // Too slow: the writer sends the close (1013) itself.
        () = kick.cancelled() => true,
        () = shared.shutdown.cancelled() => {
            let _ = err_tx.send(Reply::Close(CloseCode::Away, "shutting down")).await;
            false
        }
    };
    shared.clients.write().remove(&id.get());
    // After the client's last frame on the same channel (a closed receiver
    // means the transport is shutting down).
    let _ = shared.incoming.send(Incoming::ClientGone { id }).await;
    drop(err_tx);
    // An idle client's close frame may wait for its grace; at shutdown
    // nobody waits longer than a handshake.
    let writer_limit = if shared.shutdown.is_cancelled() {
        shared.config.handshake_timeout
    } else {
        shared
            .config
            .handshake_timeout
            .max(idle_close_grace(&shared))
    };
    let written = tokio::time::timeout(writer_limit, &mut writer).await;
    if written.is_err() {
        // The peer does not take even the close: drop the connection.
        writer.abort();
    }
    if let (true, Ok(Ok(sink))) = (linger, written) {
        // Our close frame must not be lost to a TCP reset for the frames
        // we left unread.
        if let Some(ws) = split::reunite(stream, sink) {
            crate::link::linger(ws).await;
        }
    }
    Counters::drop_one(&shared.counters.clients_connected);
    tracing::info!(client = %id, "client disconnected");
    shared.emit(LinkEvent::ClientDisconnected { id });
}

/// Adds the client under [`TransportConfig::max_clients`]; false at the limit.
///
/// [`TransportConfig::max_clients`]: crate::TransportConfig::max_clients
fn register(shared: &Shared, id: ClientId, handle: ClientHandle) -> bool {
    let mut clients = shared.clients.write();
    if clients.len() >= shared.config.max_clients {
        return false;
    }
    clients.insert(id.get(), handle);
    true
}

/// Refuses an authenticated client beyond the client limit: an error frame,
/// then close 1013 (try again later); counted, logged at most once a second.
async fn refuse_busy(shared: &Shared, mut ws: Ws, addr: SocketAddr) {
    Counters::bump(&shared.counters.busy_refusals);
    let limit = shared.config.max_clients;
    if let Some(suppressed) = shared.busy_log.permit() {
        tracing::warn!(%addr, limit, suppressed, "client refused: too many clients");
    }
    let why = format!("too many clients on this node (limit {limit}); try again later");
    let refusal = async {
        let _ = ws.feed(error_text(&why)).await;
        let close = CloseFrame {
            code: CloseCode::Again,
            reason: "too many clients".into(),
        };
        let _ = ws.close(Some(close)).await;
    };
    let _ = tokio::time::timeout(shared.config.handshake_timeout, refusal).await;
}

/// Reads the client's frames until it leaves; true when it sent a frame
/// above the limit (the connection is being closed with 1009).
async fn read_loop(
    shared: &Shared,
    stream: &mut WsStream,
    id: ClientId,
    replies: &mpsc::Sender<Reply>,
    window: &ClientWindow,
) -> bool {
    let counters = &shared.counters;
    loop {
        if !window.has_room() {
            // Flow control: the socket is not read until an answer to one
            // of this client's frames has been written to it.
            Counters::bump(&counters.client_window_waits);
            window.room().await;
        }
        let Some(msg) = stream.next().await else {
            break;
        };
        let text = match msg {
            Ok(Message::Text(text)) => text,
            Ok(Message::Binary(_)) => {
                bad_frame(
                    shared,
                    id,
                    replies,
                    "binary frames are for nodes; send JSON text",
                );
                continue;
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                Counters::bump(&counters.oversize_closes);
                tracing::warn!(client = %id, size, max_size, "client frame above limit; closing with 1009");
                let close = Reply::Close(CloseCode::Size, "frame too large");
                let _ = replies.send(close).await;
                return true;
            }
            Err(err) => {
                tracing::debug!(client = %id, %err, "client read error");
                break;
            }
        };
        Counters::bump(&counters.frames_in);
        Counters::bump(&counters.envelopes_in);
        window.take();
        let incoming = Incoming::Client {
            id,
            text: Bytes::from(text),
        };
        // A closed receiver means the transport is shutting down.
        let _ = shared.incoming.send(incoming).await;
    }
    false
}

fn bad_frame(shared: &Shared, id: ClientId, replies: &mpsc::Sender<Reply>, why: &'static str) {
    Counters::bump(&shared.counters.malformed_frames);
    tracing::warn!(client = %id, why, "malformed client frame");
    let _ = replies.try_send(Reply::Error(why));
}

/// What a client writer consumes.
struct WriterQueues {
    /// Text frames for the client.
    frames: mpsc::Receiver<OutFrame>,
    /// Error replies and close frames from the reader.
    replies: mpsc::Receiver<Reply>,
    /// Cancelled when the client is dropped as too slow.
    kick: CancellationToken,
    /// Credit returned as answers are written.
    window: Arc<ClientWindow>,
    id: ClientId,
}

/// Why writing to a client stopped.
enum WriteStop {
    /// The socket failed or closed.
    Failed,
    /// The client read nothing for `client_idle_limit` while frames waited.
    Idle,
}

/// Writes queued text frames and error replies; flushes
/// once per wake-up. When the client is kicked as too slow, or reads
/// nothing for `client_idle_limit` while frames wait, abandons what is
/// queued (also mid-write) and closes with 1013.
/// Returns the sink when done.
async fn write_loop(shared: Arc<Shared>, mut sink: WsSink, q: WriterQueues) -> WsSink {
    let WriterQueues {
        frames: mut queue,
        mut replies,
        kick,
        window,
        id,
    } = q;
    // Grown by `recv_many` as frames come and released after each write:
    // an idle client holds no batch (it was 8 KiB of each idle client's
    // memory when allocated up front for `DRAIN_CHUNK` frames).
    let mut batch = Vec::new();
    let mut reason = SLOW_REASON;
    let mut grace = SLOW_CLOSE_GRACE;
    loop {
        tokio::select! {
            biased;
            () = kick.cancelled() => break,
            r = replies.recv() => match r {
                Some(close @ Reply::Close(..)) => {
                    // Frames already queued (results of a draining node)
                    // go out before the close, or the client loses them.
                    if write_frames(&shared, &mut sink, &mut queue, &mut batch, &window).await.is_ok() {
                        let _ = sink.send(close.into_message()).await;
                    }
                    return sink;
                }
                Some(error @ Reply::Error(_)) => {
                    let idle = shared.config.client_idle_limit;
                    match tokio::time::timeout(idle, sink.send(error.into_message())).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return sink,
                        Err(_) => {
                            if kick_idle(&shared, id) {
                                reason = IDLE_REASON;
                                grace = idle_close_grace(&shared);
                            }
                            break;
                        }
                    }
                }
                None => { let _ = sink.close().await; return sink }
            },
            n = queue.recv_many(&mut batch, DRAIN_CHUNK) => {
                if n == 0 {
                    return sink;
                }
                let written = tokio::select! {
                    biased;
                    () = kick.cancelled() => break,
                    w = write_frames(&shared, &mut sink, &mut queue, &mut batch, &window) => w,
                };
                match written {
                    Ok(()) => batch = Vec::new(),
                    Err(WriteStop::Failed) => return sink,
                    Err(WriteStop::Idle) => {
                        if kick_idle(&shared, id) {
                            reason = IDLE_REASON;
                            grace = idle_close_grace(&shared);
                        }
                        break;
                    }
                }
            }
        }
    }
    // What it did not read is abandoned at once, not held for the grace.
    drop(queue);
    drop(batch);
    let close = CloseFrame {
        code: CloseCode::Again,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(grace, sink.send(Message::Close(Some(close)))).await;
    sink
}

/// How long an idle client's close frame may take to enter its socket.
fn idle_close_grace(shared: &Shared) -> Duration {
    shared.config.client_idle_limit.max(IDLE_CLOSE_GRACE)
}

/// Disconnects client `id` for reading nothing while answers waited:
/// marks it kicked (so nobody else closes it), logs and counts it. False
/// if it was already being closed.
fn kick_idle(shared: &Shared, id: ClientId) -> bool {
    let kicked = shared
        .clients
        .read()
        .get(&id.get())
        .is_some_and(ClientHandle::kick);
    if kicked {
        Counters::bump(&shared.counters.slow_clients_dropped);
        tracing::warn!(
            client = %id,
            idle_limit = ?shared.config.client_idle_limit,
            "client disconnected: it read nothing for the idle limit while answers waited"
        );
    }
    kicked
}

/// Writes `batch` and whatever else is queued now, then flushes. Each
/// write must make progress within `client_idle_limit`; a written answer
/// returns one unit of the client's window.
async fn write_frames(
    shared: &Shared,
    sink: &mut WsSink,
    queue: &mut mpsc::Receiver<OutFrame>,
    batch: &mut Vec<OutFrame>,
    window: &ClientWindow,
) -> Result<(), WriteStop> {
    let idle = shared.config.client_idle_limit;
    loop {
        for frame in batch.drain(..) {
            let msg = Message::Text(Utf8Bytes::from(frame.text));
            match tokio::time::timeout(idle, sink.feed(msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WriteStop::Failed),
                Err(_) => return Err(WriteStop::Idle),
            }
            if frame.answer {
                window.answered();
            }
            Counters::bump(&shared.counters.frames_out);
            Counters::bump(&shared.counters.envelopes_out);
        }
        if !refill_now(queue, batch, DRAIN_CHUNK) {
            break;
        }
    }
    match tokio::time::timeout(idle, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteStop::Failed),
        Err(_) => Err(WriteStop::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parameter() {
        for (query, want) in [
            (None, ClientPayloads::Strings),
            (Some(""), ClientPayloads::Strings),
            (Some("x=1&y"), ClientPayloads::Strings),
            (Some("payloads=strings"), ClientPayloads::Strings),
            (Some("payloads=raw"), ClientPayloads::Raw),
            (Some("a=b&payloads=raw&c"), ClientPayloads::Raw),
        ] {
            assert_eq!(payloads_from_query(query).unwrap(), want, "{query:?}");
        }
        let err = payloads_from_query(Some("payloads=RAW")).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown payloads value "RAW" in the upgrade URL (expected "raw" or "strings")"#
        );
        assert_eq!(
            payloads_from_query(Some("payloads")).unwrap_err(),
            BadClientOption::Value(String::new())
        );
        assert_eq!(
            payloads_from_query(Some("payloads=raw&payloads=raw")).unwrap_err(),
            BadClientOption::Repeated
        );
        // A long value is cut in the error.
        let long = format!("payloads={}", "x".repeat(10_000));
        let BadClientOption::Value(v) = payloads_from_query(Some(&long)).unwrap_err() else {
            panic!("not a value error")
        };
        assert_eq!(v.len(), 64);
        // Control characters are escaped, and the cut counts the escapes
        // (found by the `transport_client_preauth` fuzzer: 64 of them,
        // each shown as `\u{18}`, made a 458-byte answer).
        let controls = format!("payloads={}", "\u{18}".repeat(200));
        let err = payloads_from_query(Some(&controls)).unwrap_err();
        let BadClientOption::Value(v) = &err else {
            panic!("not a value error")
        };
        assert_eq!(v, &"\\u{18}".repeat(10));
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn auth_reply_names_raw_payloads_only() {
        let plain = AuthReply {
            auth: "ok",
            client_id: 3,
            payloads: None,
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"auth":"ok","client_id":3}"#
        );
        let raw = AuthReply {
            payloads: Some(ClientPayloads::Raw.as_str()),
            ..plain
        };
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            r#"{"auth":"ok","client_id":3,"payloads":"raw"}"#
        );
    }
}
