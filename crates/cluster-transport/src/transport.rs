//! The `Transport` handle: shared state, the public API and the accept loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{self, HeaderAuth, OutFrame};
use crate::codec;
use crate::config::TransportConfig;
use crate::envelope::Envelope;
use crate::error::{SendError, TransportError, TrySendError};
use crate::event::{ClientId, ClientPayloads, DownReason, Incoming, LinkEvent};
use crate::handshake::Params;
use crate::link;
use crate::stats::{Counters, RateLimitedLog, TransportStats};
use crate::stream::Connection;
use crate::wire::PROTOCOL_VERSION;

/// Capacity, in frames, of the incoming channel.
const INCOMING_CAPACITY: usize = 1024;
/// Capacity of the link event broadcast.
const EVENT_CAPACITY: usize = 1024;
/// WebSocket read and write buffer target before authentication and for
/// clients.
const SMALL_BUFFER: usize = 4 * 1024;
/// WebSocket read buffer of an authenticated client: it is allocated and
/// zeroed per client, and grows for a larger frame as needed.
const CLIENT_READ_BUFFER: usize = 1024;
/// How long a refused connection is drained before it is closed, so that
/// the refusal is read rather than reset.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// One unauthenticated connection's place under
/// [`TransportConfig::max_unauthenticated`]; released on drop (when the
/// peer authenticated or the connection ended).
pub(crate) struct PreAuthSlot {
    shared: Arc<Shared>,
}

impl fmt::Debug for PreAuthSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreAuthSlot")
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        Counters::drop_one(&self.shared.counters.unauthenticated);
    }
}

/// One task counted under `Shared::active_tasks`, until it ends or is
/// dropped (aborted, or its runtime shut down).
struct ActiveTask(Arc<Shared>);

impl Drop for ActiveTask {
    fn drop(&mut self) {
        if self.0.active_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.tasks_done.notify_waiters();
        }
    }
}

/// The queue shared by all connections that serve one peer in turn.
pub(crate) type SharedQueue = Arc<tokio::sync::Mutex<PeerQueue>>;

/// One peer's outbound queue, locked by the connection's writer that serves it.
#[derive(Debug)]
pub(crate) struct PeerQueue {
    /// Envelopes queued by `send`.
    pub(crate) rx: mpsc::Receiver<Envelope>,
    /// Envelopes a previous writer took from `rx` but could not confirm as
    /// written (its connection failed or was replaced mid-write), oldest
    /// first: the next writer sends them before anything from `rx`.
    pub(crate) unsent: VecDeque<Envelope>,
}

/// The installed link to one peer.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub(crate) conn: u64,
    /// Dialled by the node whose name sorts lower (wins over the other).
    pub(crate) preferred: bool,
    pub(crate) tx: mpsc::Sender<Envelope>,
    pub(crate) queue: SharedQueue,
    pub(crate) cancel: CancellationToken,
}

/// State shared by the handle and all tasks.
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) local_addr: SocketAddr,
    pub(crate) counters: Counters,
    /// Keyed by peer node names, which remote nodes choose: keyed (SipHash,
    /// random per process) hashing, as for every name-keyed map below.
    pub(crate) links: RwLock<HashMap<String, PeerLink>>,
    /// Keyed by our own client ids: fast unkeyed hashing.
    pub(crate) clients: RwLock<FxHashMap<u64, client::ClientHandle>>,
    /// Peers we `connect`ed to, with their URL: redialled after loss.
    pub(crate) wanted: Mutex<HashMap<String, String>>,
    /// Peers with an authenticated dial of ours awaiting the verdict.
    pub(crate) dialing: Mutex<HashSet<String>>,
    redialing: Mutex<HashSet<String>>,
    pub(crate) events: broadcast::Sender<LinkEvent>,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    incoming_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    next_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    active_tasks: AtomicUsize,
    tasks_done: Notify,
    /// Warnings a flood of connections can trigger.
    pub(crate) busy_log: RateLimitedLog,
    pub(crate) refused_log: RateLimitedLog,
    /// Failed handshakes and authentications (a scan or a misconfigured
    /// peer can cause thousands a second): one warning a second, with the
    /// count of the ones not logged.
    pub(crate) handshake_log: RateLimitedLog,
    /// Refused connections being drained (bounded like the slots).
    refusing: AtomicUsize,
}

