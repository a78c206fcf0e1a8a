//! When a link breaks with dispatches and results in it, the coordinator
//! places those attempts again at once: the jobs finish well before their
//! timeout, each result reaches its caller once.
//!
//! The link between the coordinator's node and one worker node runs through
//! a TCP proxy in this test, which first swallows everything the worker
//! sends (its results are written into the link and lost, as behind a
//! one-way cut) and then breaks the connection. The next link is direct.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster_router::Router;
use futures_util::future::join_all;
use job_queue::{CoordinatorOptions, Job, JobId, StrategyKind};
use support::jobs::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Jobs submitted.
const JOBS: usize = 2_000;
/// Results the worker behind the proxy must have produced (and lost)
/// before the link is broken.
const LOST_AT_LEAST: u64 = 20;

/// A TCP proxy of one upstream address: forwards every connection both
/// ways until told to swallow the client's bytes or to break the
/// connections it carries.
struct Proxy {
    url: String,
    swallow: Arc<AtomicBool>,
    swallowed: Arc<AtomicU64>,
    kill: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("address"));
        let swallow = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicU64::new(0));
        let kill = Arc::new(Notify::new());
        let (s, n, k) = (swallow.clone(), swallowed.clone(), kill.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(carry(client, server, s.clone(), n.clone(), k.clone()));
            }
        });
        Proxy {
            url,
            swallow,
            swallowed,
            kill,
        }
    }
}

/// Carries one connection until either side closes or the proxy kills it;
/// while `swallow` is set, the client's bytes are read and dropped.
async fn carry(
    client: TcpStream,
    server: TcpStream,
    swallow: Arc<AtomicBool>,
    swallowed: Arc<AtomicU64>,
    kill: Arc<Notify>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if swallow.load(Ordering::Acquire) {
                swallowed.fetch_add(n as u64, Ordering::Relaxed);
            } else if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut server_rx, &mut client_tx);
    // Dropping the halves closes both sockets.
    tokio::select! {
        () = up => {}
        _ = down => {}
        () = kill.notified() => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_in_a_broken_link_are_placed_again_well_before_their_timeout() {
    // The coordinator's node runs no worker pool: every job crosses a link.
    let coord_router = within(STEP, "router start", Router::start(fast("ll-c", &[])))
        .await
        .expect("router starts");
    let upstream = coord_router.url().trim_start_matches("ws://").to_owned();
    let proxy = Proxy::start(upstream).await;
    let load = Duration::from_millis(100);
    // ll-w1 reaches ll-c only through the proxy; ll-w2 directly.
    let w1 = start_node(Some(proxy.url.clone()), "ll-w1", &[], registry(""), load).await;
    let w2 = start_node(Some(coord_router.url()), "ll-w2", &[], registry(""), load).await;
    within(
        STEP,
        "both workers seen",
        converged(&coord_router, &["ll-w1", "ll-w2"]),
    )
    .await;
    // Fixed windows: many attempts must be in the link when it breaks.
    let mut options = CoordinatorOptions::default();
    options.core.queue_target = None;
    let coord = coordinator_with(&coord_router, StrategyKind::RoundRobin, options).await;

    // From now on ll-w1's results (and heartbeats) vanish in the link.
    proxy.swallow.store(true, Ordering::Release);
    let jobs: Vec<Job> = (0..JOBS)
        .map(|i| {
            Job::new("sleep", "5")
                .with_id(JobId::new(&format!("ll-{i}")).expect("a valid id"))
                .with_timeout(Duration::from_secs(60))
        })
        .collect();
    let pending = within(STEP, "submit", coord.submit_many(jobs))
        .await
        .expect("accepted");
    let lost_results = wait_until(STEP, || w1.pool.finished() >= LOST_AT_LEAST).await;
    assert!(lost_results, "ll-w1 ran no job behind the proxy");
    assert!(
        proxy.swallowed.load(Ordering::Relaxed) > 0,
        "ll-w1's link did not run through the proxy"
    );
    // The link breaks with those results (and dispatches) in it.
    proxy.swallow.store(false, Ordering::Release);
    proxy.kill.notify_waiters();

    // Well before the 60 s timeout: every job has its one result.
    let results = within(
        Duration::from_secs(20),
        "every job's result after the link broke",
        join_all(pending.into_iter().map(|p| p.result())),
    )
    .await;
    let mut again = 0;
    for result in results {
        let result = result.expect("a result");
        assert!(result.error.is_none(), "{result:?}");
        if result.attempt > 1 {
            again += 1;
        }
    }
    let stats = within(STEP, "stats", coord.stats()).await.expect("stats");
    assert_eq!(stats.succeeded, JOBS as u64);
    assert!(
        again as u64 >= LOST_AT_LEAST && stats.retries >= LOST_AT_LEAST,
        "{again} results from a later attempt, {} retries",
        stats.retries
    );
    assert!(stats.dead_letters == 0 && stats.failed == 0, "{stats:?}");
    finish(coord, vec![w1, w2]).await;
    within(STEP, "router shutdown", coord_router.shutdown()).await;
}
