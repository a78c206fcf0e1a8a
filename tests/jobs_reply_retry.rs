//! A worker keeps a finished job's result while its coordinator's node is
//! Down, and delivers it once that node is back (restarted here: a durable
//! coordinator resumes its jobs and wants their results), instead of
//! dropping it and leaving the job to its timeout; and drops what it kept
//! for a coordinator that left.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cluster_router::{Envelope, PayloadFormat, Router};
use support::jobs::*;
use support::router::collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_for_a_down_coordinator_is_kept_and_delivered_when_it_returns() {
    let worker = start_node(None, "rr-w", &[], registry(""), Duration::from_millis(100)).await;
    let coord_router = within(
        STEP,
        "coordinator router",
        Router::start(fast("rr-c", &[]).seeds([worker.router.url()])),
    )
    .await
    .expect("router starts");
    let (from, _inbox) = collector(&coord_router, "coordinator");
    within(STEP, "link", async {
        while worker.router.member(coord_router.node_id()).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // A job that outlives its coordinator's node.
    let job = r#"{"id":"rr-1","kind":"sleep","data":"2500","timeout_ms":60000}"#;
    let to = worker.pool.addr().clone();
    let env = Envelope::new(to, from, PayloadFormat::Json, Bytes::from(job));
    within(STEP, "dispatch", coord_router.send(env))
        .await
        .expect("dispatched");
    within(STEP, "job runs", async {
        while worker.pool.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(STEP, "coordinator stops", coord_router.shutdown()).await;
    within(STEP, "rr-c Down", wait_down(&worker.router, "rr-c")).await;

    // The result is ready while rr-c is Down: kept, not dropped.
    assert!(
        wait_until(STEP, || worker.pool.undelivered() == 1).await,
        "the result was not kept"
    );
    assert_eq!(worker.pool.in_flight(), 0);

    // rr-c comes back on the same address (a new incarnation) without
    // seeds, so that its coordinator is registered before the worker finds
    // it: the worker keeps dialling a Down member's address.
    let old: SocketAddr = coord_router
        .url()
        .trim_start_matches("ws://")
        .parse()
        .expect("socket address");
    let mut cfg = fast("rr-c", &[]);
    cfg.listen = old;
    let reborn = within(STEP, "coordinator restarts", Router::start(cfg))
        .await
        .expect("router restarts on the same port");
    let (_, mut inbox) = collector(&reborn, "coordinator");
    let result = within(STEP, "kept result arrives", inbox.recv())
        .await
        .expect("collector open");
    let text = result.payload_str().expect("JSON reply");
    assert!(text.contains("rr-1"), "{text}");
    assert_eq!(result.from.to_string(), "worker@rr-w");
    assert!(wait_until(STEP, || worker.pool.undelivered() == 0).await);
    within(STEP, "shutdown", reborn.shutdown()).await;
    stop_all(vec![worker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_for_a_coordinator_that_left_are_dropped() {
    let worker = start_node(None, "rl-w", &[], registry(""), Duration::from_millis(100)).await;
    let coord_router = within(
        STEP,
        "coordinator router",
        Router::start(fast("rl-c", &[]).seeds([worker.router.url()])),
    )
    .await
    .expect("router starts");
    let (from, _inbox) = collector(&coord_router, "coordinator");
    within(STEP, "link", async {
        while worker.router.member(coord_router.node_id()).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let job = r#"{"id":"rl-1","kind":"sleep","data":"1500","timeout_ms":60000}"#;
    let env = Envelope::new(
        worker.pool.addr().clone(),
        from,
        PayloadFormat::Json,
        Bytes::from(job),
    );
    within(STEP, "dispatch", coord_router.send(env))
        .await
        .expect("dispatched");
    within(STEP, "job runs", async {
        while worker.pool.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // A graceful leave: the coordinator will not come back for it.
    within(STEP, "coordinator leaves", coord_router.leave()).await;
    assert!(
        wait_until(STEP, || worker.pool.in_flight() == 0).await,
        "job did not finish"
    );
    // Finished after the leave: never kept, or dropped at the next pass.
    assert!(wait_until(STEP, || worker.pool.undelivered() == 0).await);
    assert_eq!(worker.pool.finished(), 1);
    stop_all(vec![worker]).await;
}
