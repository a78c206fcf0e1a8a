//! Node links: dialling, accepting, and the per-link reader and writer tasks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::codec::{self, BatchEncoder, NodeFrame, Push};
use crate::envelope::Envelope;
use crate::error::{HandshakeError, TransportError};
use crate::event::{DownReason, Incoming, LinkEvent};
use crate::handshake::{Dialer, Listener, Step};
use crate::split::{self, WsSink, WsStream};
use crate::stats::Counters;
use crate::stream::Connection;
use crate::transport::{send_frame, PeerQueue, PreAuthSlot, Shared, SharedQueue};
use crate::wire::{ControlFrame, ErrorCode};

/// A WebSocket over plain TCP or TLS.
pub(crate) type Ws = WebSocketStream<Connection>;

/// Re-wraps the connection of an authenticated peer with its full settings
/// (see [`crate::gate`]: nothing half-read is lost).
pub(crate) async fn reopen(mut ws: Ws, role: Role, config: WebSocketConfig) -> Ws {
    let conn = ws.get_mut().take_authenticated();
    drop(ws);
    WebSocketStream::from_raw_socket(conn, role, Some(config)).await
}

/// How long a connection closed for an oversized frame drains its socket.
const LINGER: Duration = Duration::from_secs(1);

/// Most envelopes taken from the queue per `recv_many`.
const DRAIN_CHUNK: usize = 1024;

/// Most envelopes a writer holds unconfirmed before it flushes.
const MAX_INFLIGHT: usize = 8 * DRAIN_CHUNK;

/// Moves up to `limit` envelopes that are already queued into `batch`,
/// without waiting; false when there were none (the writers then flush).
pub(crate) fn refill_now<T>(
    queue: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    limit: usize,
) -> bool {
    queue.recv_many(batch, limit).now_or_never().unwrap_or(0) != 0
}

/// Dials `url`, authenticates and installs the link. Returns the peer's name.
pub(crate) async fn dial(
    shared: &Arc<Shared>,
    url: &str,
    want: bool,
) -> Result<String, TransportError> {
    let timeout = shared.config.handshake_timeout;
    let mut pending = PendingDial { shared, peer: None };
    let attempt = dial_handshake(shared, url, &mut pending);
    let (ws, peer, accepted) = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r?,
        Err(_) => {
            Counters::bump(&shared.counters.handshake_timeouts);
            tracing::warn!(url, "handshake timed out");
            return Err(HandshakeError::Timeout.into());
        }
    };
    if want {
        shared.wanted.lock().insert(peer.clone(), url.to_owned());
    }
    let preferred = shared.config.node_name < peer;
    let conn = if accepted {
        Conn::install(shared, &peer, preferred)
    } else {
        None
    };
    drop(pending);
    if let Some(conn) = conn {
        let task_shared = Arc::clone(shared);
        shared.spawn(run_link(task_shared, ws, peer.clone(), conn));
        return Ok(peer);
    }
    if !accepted {
        Counters::bump(&shared.counters.duplicate_links);
    }
    let mut ws = ws;
    let _ = ws.close(None).await;
    wait_for_link(shared, &peer).await?;
    Ok(peer)
}

/// After a `Duplicate` verdict the peer's own dial is about to win: wait for it.
async fn wait_for_link(shared: &Shared, peer: &str) -> Result<(), TransportError> {
    let mut events = shared.events.subscribe();
    let cfg = &shared.config;
    let limit = cfg.handshake_timeout + cfg.heartbeat_interval * cfg.heartbeat_misses;
    let wait = async {
        loop {
            if shared.has_link(peer) {
                return Ok(());
            }
            match events.recv().await {
                Ok(LinkEvent::Up { peer: p }) if p == peer => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Err(TransportError::Shutdown),
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

/// Marks a dial whose listener has proved itself as pending (for the
/// duplicate rule) until dropped.
struct PendingDial<'a> {
    shared: &'a Shared,
    peer: Option<String>,
}

impl PendingDial<'_> {
    fn set(&mut self, peer: &str) {
        if self.peer.is_none() {
            self.shared.dialing.lock().insert(peer.to_owned());
            self.peer = Some(peer.to_owned());
        }
    }
}

impl Drop for PendingDial<'_> {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            self.shared.dialing.lock().remove(&peer);
        }
    }
}

