//! Transport benchmark: one link on loopback, one way.
//!
//! * messages/s with 100-byte payloads (2,000,000 envelopes);
//! * MB/s with 64 KiB payloads (16,384 envelopes = 1 GiB).
//!
//! Raw baseline, measured in-process right after each transport run on the
//! same runtime: a plain tokio `TcpStream` over loopback (`127.0.0.1`, port
//! 0, `TCP_NODELAY` as the transport sets it) carrying the same count of
//! the same payloads one way, each as a 4-byte length prefix and the
//! payload (no header, no WebSocket framing), written through a 256 KiB
//! `BufWriter` by one task and read through a 256 KiB `BufReader` by
//! another (256 KiB: a node link's WebSocket buffers).
//!
//! Run: `cargo bench -p jobmesh --bench transport`. Each figure is the median
//! of three runs on a fresh pair of endpoints (a fresh connection for the
//! baseline); each line prints the transport's figure and then the raw
//! baseline's.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_transport::{Envelope, Incoming, Transport, TransportConfig, TrySendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::support::median;

const SMALL: usize = 100;
const SMALL_COUNT: u64 = 2_000_000;
const LARGE: usize = 64 * 1024;
const LARGE_COUNT: u64 = 16_384;
const RUNS: usize = 3;
/// The raw baseline's write and read buffers: 256 KiB, as a node link's
/// WebSocket read and write buffers (a 64 KiB block and its prefix fit).
const RAW_BUFFER: usize = 256 * 1024;

/// A header of the size and cost of the router's (one allocation per
/// envelope): an id and two addresses.
fn header(id: u64) -> Bytes {
    let mut h = Vec::with_capacity(40);
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(b"sink@bench-b");
    h.extend_from_slice(b"source@bench-a");
    Bytes::from(h)
}

/// Sends `count` envelopes of `size` bytes from a to b; returns the elapsed
/// time from the first send to the last envelope received.
async fn run_once(size: usize, count: u64) -> Duration {
    let a = Transport::bind(TransportConfig::new("bench-a", "k"))
        .await
        .expect("bind a");
    let b = Transport::bind(TransportConfig::new("bench-b", "k"))
        .await
        .expect("bind b");
    let mut rx = b.take_incoming().expect("incoming");
    a.connect(&b.url()).await.expect("connect");
    let payload = Bytes::from(vec![0x5a; size]);
    let receiver = tokio::spawn(async move {
        let mut got = 0u64;
        while got < count {
            let Some(batch) = rx.recv().await else { break };
            if let Incoming::Node { envelopes, .. } = batch {
                got += envelopes.len() as u64;
            }
        }
        got
    });
    let start = Instant::now();
    let sender = a.clone();
    let send = tokio::spawn(async move {
        for i in 0..count {
            let env = Envelope::new(header(i), payload.clone());
            match sender.try_send("bench-b", env) {
                Ok(()) => {}
                Err(TrySendError::Full(env)) => sender.send("bench-b", env).await.expect("send"),
                Err(err) => panic!("send failed: {err}"),
            }
        }
    });
    send.await.expect("sender");
    let got = receiver.await.expect("receiver");
    let elapsed = start.elapsed();
    assert_eq!(got, count, "every envelope arrived");
    a.shutdown().await;
    b.shutdown().await;
    elapsed
}

/// The raw baseline: `count` length-prefixed messages of `size` bytes one
/// way over a plain loopback TCP connection; returns the elapsed time from
/// the first write to the last message read.
async fn raw_tcp_once(size: usize, count: u64) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client.expect("connect"), accepted.expect("accept"));
    drop(listener);
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    let receiver = tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(RAW_BUFFER, server);
        let mut buf = vec![0u8; size];
        let mut got = 0u64;
        while got < count {
            let len = reader.read_u32_le().await.expect("length");
            // Checked before it is used: the buffer is fixed at `size`.
            assert_eq!(len as usize, size, "length prefix");
            reader.read_exact(&mut buf).await.expect("payload");
            std::hint::black_box(&buf);
            got += 1;
        }
        got
    });
    let payload = vec![0x5a; size];
    let start = Instant::now();
    let send = tokio::spawn(async move {
        let mut writer = BufWriter::with_capacity(RAW_BUFFER, client);
        for _ in 0..count {
            writer.write_u32_le(size as u32).await.expect("write");
            writer.write_all(&payload).await.expect("write");
        }
        writer.flush().await.expect("flush");
        writer
    });
    let mut writer = send.await.expect("sender");
    let got = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .expect("in time")
        .expect("receiver");
    let elapsed = start.elapsed();
    assert_eq!(got, count, "every message arrived");
    writer.shutdown().await.expect("shutdown");
    elapsed
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut rates, mut raw_rates) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = run_once(SMALL, SMALL_COUNT).await;
            rates.push(SMALL_COUNT as f64 / t.as_secs_f64());
            let t = raw_tcp_once(SMALL, SMALL_COUNT).await;
            raw_rates.push(SMALL_COUNT as f64 / t.as_secs_f64());
        }
        println!(
            "transport one-way, {SMALL}-byte payloads: {:.0} messages/s (median of {RUNS}; runs {:?}) \
             | raw TCP on loopback, same run, 4-byte length prefix + {SMALL} bytes: {:.0} messages/s (runs {:?})",
            median(rates.clone()),
            rates.iter().map(|r| *r as u64).collect::<Vec<_>>(),
            median(raw_rates.clone()),
            raw_rates.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
        let (mut mbs, mut raw_mbs) = (Vec::new(), Vec::new());
        let bytes = (LARGE as u64 * LARGE_COUNT) as f64;
        for _ in 0..RUNS {
            let t = run_once(LARGE, LARGE_COUNT).await;
            mbs.push(bytes / 1e6 / t.as_secs_f64());
            let t = raw_tcp_once(LARGE, LARGE_COUNT).await;
            raw_mbs.push(bytes / 1e6 / t.as_secs_f64());
        }
        println!(
            "transport one-way, 64 KiB payloads: {:.0} MB/s (median of {RUNS}; runs {:?}) \
             | raw TCP on loopback, same run, 4-byte length prefix + 64 KiB blocks: {:.0} MB/s (runs {:?})",
            median(mbs.clone()),
            mbs.iter().map(|r| *r as u64).collect::<Vec<_>>(),
            median(raw_mbs.clone()),
            raw_mbs.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    });
}
