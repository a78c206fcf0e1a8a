//! A WebSocket split between a reader task and a writer task, each woken
//! only by its own direction of the socket.
//!
//! tokio-tungstenite polls its socket with a waker proxy that wakes both the
//! task reading the stream and the task writing the sink (its `compat.rs`,
//! `WakerProxy`). Split between two tasks, every frame that arrives then
//! wakes the writer too, which finds nothing to do; with two tasks ready,
//! tokio also wakes its idle second worker thread, which finds nothing,
//! parks in `epoll_wait`, and the next frame must wake it from there. That
//! cost the in-process round trip ~2.6 context switches
//! (`docs/performance.md`, "Tried: one task per link").
//!
//! [`split`] routes around the proxy: before every poll, [`SplitWs`] tells
//! its [`Connection`] which half polls and with what waker, and the
//! connection registers that waker in place of the proxy. tokio keeps a
//! socket's read and write wakers apart, so read readiness wakes the reader
//! alone and write readiness the writer alone.
//!
//! Why that is enough:
//!
//! * Both halves poll the whole `SplitWs` under one lock (futures'
//!   `BiLock`), so the half and waker set at the start of a poll are the
//!   ones the socket sees during it. `start_send` has no context; the sink
//!   half calls it under the same lock right after its `poll_ready`, so the
//!   writer's are set.
//! * Only the reader reads (tokio-rustls reads nothing while writing). A
//!   TLS read writes only a last alert on a fatal error, which ends the link.
//! * A read may write: tungstenite first flushes a queued pong or close
//!   reply. If that write finds the socket full, the reader's registration
//!   for write readiness replaces the writer's (tokio keeps one waker per
//!   direction), so it wakes both tasks ([`TaskWakers::waker`]); a writer
//!   left waiting for room would otherwise never hear of it. The reverse
//!   needs nothing: a writer's flush sends the queued reply too, and the
//!   reader waits for read readiness either way.
//! * Outside the split (the handshake before, [`linger`](crate::link::linger)
//!   after [`reunite`]) the connection wakes the waker it is polled with.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream, StreamExt};
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::Message;

use crate::link::Ws;
#[cfg(doc)]
use crate::stream::Connection;

/// A WebSocket whose socket wakes the task polling it, not both halves.
#[derive(Debug)]
pub struct SplitWs {
    ws: Ws,
}

/// The writing half of a [`split`] WebSocket.
pub type WsSink = SplitSink<SplitWs, Message>;
/// The reading half of a [`split`] WebSocket.
pub type WsStream = SplitStream<SplitWs>;

/// Splits `ws` into halves for two tasks, each woken only by its own
/// direction of the socket (see the module's guide); use it in place of
/// `StreamExt::split` for a WebSocket over a [`Connection`].
pub fn split(ws: Ws) -> (WsSink, WsStream) {
    SplitWs { ws }.split()
}

/// Puts the halves of one [`split`] back together; `None` when they come
/// from two different WebSockets.
pub(crate) fn reunite(stream: WsStream, sink: WsSink) -> Option<Ws> {
    let mut ws = stream.reunite(sink).ok()?.ws;
    ws.get_mut().wakers = TaskWakers::default();
    Some(ws)
}

/// Which half of a split WebSocket polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Reader,
    Writer,
}

/// Which way a poll of the socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// The wakers of a split WebSocket's two tasks, kept by its [`Connection`].
#[derive(Debug, Default)]
pub(crate) struct TaskWakers {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The half polling now; `None` outside a split.
    polling: Option<Half>,
}

impl TaskWakers {
    /// Records that `half` polls now, with `waker`.
    fn enter(&mut self, half: Half, waker: &Waker) {
        let slot = match half {
            Half::Reader => &mut self.reader,
            Half::Writer => &mut self.writer,
        };
        match slot {
            // No new clone while the same task polls again.
            Some(current) => current.clone_from(waker),
            None => *slot = Some(waker.clone()),
        }
        self.polling = Some(half);
    }