async fn dial_handshake(
    shared: &Arc<Shared>,
    url: &str,
    pending: &mut PendingDial<'_>,
) -> Result<(Ws, String, bool), TransportError> {
    let conn = crate::tls::dial_stream(url, shared.config.tls.as_ref(), true).await?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, conn, Some(shared.preauth_ws_config()))
            .await?;
    let (mut machine, hello) = Dialer::start(shared.params());
    if !send_frame(&mut ws, codec::encode_control(&hello)).await {
        return Err(HandshakeError::Closed.into());
    }
    loop {
        let frame = next_control(shared, &mut ws).await?;
        match machine.on_frame(frame) {
            Step::Reply(reply) => {
                if let Some(peer) = machine.peer() {
                    pending.set(peer);
                }
                if !send_frame(&mut ws, codec::encode_control(&reply)).await {
                    return Err(HandshakeError::Closed.into());
                }
            }
            Step::Done { peer, accepted } => {
                let ws = reopen(ws, Role::Client, shared.node_ws_config()).await;
                return Ok((ws, peer, accepted));
            }
            Step::Fail { reply, error } => {
                return Err(refuse(shared, ws, reply, error, url).await.into());
            }
        }
    }
}

/// Reads the next handshake frame.
async fn next_control(shared: &Shared, ws: &mut Ws) -> Result<ControlFrame, HandshakeError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                return match codec::decode_node_frame(&b, shared.config.max_frame_size) {
                    Ok(NodeFrame::Control(c)) => Ok(c),
                    Ok(NodeFrame::Batch(_)) => {
                        Err(HandshakeError::Unexpected("data before handshake"))
                    }
                    Err(_) => Err(HandshakeError::Unexpected("undecodable handshake frame")),
                };
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Err(HandshakeError::Closed)
            }
            Some(Ok(_)) => return Err(HandshakeError::Unexpected("text frame during handshake")),
        }
    }
}

/// Sends the refusal (if any), closes, counts and logs; returns the error.
async fn refuse(
    shared: &Shared,
    mut ws: Ws,
    reply: Option<ControlFrame>,
    error: HandshakeError,
    who: &str,
) -> HandshakeError {
    match error {
        HandshakeError::AuthFailed => Counters::bump(&shared.counters.auth_failures),
        HandshakeError::VersionMismatch { .. } => {
            Counters::bump(&shared.counters.version_mismatches)
        }
        _ => {}
    }
    if let Some(suppressed) = shared.handshake_log.permit() {
        tracing::warn!(local = %shared.config.node_name, peer = who, %error, suppressed,
            "handshake refused");
    }
    if let Some(reply) = reply {
        let _ = send_frame(&mut ws, codec::encode_control(&reply)).await;
    }
    let close = CloseFrame {
        code: CloseCode::Policy,
        reason: "handshake refused".into(),
    };
    let _ = ws.close(Some(close)).await;
    error
}

