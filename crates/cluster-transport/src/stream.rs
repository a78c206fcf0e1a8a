//! The socket under every WebSocket: plain TCP or TLS, with the pre-auth
//! [`Gate`] in front of the reads until the peer has authenticated.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use crate::gate::Gate;
use crate::split::{Direction, TaskWakers};

/// Bytes read from the socket per read while gated.
const GATED_READ: usize = 4096;

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken by [`Connection::take_authenticated`] (the WebSocket layer is being replaced).
    Gone,
}

/// A connection to a node or a client: TCP, or TLS over TCP.
///
/// Returned by [`open_stream`](crate::open_stream) for WebSocket clients
/// that want the transport's `ws://` / `wss://` dialling; it is an
/// [`AsyncRead`] + [`AsyncWrite`] byte stream.
#[derive(Debug)]
pub struct Connection {
    io: Io,
    /// Present until the peer authenticated.
    gate: Option<Gate>,
    /// Bytes read from the socket but not handed over yet (past a boundary
    /// while gated).
    pending: BytesMut,
    /// Which wakers the socket registers while split (see [`crate::split`]).
    pub(crate) wakers: TaskWakers,
}

impl Connection {
    pub(crate) fn plain(tcp: TcpStream, gated: bool) -> Self {
        Self::new(Io::Plain(tcp), gated)
    }

    pub(crate) fn tls(tls: TlsStream<TcpStream>, gated: bool) -> Self {
        Self::new(Io::Tls(Box::new(tls)), gated)
    }

    fn new(io: Io, gated: bool) -> Self {
        Connection {
            io,
            gate: gated.then(Gate::default),
            pending: BytesMut::new(),
            wakers: TaskWakers::default(),
        }
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// Moves the socket out (leaving a dead connection behind) and lifts
    /// the gate: the peer has authenticated.
    pub(crate) fn take_authenticated(&mut self) -> Connection {
        let mut conn = std::mem::replace(self, Connection::new(Io::Gone, false));
        conn.gate = None;
        conn
    }

    /// Polls the socket in `direction` with the waker [`TaskWakers`] picks,
    /// or `cx`'s outside a split.
    fn poll_io<R>(
        &mut self,
        direction: Direction,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut dyn AsyncReadWrite>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let io: Pin<&mut dyn AsyncReadWrite> = match &mut self.io {
            Io::Plain(tcp) => Pin::new(tcp),
            Io::Tls(tls) => Pin::new(tls.as_mut()),
            Io::Gone => {
                let moved = io::Error::new(io::ErrorKind::NotConnected, "connection moved");
                return Poll::Ready(Err(moved));
            }
        };
        match self.wakers.waker(direction) {
            Some(waker) => poll(io, &mut Context::from_waker(&waker)),
            None => poll(io, cx),
        }
    }

    /// Serves `buf` from `pending`, through the gate if gated.
    fn serve_pending(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let avail = self.pending.len().min(buf.remaining());
        let n = match &mut self.gate {
            Some(gate) => gate
                .admit(&self.pending[..avail])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            None => avail,
        };
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        if self.pending.is_empty() {
            // Give the memory back: an idle connection keeps no buffer here.
            self.pending = BytesMut::new();
        }
        Ok(())
    }
}

trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if !this.pending.is_empty() {
            return Poll::Ready(this.serve_pending(buf));
        }
        if this.gate.is_none() {
            return this.poll_io(Direction::Read, cx, |io, cx| io.poll_read(cx, buf));
        }
        let mut chunk = [0u8; GATED_READ];
        let mut read = ReadBuf::new(&mut chunk);
        ready!(this.poll_io(Direction::Read, cx, |io, cx| io.poll_read(cx, &mut read)))?;
        if read.filled().is_empty() {
            return Poll::Ready(Ok(()));
        }
        this.pending.extend_from_slice(read.filled());
        Poll::Ready(this.serve_pending(buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io(Direction::Write, cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_io(Direction::Write, cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_io(Direction::Write, cx, |io, cx| io.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(Direction::Write, cx, |io, cx| {
            io.poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(tcp) => tcp.is_write_vectored(),
            Io::Tls(tls) => tls.is_write_vectored(),
            Io::Gone => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn gated_reads_stop_at_boundaries_and_keep_the_rest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Connection::plain(server, true);
        // A head, one 3-byte unmasked frame, then ungated bytes, all in one write.
        let mut sent = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        sent.extend_from_slice(&[0x82, 3, b'a', b'b', b'c']);
        sent.extend_from_slice(b"rest");
        peer.write_all(&sent).await.unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 18 {
            let n = conn.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        got.clear();
        while got.len() < 5 {
            let n = conn.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            assert!(got.len() <= 5, "read past the frame end");
        }
        let mut open = conn.take_authenticated();
        let mut rest = [0u8; 4];
        open.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"rest");
        assert!(conn.read(&mut buf).await.is_err(), "the old one is dead");
    }
}