impl Shared {
    pub(crate) fn params(&self) -> Params {
        Params {
            local: self.config.node_name.clone(),
            secret: self.config.secret.clone(),
            version: PROTOCOL_VERSION,
        }
    }

    /// The WebSocket settings of an established node link.
    pub(crate) fn node_ws_config(&self) -> WebSocketConfig {
        let max = self.config.max_frame_size;
        WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .read_buffer_size(256 * 1024)
            .write_buffer_size(256 * 1024)
    }

    /// The WebSocket settings of an authenticated client: full frames,
    /// small buffers (an idle client must cost little).
    pub(crate) fn client_ws_config(&self) -> WebSocketConfig {
        let max = self.config.max_frame_size;
        WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .read_buffer_size(CLIENT_READ_BUFFER)
            .write_buffer_size(SMALL_BUFFER)
    }

    /// The WebSocket settings before authentication: small frames and buffers.
    pub(crate) fn preauth_ws_config(&self) -> WebSocketConfig {
        let max = self
            .config
            .max_preauth_frame
            .min(self.config.max_frame_size);
        WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
            .read_buffer_size(CLIENT_READ_BUFFER)
            .write_buffer_size(SMALL_BUFFER)
    }

    /// Takes one of the [`TransportConfig::max_unauthenticated`] slots, or
    /// `None` at the limit.
    fn preauth_slot(self: &Arc<Self>) -> Option<PreAuthSlot> {
        let counter = &self.counters.unauthenticated;
        let cap = self.config.max_unauthenticated as u64;
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(PreAuthSlot {
            shared: Arc::clone(self),
        })
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn emit(&self, event: LinkEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Spawns a task counted by `shutdown`.
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.active_tasks.fetch_add(1, Ordering::SeqCst);
        let counted = ActiveTask(Arc::clone(self));
        // `map`, not `async move { fut.await; .. }`: an async block keeps
        // the future it captured and the one it awaits in two slots, which
        // doubled the task of every connection (a client's reader was 4.7
        // KB instead of 2.3 KB in debug builds).
        tokio::spawn(fut.map(move |()| drop(counted)));
    }

    /// Installs `conn` as the link to `peer`, replacing (and closing) any
    /// previous connection but keeping its queue. A connection dialled by the
    /// higher-named node (`preferred == false`) never replaces one dialled by
    /// the lower-named node: then `None` is returned and the caller closes it.
    /// Otherwise returns the queue to drain.
    pub(crate) fn install(
        &self,
        peer: &str,
        conn: u64,
        preferred: bool,
        cancel: CancellationToken,
    ) -> Option<SharedQueue> {
        let mut links = self.links.write();
        if let Some(old) = links.get_mut(peer) {
            Counters::bump(&self.counters.duplicate_links);
            if old.preferred && !preferred {
                tracing::debug!(
                    peer,
                    conn,
                    "duplicate connection dropped; preferred link kept"
                );
                return None;
            }
            old.cancel.cancel();
            old.conn = conn;
            old.preferred = preferred;
            old.cancel = cancel;
            tracing::debug!(peer, conn, "link replaced by the preferred connection");
            return Some(Arc::clone(&old.queue));
        }
        let (tx, rx) = mpsc::channel(self.config.outbound_queue.max(1));
        let queue = Arc::new(tokio::sync::Mutex::new(PeerQueue {
            rx,
            unsent: VecDeque::new(),
        }));
        let link = PeerLink {
            conn,
            preferred,
            tx,
            queue: Arc::clone(&queue),
            cancel,
        };
        links.insert(peer.to_owned(), link);
        drop(links);
        tracing::info!(local = %self.config.node_name, peer, "link up");
        self.emit(LinkEvent::Up {
            peer: peer.to_owned(),
        });
        Some(queue)
    }

    /// Removes the link to `peer` if `conn` still serves it; reports it down
    /// and starts redialling when the peer is wanted.
    pub(crate) fn link_lost(self: &Arc<Self>, peer: &str, conn: u64, reason: DownReason) {
        let removed = {
            let mut links = self.links.write();
            match links.get(peer) {
                Some(l) if l.conn == conn => links.remove(peer).is_some(),
                _ => false,
            }
        };
        if !removed {
            return;
        }
        if reason.is_clean() {
            tracing::info!(local = %self.config.node_name, peer, %reason, "link closed");
        } else {
            tracing::warn!(local = %self.config.node_name, peer, %reason, "link down");
        }
        self.emit(LinkEvent::Down {
            peer: peer.to_owned(),
            reason,
        });
        if self.shutdown.is_cancelled() {
            return;
        }
        let url = self.wanted.lock().get(peer).cloned();
        if let Some(url) = url {
            self.start_redial(peer.to_owned(), url);
        }
    }

    fn start_redial(self: &Arc<Self>, peer: String, url: String) {
        if !self.redialing.lock().insert(peer.clone()) {
            return;
        }
        let shared = Arc::clone(self);
        self.spawn(async move {
            redial(&shared, &peer, &url).await;
            shared.redialing.lock().remove(&peer);
        });
    }

    pub(crate) fn has_link(&self, peer: &str) -> bool {
        self.links.read().contains_key(peer)
    }
}

/// Redials `peer` at `url` with backoff until linked, unwanted or shut down.
async fn redial(shared: &Arc<Shared>, peer: &str, url: &str) {
    let mut attempt = 0u32;
    loop {
        let delay = shared.config.reconnect.delay(attempt);
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        if shared.has_link(peer) || shared.wanted.lock().get(peer).map(String::as_str) != Some(url)
        {
            return;
        }
        match link::dial(shared, url, true).await {
            Ok(_) => return,
            Err(err) => {
                tracing::debug!(peer, url, %err, attempt, "redial failed");
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// A node's endpoint: listener, dialer and the set of links. `Clone` is cheap.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("node_name", &self.shared.config.node_name)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Binds the listener and starts accepting nodes and clients.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] if the address cannot be bound,
    /// [`TransportError::PublicWithoutSecret`] for a non-loopback address
    /// without a secret, [`TransportError::InvalidConfig`] for an empty node
    /// name, a zero frame limit or zero heartbeat interval.
    pub async fn bind(config: TransportConfig) -> Result<Transport, TransportError> {
        validate(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TransportError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        let (incoming, incoming_rx) = mpsc::channel(INCOMING_CAPACITY);
        let shared = Arc::new(Shared {
            config,
            local_addr,
            counters: Counters::default(),
            links: RwLock::default(),
            clients: RwLock::default(),
            wanted: Mutex::default(),
            dialing: Mutex::default(),
            redialing: Mutex::default(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            incoming,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            next_id: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            active_tasks: AtomicUsize::new(0),
            tasks_done: Notify::new(),
            busy_log: RateLimitedLog::default(),
            refused_log: RateLimitedLog::default(),
            handshake_log: RateLimitedLog::default(),
            refusing: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        shared.spawn(accept_loop(accept_shared, listener));
        tracing::info!(node = %shared.config.node_name, %local_addr, "transport listening");
        Ok(Transport { shared })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// `ws://IP:PORT` of the listener (`wss://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = match &self.shared.config.tls {
            Some(tls) if tls.serves() => "wss",
            _ => "ws",
        };
        format!("{scheme}://{}", self.shared.local_addr)
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.config.node_name
    }

    /// Dials `url`, runs the handshake and returns the peer's node name. The
    /// link is redialled after a loss until [`disconnect`](Self::disconnect).
    /// If the peer is dialling us at the same moment, whichever connection the
    /// duplicate rule keeps serves the link and this still returns its name.
    ///
    /// # Errors
    ///
    /// Invalid URL, TCP or WebSocket failure, handshake refusal
    /// ([`TransportError::Handshake`]) or timeout, or shutdown.
    ///
    /// # Cancel safety
    ///
    /// Cancelling drops the connection attempt; nothing is registered.
    pub async fn connect(&self, url: &str) -> Result<String, TransportError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(TransportError::Shutdown);
        }
        link::dial(&self.shared, url, true).await
    }

    /// Closes the link to `peer` and stops redialling it.
    pub fn disconnect(&self, peer: &str) {
        self.shared.wanted.lock().remove(peer);
        let removed = self.shared.links.write().remove(peer);
        if let Some(link) = removed {
            link.cancel.cancel();
            self.shared.emit(LinkEvent::Down {
                peer: peer.to_owned(),
                reason: DownReason::clean("disconnected locally"),
            });
        }
    }

    /// Queues `env` for `peer`, waiting while the link's queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError::NoLink`] when there is no link (or it closed while
    /// waiting), [`SendError::TooLarge`] when the envelope cannot fit in one
    /// frame. The envelope is handed back.
    ///
    /// # Cancel safety
    ///
    /// Cancelling while waiting for space drops the envelope unsent.
    pub async fn send(&self, peer: &str, env: Envelope) -> Result<(), SendError> {
        if !codec::fits_in_frame(&env, self.shared.config.max_frame_size) {
            return Err(SendError::TooLarge(env));
        }
        let tx = self.shared.links.read().get(peer).map(|l| l.tx.clone());
        match tx {
            Some(tx) => tx.send(env).await.map_err(|e| SendError::NoLink(e.0)),
            None => Err(SendError::NoLink(env)),
        }
    }

    /// Queues `env` for `peer` without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::NoLink`] or
    /// [`TrySendError::TooLarge`], each handing the envelope back.
    pub fn try_send(&self, peer: &str, env: Envelope) -> Result<(), TrySendError> {
        if !codec::fits_in_frame(&env, self.shared.config.max_frame_size) {
            return Err(TrySendError::TooLarge(env));
        }
        let links = self.shared.links.read();
        let Some(link) = links.get(peer) else {
            return Err(TrySendError::NoLink(env));
        };
        link.tx.try_send(env).map_err(|e| match e {
            mpsc::error::TrySendError::Full(env) => TrySendError::Full(env),
            mpsc::error::TrySendError::Closed(env) => TrySendError::NoLink(env),
        })
    }

    /// Queues `text` as one text frame for an external client, without
    /// waiting: a frame that answers none of the client's frames (a
    /// welcome, a notice). Answers go through
    /// [`try_answer_client`](Self::try_answer_client).
    ///
    /// A client's queue holds [`TransportConfig::client_window`] +
    /// [`TransportConfig::client_queue`] frames. Because the client's
    /// socket is read only while it has fewer than `client_window`
    /// unanswered frames, answers alone never fill it; it is full only when
    /// the client also stopped reading while more than `client_queue`
    /// other frames (notices, extra answers) piled up. The caller then
    /// decides what that means; the router's policy is
    /// [`close_slow_client`](Self::close_slow_client).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::NoLink`] (no such client) or
    /// [`TrySendError::TooLarge`] (above `max_frame_size`), each handing the
    /// text back.
    pub fn try_send_to_client(
        &self,
        client: ClientId,
        text: String,
    ) -> Result<(), TrySendError<String>> {
        self.queue_for_client(client, text, false)
    }

    /// Like [`try_send_to_client`](Self::try_send_to_client), for a frame
    /// that answers one of the client's frames: once it is written to the
    /// socket, the client's window has room for one more frame (see
    /// [`TransportConfig::client_window`]).
    ///
    /// # Errors
    ///
    /// As [`try_send_to_client`](Self::try_send_to_client).
    pub fn try_answer_client(
        &self,
        client: ClientId,
        text: String,
    ) -> Result<(), TrySendError<String>> {
        self.queue_for_client(client, text, true)
    }

    /// How client `client` asked to receive payloads at connect time
    /// (`None`: no such client, or it is gone).
    pub fn client_payloads(&self, client: ClientId) -> Option<ClientPayloads> {
        let clients = self.shared.clients.read();
        clients.get(&client.get()).map(|handle| handle.payloads)
    }

    fn queue_for_client(
        &self,
        client: ClientId,
        text: String,
        answer: bool,
    ) -> Result<(), TrySendError<String>> {
        if text.len() > self.shared.config.max_frame_size {
            return Err(TrySendError::TooLarge(text));
        }
        let clients = self.shared.clients.read();
        let Some(handle) = clients.get(&client.get()) else {
            return Err(TrySendError::NoLink(text));
        };
        handle
            .tx
            .try_send(OutFrame { text, answer })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(f) => TrySendError::Full(f.text),
                mpsc::error::TrySendError::Closed(f) => TrySendError::NoLink(f.text),
            })
    }

    /// Disconnects a client that does not read its socket: its connection is
    /// closed with code 1013 ("try again later") and a reason text (sent if
    /// the socket still takes it, else the connection is dropped after a
    /// short grace), what it had queued is discarded, the event is logged at
    /// warn and counted in [`TransportStats::slow_clients_dropped`]. Returns
    /// false when the client is already gone (or being dropped).
    pub fn close_slow_client(&self, client: ClientId) -> bool {
        let kicked = self
            .shared
            .clients
            .read()
            .get(&client.get())
            .is_some_and(|c| c.kick());
        if kicked {
            Counters::bump(&self.shared.counters.slow_clients_dropped);
            tracing::warn!(
                node = %self.shared.config.node_name,
                client = %client,
                queue = self.shared.config.client_window + self.shared.config.client_queue,
                "client disconnected: it does not read its socket and its outbound queue is full"
            );
        }
        kicked
    }

    /// The receiver of all incoming batches; `Some` only on the first call.
    pub fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        self.shared.incoming_rx.lock().take()
    }

    /// Subscribes to link events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.shared.events.subscribe()
    }

    /// Names of the peers with an established link, sorted.
    pub fn peers(&self) -> Vec<String> {
        let mut peers: Vec<String> = self.shared.links.read().keys().cloned().collect();
        peers.sort_unstable();
        peers
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Stops listening, closes every link and client connection and stops
    /// redialling. Waits (at most about two seconds) for connections to close.
    pub async fn shutdown(&self) {
        self.shared.wanted.lock().clear();
        self.shared.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let done = self.shared.tasks_done.notified();
            if self.shared.active_tasks.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                break;
            }
        }
        self.shared.links.write().clear();
        self.shared.clients.write().clear();
    }
}