/// Runs the listener side of a node handshake whose `Hello` is `first`.
pub(crate) async fn accept(
    shared: Arc<Shared>,
    mut ws: Ws,
    first: Bytes,
    addr: SocketAddr,
    slot: PreAuthSlot,
) {
    let who = addr.to_string();
    let timeout = shared.config.handshake_timeout;
    let mut machine = Listener::new(shared.params());
    let mut frame = match codec::decode_node_frame(&first, shared.config.max_frame_size) {
        Ok(NodeFrame::Control(c)) => c,
        _ => ControlFrame::Heartbeat, // not a Hello: the machine refuses it
    };
    let run = async {
        loop {
            match machine.on_frame(frame) {
                Step::Reply(reply) => {
                    if !send_frame(&mut ws, codec::encode_control(&reply)).await {
                        return Err(HandshakeError::Closed);
                    }
                }
                Step::Done { peer, .. } => return Ok(Ok(peer)),
                Step::Fail { reply, error } => return Ok(Err((reply, error))),
            }
            frame = next_control(&shared, &mut ws).await?;
        }
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    let peer = match outcome {
        Ok(Ok(Ok(peer))) => peer,
        Ok(Ok(Err((reply, error)))) => {
            refuse(&shared, ws, reply, error, &who).await;
            return;
        }
        Ok(Err(error)) => {
            refuse(&shared, ws, Some(protocol_refusal()), error, &who).await;
            return;
        }
        Err(_) => {
            Counters::bump(&shared.counters.handshake_timeouts);
            refuse(&shared, ws, None, HandshakeError::Timeout, &who).await;
            return;
        }
    };
    drop(slot);
    let ws = reopen(ws, Role::Server, shared.node_ws_config()).await;
    decide(shared, ws, peer).await;
}

fn protocol_refusal() -> ControlFrame {
    ControlFrame::Refuse {
        reason: crate::wire::RefuseReason::Protocol,
    }
}

/// Applies the duplicate rule to an authenticated incoming connection: the
/// connection dialled by the node whose name sorts lower wins.
async fn decide(shared: Arc<Shared>, mut ws: Ws, peer: String) {
    let preferred = peer.as_str() < shared.config.node_name.as_str();
    let keep = preferred || !(shared.has_link(&peer) || shared.dialing.lock().contains(&peer));
    if !keep {
        Counters::bump(&shared.counters.duplicate_links);
        tracing::debug!(peer, "duplicate incoming link refused; ours wins");
        let _ = send_frame(&mut ws, codec::encode_control(&ControlFrame::Duplicate)).await;
        let _ = ws.close(None).await;
        return;
    }
    if !send_frame(&mut ws, codec::encode_control(&ControlFrame::Welcome)).await {
        return;
    }
    match Conn::install(&shared, &peer, preferred) {
        Some(conn) => run_link(shared, ws, peer, conn).await,
        None => {
            let _ = ws.close(None).await;
        }
    }
}

/// One installed connection's handles.
#[derive(Debug)]
struct Conn {
    id: u64,
    cancel: CancellationToken,
    queue: SharedQueue,
    ctrl_tx: mpsc::Sender<Ctrl>,
    ctrl_rx: mpsc::Receiver<Ctrl>,
}

impl Conn {
    /// Installs a new connection as the link to `peer` (see [`Shared::install`]).
    fn install(shared: &Shared, peer: &str, preferred: bool) -> Option<Conn> {
        let id = shared.next_id();
        let cancel = shared.shutdown.child_token();
        let (ctrl_tx, ctrl_rx) = mpsc::channel(64);
        let queue = shared.install(peer, id, preferred, cancel.clone())?;
        Some(Conn {
            id,
            cancel,
            queue,
            ctrl_tx,
            ctrl_rx,
        })
    }
}

/// What the writer must send besides envelopes (error answers from the
/// reader, closes).
#[derive(Debug)]
pub(crate) enum Ctrl {
    Frame(Bytes),
    Close(CloseCode, &'static str),
}

/// State the reader and the writer of one connection share.
#[derive(Debug)]
struct LinkState {
    /// The reader stopped on an oversized frame (1009): linger before closing.
    oversize: AtomicBool,
    reason: Mutex<Option<DownReason>>,
    /// Cancelled when the reader ends.
    reader_done: CancellationToken,
}

impl LinkState {
    /// Records why the link ends; the first reason wins.
    fn set_reason(&self, reason: DownReason) {
        self.reason.lock().get_or_insert(reason);
    }
}

/// Runs an established link until it closes, then reports it lost.
async fn run_link(shared: Arc<Shared>, ws: Ws, peer: String, conn: Conn) {
    Counters::bump(&shared.counters.links_open);
    let Conn {
        id: conn,
        cancel,
        queue,
        ctrl_tx,
        ctrl_rx,
    } = conn;
    let (sink, stream) = split::split(ws);
    let state = Arc::new(LinkState {
        oversize: AtomicBool::new(false),
        reason: Mutex::new(None),
        reader_done: CancellationToken::new(),
    });
    let reader = tokio::spawn(read_loop(
        Arc::clone(&shared),
        stream,
        peer.clone(),
        ctrl_tx,
        Arc::clone(&state),
    ));
    let enc = BatchEncoder::new(shared.config.max_frame_size);
    let mut writer = Writer {
        shared: &shared,
        sink,
        state: &state,
        enc,
    };
    let graceful = writer.run(queue, ctrl_rx, &cancel).await;
    if graceful {
        let grace = shared.config.handshake_timeout;
        let _ = tokio::time::timeout(grace, state.reader_done.cancelled()).await;
    }
    if state.oversize.load(Ordering::Relaxed) {
        if let Ok(Some(stream)) = reader.await {
            if let Some(ws) = split::reunite(stream, writer.sink) {
                linger(ws).await;
            }
        }
    } else {
        reader.abort();
    }
    Counters::drop_one(&shared.counters.links_open);
    let reason = state
        .reason
        .lock()
        .take()
        .unwrap_or_else(|| DownReason::failure("connection closed without a close frame"));
    shared.link_lost(&peer, conn, reason);
}

/// The reader: decodes frames, delivers batches, answers malformed frames.
/// Hands the stream back when it stopped on an oversized frame.
async fn read_loop(
    shared: Arc<Shared>,
    mut stream: WsStream,
    peer: String,
    ctrl: mpsc::Sender<Ctrl>,
    state: Arc<LinkState>,
) -> Option<WsStream> {
    let counters = &shared.counters;
    let cfg = &shared.config;
    let allowed = cfg.heartbeat_interval * cfg.heartbeat_misses;
    loop {
        // Any frame is a sign of life; waiting longer than the allowed misses
        // (not counting time spent delivering) means the peer is gone.
        let msg = match tokio::time::timeout(allowed, stream.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) => {
                let why = format!("missed {} heartbeats", cfg.heartbeat_misses);
                state.set_reason(DownReason::failure(why));
                let _ = ctrl.try_send(Ctrl::Close(CloseCode::Away, "missed heartbeats"));
                break;
            }
        };
        match msg {
            Ok(Message::Binary(frame)) => on_binary(&shared, &peer, &ctrl, &frame).await,
            Ok(Message::Text(_)) => {
                let why = "text frame on a node link";
                malformed(&shared, &peer, &ctrl, why, ErrorCode::Unexpected);
            }
            Ok(Message::Close(frame)) => state.set_reason(peer_close_reason(frame.as_ref())),
            Ok(_) => {}
            Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                Counters::bump(&counters.oversize_closes);
                tracing::warn!(peer, size, max_size, "frame above limit; closing with 1009");
                let why = format!("frame of {size} bytes above limit {max_size}");
                state.set_reason(DownReason::failure(why));
                state.oversize.store(true, Ordering::Relaxed);
                let _ = ctrl
                    .send(Ctrl::Close(CloseCode::Size, "frame too large"))
                    .await;
                state.reader_done.cancel();
                return Some(stream);
            }
            Err(err) => {
                state.set_reason(DownReason::failure(format!("read error: {err}")));
                break;
            }
        }
    }
    state.reader_done.cancel();
    None
}