    /// The waker a poll of the socket in `direction` registers; `None`
    /// outside a split (the poller's own then).
    pub(crate) fn waker(&self, direction: Direction) -> Option<Cow<'_, Waker>> {
        match (self.polling?, direction) {
            (Half::Writer, _) => self.writer.as_ref().map(Cow::Borrowed),
            (Half::Reader, Direction::Read) => self.reader.as_ref().map(Cow::Borrowed),
            // A read that writes (see the module's guide): rare, so the
            // allocation does not matter.
            (Half::Reader, Direction::Write) => {
                let reader = self.reader.clone()?;
                Some(Cow::Owned(match self.writer.clone() {
                    Some(writer) => Waker::from(Arc::new(BothTasks { reader, writer })),
                    None => reader,
                }))
            }
        }
    }
}

/// Wakes the reader and the writer.
struct BothTasks {
    reader: Waker,
    writer: Waker,
}

impl Wake for BothTasks {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reader.wake_by_ref();
        self.writer.wake_by_ref();
    }
}

impl SplitWs {
    /// The WebSocket, its socket set to wake `half`'s task in `cx`.
    fn routed(&mut self, half: Half, cx: &Context<'_>) -> Pin<&mut Ws> {
        self.ws.get_mut().wakers.enter(half, cx.waker());
        Pin::new(&mut self.ws)
    }
}

impl Stream for SplitWs {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().routed(Half::Reader, cx).poll_next(cx)
    }
}