fn validate(config: &TransportConfig) -> Result<(), TransportError> {
    if config.node_name.is_empty() || config.node_name.len() > 255 {
        return Err(TransportError::InvalidConfig(
            "node_name must be 1..=255 bytes",
        ));
    }
    if config.max_frame_size < 1024 {
        return Err(TransportError::InvalidConfig(
            "max_frame_size must be at least 1024",
        ));
    }
    if config.heartbeat_interval.is_zero() || config.heartbeat_misses == 0 {
        return Err(TransportError::InvalidConfig(
            "heartbeats need a non-zero interval and misses",
        ));
    }
    if !config.listen.ip().is_loopback() && config.secret.is_empty() {
        return Err(TransportError::PublicWithoutSecret(config.listen));
    }
    Ok(())
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => match shared.preauth_slot() {
                Some(slot) => {
                    let conn_shared = Arc::clone(&shared);
                    shared.spawn(async move { accept_one(conn_shared, stream, addr, slot).await });
                }
                None => refuse_busy(&shared, stream, addr),
            },
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Refuses a connection beyond [`TransportConfig::max_unauthenticated`]:
/// a plain listener answers `503` (written without waiting), a TLS one
/// closes; counted, logged at most once a second.
fn refuse_busy(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    Counters::bump(&shared.counters.busy_refusals);
    let limit = shared.config.max_unauthenticated;
    if let Some(suppressed) = shared.busy_log.permit() {
        tracing::warn!(%addr, limit, suppressed,
            "connection refused: too many unauthenticated connections");
    }
    if shared
        .config
        .tls
        .as_ref()
        .is_some_and(crate::TlsConfig::serves)
    {
        return;
    }
    let body = format!("too many unauthenticated connections (limit {limit}); try again later\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
         Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
    // Read what the peer already sent, so that closing sends FIN, not a
    // reset that could destroy the answer before it is read.
    let mut buf = [0u8; 1024];
    while matches!(stream.try_read(&mut buf), Ok(n) if n > 0) {}
    // Then drain a little longer (as many refused connections at once as
    // unauthenticated ones; beyond that they are closed at once).
    if shared.refusing.fetch_add(1, Ordering::AcqRel) >= limit {
        shared.refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let drain_shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        let drain = async {
            let mut buf = [0u8; 1024];
            while matches!(tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await, Ok(n) if n > 0)
            {
            }
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
        drain_shared.refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// TLS (if configured) and the WebSocket upgrade of one accepted socket,
/// then the node or client path.
async fn accept_one(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr, slot: PreAuthSlot) {
    let _ = stream.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let Some(conn) = accept_tls(&shared, stream, addr, deadline).await else {
        return;
    };
    let mut header = HeaderAuth::new(&shared.config.secret);
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
        conn,
        &mut header,
        Some(shared.preauth_ws_config()),
    );
    let ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            if header.refused() {
                Counters::bump(&shared.counters.auth_failures);
                if let Some(suppressed) = shared.handshake_log.permit() {
                    tracing::warn!(%addr, suppressed, "client refused: invalid bearer token");
                }
            } else if let Some(why) = header.bad_option() {
                if let Some(suppressed) = shared.handshake_log.permit() {
                    tracing::warn!(%addr, %why, suppressed, "client refused: bad upgrade URL");
                }
            } else {
                tracing::debug!(%addr, %err, "websocket upgrade failed");
            }
            return;
        }
        Err(_) => {
            Counters::bump(&shared.counters.handshake_timeouts);
            tracing::warn!(%addr, "websocket upgrade timed out");
            return;
        }
    };
    if header.accepted() {
        drop(slot);
        let ws = link::reopen(ws, Role::Server, shared.client_ws_config()).await;
        client::spawn_run(&shared, ws, addr, header.payloads());
        return;
    }
    let payloads = header.payloads();
    first_message(shared, ws, addr, slot, payloads).await;
}

/// The TLS handshake of an accepted socket when the listener serves TLS.
async fn accept_tls(
    shared: &Shared,
    stream: TcpStream,
    addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<Connection> {
    let Some(acceptor) = shared
        .config
        .tls
        .as_ref()
        .and_then(crate::TlsConfig::acceptor)
    else {
        return Some(Connection::plain(stream, true));
    };
    let why = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(Connection::tls(tokio_rustls::TlsStream::Server(tls), true)),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    Counters::bump(&shared.counters.tls_failures);
    if let Some(suppressed) = shared.refused_log.permit() {
        tracing::warn!(%addr, why, suppressed, "TLS handshake failed (plaintext or untrusted peer?)");
    }
    None
}

/// Without a bearer header, the first message tells a node (binary `Hello`)
/// from a client (text `{"auth":..}`).
async fn first_message(
    shared: Arc<Shared>,
    mut ws: link::Ws,
    addr: SocketAddr,
    slot: PreAuthSlot,
    payloads: ClientPayloads,
) {
    let timeout = shared.config.handshake_timeout;
    let first = tokio::select! {
        () = shared.shutdown.cancelled() => return,
        r = tokio::time::timeout(timeout, ws.next()) => r,
    };
    match first {
        Ok(Some(Ok(Message::Binary(frame)))) => link::accept(shared, ws, frame, addr, slot).await,
        Ok(Some(Ok(Message::Text(text)))) => {
            client::first_frame(shared, ws, text, addr, slot, payloads).await
        }
        Ok(Some(Ok(_))) => {
            let _ = ws.close(None).await;
        }
        Ok(Some(Err(err))) => preauth_read_failed(&shared, ws, addr, err).await,
        Ok(None) => {}
        Err(_) => {
            Counters::bump(&shared.counters.handshake_timeouts);
            if let Some(suppressed) = shared.handshake_log.permit() {
                tracing::warn!(%addr, suppressed, "handshake timed out: no first message");
            }
            let _ = ws.close(None).await;
        }
    }
}

/// A read error before authentication: an oversized frame is closed with
/// 1009 (counted, logged at most once a second); anything else just ends.
pub(crate) async fn preauth_read_failed(
    shared: &Shared,
    mut ws: link::Ws,
    addr: SocketAddr,
    err: tokio_tungstenite::tungstenite::Error,
) {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) = err else {
        tracing::debug!(%addr, %err, "connection failed before authentication");
        return;
    };
    Counters::bump(&shared.counters.oversize_closes);
    if let Some(suppressed) = shared.refused_log.permit() {
        tracing::warn!(%addr, size, max_size, suppressed,
            "frame above the pre-authentication limit; closing with 1009");
    }
    let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Size,
        reason: "frame too large before authentication".into(),
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, ws.close(Some(close))).await;
    link::linger(ws).await;
}

/// Sends one already-encoded frame and flushes (handshake and refusals).
pub(crate) async fn send_frame(ws: &mut link::Ws, frame: Bytes) -> bool {
    ws.send(Message::Binary(frame)).await.is_ok()
}