/// Why the peer closed: clean for 1000 (normal), 1001 (going away) and a
/// close frame without a code; a failure for every other code.
fn peer_close_reason(frame: Option<&CloseFrame>) -> DownReason {
    let Some(f) = frame else {
        return DownReason::clean("peer closed");
    };
    let why = format!("peer closed ({}: {})", u16::from(f.code), f.reason);
    match f.code {
        CloseCode::Normal | CloseCode::Away => DownReason::clean(why),
        _ => DownReason::failure(why),
    }
}

/// After a close for an oversized frame: read and discard what the peer
/// still sends (the rest of that frame, its close reply) for a moment, so
/// that closing the socket does not reset it before our close frame arrives.
pub(crate) async fn linger(mut ws: Ws) {
    let tcp = ws.get_mut();
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Decodes one binary frame and delivers its batch (one `Incoming` per frame).
async fn on_binary(shared: &Shared, peer: &str, ctrl: &mpsc::Sender<Ctrl>, frame: &Bytes) {
    let counters = &shared.counters;
    match codec::decode_node_frame(frame, shared.config.max_frame_size) {
        Ok(NodeFrame::Batch(envelopes)) => {
            Counters::bump(&counters.frames_in);
            Counters::add(&counters.envelopes_in, envelopes.len() as u64);
            if !envelopes.is_empty() {
                let incoming = Incoming::Node {
                    peer: peer.to_owned(),
                    envelopes,
                };
                // A closed receiver means the transport is shutting down.
                let _ = shared.incoming.send(incoming).await;
            }
        }
        Ok(NodeFrame::Control(c)) => on_control(shared, peer, c),
        Err(err) => malformed(shared, peer, ctrl, &err.to_string(), ErrorCode::Malformed),
    }
}

fn on_control(shared: &Shared, peer: &str, frame: ControlFrame) {
    match frame {
        ControlFrame::Heartbeat => {}
        ControlFrame::Error { code, message } => {
            Counters::bump(&shared.counters.error_frames_in);
            tracing::warn!(peer, ?code, message, "peer rejected a frame of ours");
        }
        other => tracing::debug!(
            peer,
            ?other,
            "ignoring handshake frame on an established link"
        ),
    }
}

fn malformed(shared: &Shared, peer: &str, ctrl: &mpsc::Sender<Ctrl>, why: &str, code: ErrorCode) {
    Counters::bump(&shared.counters.malformed_frames);
    tracing::warn!(peer, why, "malformed frame");
    let frame = ControlFrame::Error {
        code,
        message: why.to_owned(),
    };
    // A full control queue means the peer floods us with garbage: drop the answer.
    let _ = ctrl.try_send(Ctrl::Frame(codec::encode_control(&frame)));
}

/// The writer: coalesces queued envelopes into frames, sends heartbeats and
/// watches the peer's liveness.
struct Writer<'a> {
    shared: &'a Shared,
    sink: WsSink,
    state: &'a LinkState,
    enc: BatchEncoder,
}