impl Sink<Message> for SplitWs {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().routed(Half::Writer, cx).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        // Under the lock taken for the `poll_ready` before: the writer's
        // waker is set.
        Pin::new(&mut self.get_mut().ws).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().routed(Half::Writer, cx).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().routed(Half::Writer, cx).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use futures_util::SinkExt;
    use tokio::io::{AsyncRead, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;

    use super::*;
    use crate::stream::Connection;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A waker that counts its wake-ups and signals each one.
    #[derive(Default)]
    struct Counting {
        wakes: AtomicUsize,
        woken: Notify,
    }

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.woken.notify_one();
        }
    }

    /// Our side split, and the peer's WebSocket, over loopback TCP.
    async fn pair() -> (WsSink, WsStream, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let ours = Connection::plain(accepted.unwrap().0, false);
        let ours = WebSocketStream::from_raw_socket(ours, Role::Server, None).await;
        let peer = WebSocketStream::from_raw_socket(dialled.unwrap(), Role::Client, None).await;
        let (sink, stream) = split(ours);
        (sink, stream, peer)
    }

    #[tokio::test]
    async fn an_arriving_frame_wakes_the_reader_and_not_the_writer() {
        let (mut sink, mut stream, mut peer) = pair().await;
        let writer = Arc::new(Counting::default());
        let reader = Arc::new(Counting::default());
        let writer_waker = Waker::from(Arc::clone(&writer));
        let reader_waker = Waker::from(Arc::clone(&reader));

        // The writer sends (its waker is now the sink's), then the reader
        // waits for a frame.
        let mut wcx = Context::from_waker(&writer_waker);
        assert!(Pin::new(&mut sink).poll_ready(&mut wcx).is_ready());
        Pin::new(&mut sink)
            .start_send(Message::binary(&b"out"[..]))
            .unwrap();
        assert!(matches!(
            Pin::new(&mut sink).poll_flush(&mut wcx),
            Poll::Ready(Ok(()))
        ));
        let got = timeout(LIMIT, peer.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::binary(&b"out"[..]));
        let mut rcx = Context::from_waker(&reader_waker);
        assert!(Pin::new(&mut stream).poll_next(&mut rcx).is_pending());

        timeout(LIMIT, peer.send(Message::binary(&b"in"[..])))
            .await
            .unwrap()
            .unwrap();
        timeout(LIMIT, reader.woken.notified()).await.unwrap();
        assert_eq!(
            writer.wakes.load(Ordering::SeqCst),
            0,
            "the writer was woken"
        );
        let got = Pin::new(&mut stream).poll_next(&mut rcx);
        assert!(matches!(got, Poll::Ready(Some(Ok(m))) if m == Message::binary(&b"in"[..])));
    }

    #[tokio::test]
    async fn a_pong_stuck_behind_a_full_socket_does_not_strand_the_writer() {
        let (mut sink, mut stream, mut peer) = pair().await;
        let writer = Arc::new(Counting::default());
        let writer_waker = Waker::from(Arc::clone(&writer));
        let mut wcx = Context::from_waker(&writer_waker);
        // The peer reads nothing: write until the socket is full.
        let big = Message::binary(vec![7u8; 64 * 1024]);
        let mut full = false;
        for _ in 0..4096 {
            if Pin::new(&mut sink).poll_ready(&mut wcx).is_pending() {
                full = true;
                break;
            }
            Pin::new(&mut sink).start_send(big.clone()).unwrap();
            if Pin::new(&mut sink).poll_flush(&mut wcx).is_pending() {
                full = true;
                break;
            }
        }
        assert!(full, "256 MiB did not fill a loopback socket");
        // A ping arrives; the reader's pong cannot be written either, so
        // the reader registers for write readiness after the writer.
        timeout(LIMIT, peer.send(Message::Ping(b"hi"[..].into())))
            .await
            .unwrap()
            .unwrap();
        let reader = Arc::new(Counting::default());
        let reader_waker = Waker::from(Arc::clone(&reader));
        let mut rcx = Context::from_waker(&reader_waker);
        let ping = loop {
            match Pin::new(&mut stream).poll_next(&mut rcx) {
                Poll::Ready(got) => break got,
                Poll::Pending => timeout(LIMIT, reader.woken.notified()).await.unwrap(),
            }
        };
        assert!(matches!(ping, Some(Ok(Message::Ping(_)))), "{ping:?}");
        assert!(Pin::new(&mut stream).poll_next(&mut rcx).is_pending());
        // The peer reads again: the writer must hear that there is room.
        let draining = tokio::spawn(async move { while let Some(Ok(_)) = peer.next().await {} });
        timeout(LIMIT, writer.woken.notified()).await.unwrap();
        draining.abort();
    }

    #[tokio::test]
    async fn the_reader_answers_a_ping_while_the_writer_is_idle() {
        let (_sink, mut stream, mut peer) = pair().await;
        // tungstenite queues the pong and sends it on the next read.
        let reading = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        timeout(LIMIT, peer.send(Message::Ping(b"hi"[..].into())))
            .await
            .unwrap()
            .unwrap();
        let got = timeout(LIMIT, peer.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::Pong(b"hi"[..].into()));
        reading.abort();
    }

    #[tokio::test]
    async fn a_close_is_answered_and_the_reunited_socket_wakes_its_new_poller() {
        let (sink, stream, mut peer) = pair().await;
        // The reader runs in a task of its own, which ends: a waker of its
        // left in the connection would never wake the reads below.
        let reading = tokio::spawn(async move {
            let mut stream = stream;
            let mut closed = false;
            // The close reply goes out on the read after the close, which
            // then ends the stream (we are the server).
            while let Some(Ok(msg)) = stream.next().await {
                closed |= matches!(msg, Message::Close(_));
            }
            (stream, closed)
        });
        timeout(LIMIT, peer.close(None)).await.unwrap().unwrap();
        let (stream, closed) = timeout(LIMIT, reading).await.unwrap().unwrap();
        assert!(closed, "the peer's close arrived");
        let reply = timeout(LIMIT, peer.next()).await.unwrap();
        assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
        let mut ws = reunite(stream, sink).expect("halves of one WebSocket");
        let poller = Arc::new(Counting::default());
        let waker = Waker::from(Arc::clone(&poller));
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 16];
        let mut buf = ReadBuf::new(&mut buf);
        let conn = Pin::new(ws.get_mut());
        assert!(conn.poll_read(&mut cx, &mut buf).is_pending());
        drop(peer);
        timeout(LIMIT, poller.woken.notified()).await.unwrap();
        let end = Pin::new(ws.get_mut()).poll_read(&mut cx, &mut buf);
        assert!(matches!(end, Poll::Ready(Ok(()))) && buf.filled().is_empty());
    }
}
