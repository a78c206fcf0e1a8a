//! Transport benchmark: one link on loopback, one way.
//!
//! * messages/s with 100-byte payloads (2,000,000 envelopes);
//! * MB/s with 64 KiB payloads (16,384 envelopes = 1 GiB).
//!
//! Run: `cargo bench -p jobmesh --bench transport`. Each figure is the median
//! of three runs on a fresh pair of endpoints.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_transport::{Envelope, Incoming, Transport, TransportConfig, TrySendError};

use crate::support::median;

const SMALL: usize = 100;
const SMALL_COUNT: u64 = 2_000_000;
const LARGE: usize = 64 * 1024;
const LARGE_COUNT: u64 = 16_384;
const RUNS: usize = 3;

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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            let t = run_once(SMALL, SMALL_COUNT).await;
            rates.push(SMALL_COUNT as f64 / t.as_secs_f64());
        }
        println!(
            "transport one-way, {SMALL}-byte payloads: {:.0} messages/s (median of {RUNS}; runs {:?})",
            median(rates.clone()),
            rates.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
        let mut mbs = Vec::new();
        for _ in 0..RUNS {
            let t = run_once(LARGE, LARGE_COUNT).await;
            mbs.push((LARGE as u64 * LARGE_COUNT) as f64 / 1e6 / t.as_secs_f64());
        }
        println!(
            "transport one-way, 64 KiB payloads: {:.0} MB/s (median of {RUNS}; runs {:?})",
            median(mbs.clone()),
            mbs.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    });
}
