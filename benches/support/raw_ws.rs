//! Raw WebSocket baselines: a plain tokio-tungstenite connection over
//! loopback (`127.0.0.1`, port 0, `TCP_NODELAY` on both ends as the
//! transport sets it, default `WebSocketConfig`), binary messages, no
//! envelope, no router. The benches print these next to the figures of the
//! same run, measured on the same runtime, so that a reader sees what the
//! socket alone costs on this machine at that moment.
//!
//! Every helper opens its own connection and closes it (close handshake,
//! then the echo task is awaited) before it returns.
#![allow(dead_code)] // each bench target uses only some of the baselines

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type RawWs = WebSocketStream<TcpStream>;

/// How long a baseline may take before the bench gives up (a hang becomes
/// a panic, not a stuck run).
const LIMIT: Duration = Duration::from_secs(120);

/// A client and a server end of one WebSocket connection over loopback.
async fn connected_pair() -> (RawWs, RawWs) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let accept = async {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        tokio_tungstenite::accept_async(stream)
            .await
            .expect("accept ws")
    };
    let connect = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
            .await
            .expect("client ws");
        ws
    };
    let (server, client) = tokio::join!(accept, connect);
    (client, server)
}

/// The next message, flushing what `ws` has buffered first if none is
/// ready yet (writes are batched while messages keep arriving); `None`
/// once the connection is closed or failed.
async fn next_flushing(ws: &mut RawWs) -> Option<Message> {
    let next = match ws.next().now_or_never() {
        Some(next) => next,
        None => {
            ws.flush().await.ok()?;
            ws.next().await
        }
    };
    next?.ok()
}

/// Echoes every binary message of `ws` until the peer closes.
fn spawn_echo(mut ws: RawWs) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(message) = next_flushing(&mut ws).await {
            if message.is_binary() && ws.feed(message).await.is_err() {
                return;
            }
        }
    })
}

/// Closes `ws` (close handshake; the peer's end drops the connection once
/// `ws` is gone) and waits for the peer's task to end.
async fn close<T>(mut ws: RawWs, peer: JoinHandle<T>) -> T {
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    tokio::time::timeout(LIMIT, peer)
        .await
        .expect("peer ended in time")
        .expect("peer task")
}

/// Runs `task` on one of the runtime's worker threads, as the benches run
/// their actors and senders (not on the thread blocked in `block_on`).
async fn on_worker<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(task).await.expect("baseline task")
}

/// `rounds` round trips of a `size`-byte binary message, one in flight;
/// the round-trip times, sorted.
pub(crate) async fn ping_pong(size: usize, rounds: usize) -> Vec<Duration> {
    on_worker(ping_pong_inner(size, rounds)).await
}

async fn ping_pong_inner(size: usize, rounds: usize) -> Vec<Duration> {
    let (mut client, server) = connected_pair().await;
    let echo = spawn_echo(server);
    let payload = Bytes::from(vec![0x5a; size]);
    let mut samples = Vec::with_capacity(rounds);
    let run = async {
        for _ in 0..rounds {
            let start = Instant::now();
            client
                .send(Message::Binary(payload.clone()))
                .await
                .expect("send");
            let reply = client.next().await.expect("reply").expect("read");
            samples.push(start.elapsed());
            std::hint::black_box(reply);
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("ping-pong in time");
    close(client, echo).await;
    samples.sort_unstable();
    samples
}

/// `total` round trips of `size`-byte binary messages with at most
/// `window` unanswered (a reply lets the next request go, as a pinger does;
/// one task writes, flushing when the window is full, another reads); the
/// time from the first send to the last reply.
pub(crate) async fn echo(size: usize, window: usize, total: usize) -> Duration {
    on_worker(echo_inner(size, window, total)).await
}

async fn echo_inner(size: usize, window: usize, total: usize) -> Duration {
    let (client, server) = connected_pair().await;
    let echo = spawn_echo(server);
    let (mut sink, mut replies) = client.split();
    let payload = Bytes::from(vec![0x5a; size]);
    let room = Arc::new(Semaphore::new(window));
    let sender_room = Arc::clone(&room);
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..total {
            if sender_room.available_permits() == 0 {
                sink.flush().await.expect("flush");
            }
            sender_room.acquire().await.expect("room").forget();
            let message = Message::Binary(payload.clone());
            sink.feed(message).await.expect("send");
        }
        sink.flush().await.expect("flush");
        sink
    });
    let receive = async {
        for _ in 0..total {
            let reply = replies.next().await.expect("reply").expect("read");
            std::hint::black_box(reply);
            room.add_permits(1);
        }
    };
    tokio::time::timeout(LIMIT, receive)
        .await
        .expect("echo in time");
    let elapsed = start.elapsed();
    let sink = sender.await.expect("sender");
    let client = sink.reunite(replies).expect("halves of one connection");
    close(client, echo).await;
    elapsed
}

/// `count` binary messages of `size` bytes one way (written out as the
/// write buffer fills, flushed at the end); messages per second, from the
/// first send to the last message read.
pub(crate) async fn one_way(size: usize, count: usize) -> f64 {
    on_worker(one_way_inner(size, count)).await
}

async fn one_way_inner(size: usize, count: usize) -> f64 {
    let (mut client, mut server) = connected_pair().await;
    let payload = Bytes::from(vec![0x5a; size]);
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        let mut last = None;
        while let Some(Ok(message)) = server.next().await {
            if message.is_binary() {
                got += 1;
                if got == count {
                    last = Some(Instant::now());
                }
            }
        }
        last
    });
    let start = Instant::now();
    let send = async {
        for _ in 0..count {
            let message = Message::Binary(payload.clone());
            client.feed(message).await.expect("send");
        }
        client.flush().await.expect("flush");
    };
    tokio::time::timeout(LIMIT, send)
        .await
        .expect("one-way in time");
    let end = close(client, receiver)
        .await
        .expect("every message arrived");
    count as f64 / (end - start).as_secs_f64()
}