impl Writer<'_> {
    /// Returns whether the close was ours and graceful (wait for the reader).
    async fn run(
        &mut self,
        queue: SharedQueue,
        mut ctrl: mpsc::Receiver<Ctrl>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut queue = tokio::select! {
            q = queue.lock_owned() => q,
            () = cancel.cancelled() => return self.close_locally("closing").await,
        };
        let interval = self.shared.config.heartbeat_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(DRAIN_CHUNK);
        let mut inflight = Vec::new();
        // What a failed or replaced connection could not confirm goes first.
        if !queue.unsent.is_empty() {
            batch.extend(queue.unsent.drain(..));
            if let Some(graceful) = self.send_batch(&mut queue, &mut batch, &mut inflight).await {
                return graceful;
            }
        }
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return self.close_locally("closing").await,
                c = ctrl.recv() => match c {
                    Some(Ctrl::Frame(f)) => if !self.write_now(f).await { return false },
                    Some(Ctrl::Close(code, why)) => { self.close(code, why).await; return false }
                    None => return false,
                },
                () = self.state.reader_done.cancelled() => return false,
                n = queue.rx.recv_many(&mut batch, DRAIN_CHUNK) => {
                    if n == 0 {
                        return self.close_locally("link removed").await;
                    }
                    let sent = self.send_batch(&mut queue, &mut batch, &mut inflight).await;
                    if let Some(graceful) = sent {
                        return graceful;
                    }
                }
                _ = tick.tick() => if !self.heartbeat().await { return false },
            }
        }
    }

    /// Writes `batch` and whatever else is queued. When the write fails or is
    /// aborted, puts every envelope not confirmed written back at the front
    /// of the peer's `unsent` slot for the next connection and returns
    /// `Some(false)` (the link ends); `None` when all was written.
    async fn send_batch(
        &mut self,
        queue: &mut PeerQueue,
        batch: &mut Vec<Envelope>,
        inflight: &mut Vec<Envelope>,
    ) -> Option<bool> {
        // A peer that stops reading must not wedge us: the reader ends the
        // link on missed heartbeats, which aborts the write.
        let reader_done = self.state.reader_done.clone();
        let outcome = tokio::select! {
            r = self.write_batches(&mut queue.rx, batch, inflight) => r.map_err(Some),
            () = reader_done.cancelled() => Err(None),
        };
        let err = match outcome {
            Ok(()) => {
                inflight.clear();
                return None;
            }
            Err(err) => err,
        };
        let mut requeue: VecDeque<Envelope> = inflight.drain(..).chain(batch.drain(..)).collect();
        requeue.append(&mut queue.unsent);
        queue.unsent = requeue;
        if let Some(err) = err {
            let why = format!("write error: {err}");
            self.state.set_reason(DownReason::failure(why));
        }
        Some(false)
    }

    async fn write_now(&mut self, frame: Bytes) -> bool {
        self.sink.send(Message::Binary(frame)).await.is_ok()
    }

    /// Encodes `batch` and whatever else is queued into frames, then flushes.
    /// Envelopes taken move to `inflight`, which the caller clears once the
    /// write succeeded; it is flushed and cleared here every
    /// [`MAX_INFLIGHT`] envelopes so that a steady stream stays bounded.
    async fn write_batches(
        &mut self,
        queue: &mut mpsc::Receiver<Envelope>,
        batch: &mut Vec<Envelope>,
        inflight: &mut Vec<Envelope>,
    ) -> Result<(), WsError> {
        loop {
            let start = inflight.len();
            inflight.append(batch);
            for env in &inflight[start..] {
                match self.enc.push(env) {
                    Push::Added => continue,
                    Push::Full => {}
                    Push::TooLarge => {
                        tracing::error!(
                            len = env.payload.len(),
                            "dropping envelope above the frame limit"
                        );
                        continue;
                    }
                }
                let frame = self.finish_frame();
                self.sink.feed(Message::Binary(frame)).await?;
                if self.enc.push(env) != Push::Added {
                    tracing::error!(
                        len = env.payload.len(),
                        "dropping envelope above the frame limit"
                    );
                }
            }
            if inflight.len() >= MAX_INFLIGHT {
                self.flush_pending().await?;
                inflight.clear();
            }
            if !refill_now(queue, batch, DRAIN_CHUNK) {
                break;
            }
        }
        self.flush_pending().await
    }

    /// Feeds the frame being encoded, if any, then flushes the sink.
    async fn flush_pending(&mut self) -> Result<(), WsError> {
        if self.enc.len() > 0 {
            let frame = self.finish_frame();
            self.sink.feed(Message::Binary(frame)).await?;
        }
        self.sink.flush().await
    }

    fn finish_frame(&mut self) -> Bytes {
        let counters = &self.shared.counters;
        Counters::bump(&counters.frames_out);
        Counters::add(&counters.envelopes_out, self.enc.len() as u64);
        self.enc.finish()
    }

    /// Sends a heartbeat; false when the link must end.
    async fn heartbeat(&mut self) -> bool {
        self.write_now(codec::encode_control(&ControlFrame::Heartbeat))
            .await
    }

    /// Closes on purpose (shutdown, replaced, disconnected) with code 1000:
    /// a clean close whatever the peer answers.
    async fn close_locally(&mut self, why: &'static str) -> bool {
        self.state
            .set_reason(DownReason::clean(format!("closed locally ({why})")));
        self.close(CloseCode::Normal, why).await
    }

    /// Sends a close frame; returns true (a graceful close of ours).
    async fn close(&mut self, code: CloseCode, why: &'static str) -> bool {
        let frame = CloseFrame {
            code,
            reason: why.into(),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
        true
    }
}
