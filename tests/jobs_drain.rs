//! Draining: a coordinator that drains refuses new submissions (library
//! calls and envelopes alike, with "coordinator on node X is draining")
//! while it finishes the jobs it holds; a worker pool that drains stops
//! advertising its kinds, finishes its running jobs, and the jobs sent to
//! it meanwhile are placed elsewhere without losing an attempt.

mod support;

use cluster_router::{EnvelopeKind, PayloadFormat};
use job_queue::{Job, JobError, StrategyKind, SubmitError};
use support::jobs::*;
use support::until_members;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_coordinator_finishes_its_jobs_and_refuses_new_ones() {
    let nodes = cluster(&[("dr-a", &[]), ("dr-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let job = Job::new("sleep", "100");
        held.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    let draining = tokio::spawn({
        let coord = coord.clone();
        async move { coord.drain().await }
    });
    // The drain request is queued behind the submissions: once a later
    // submission is refused, the coordinator is draining.
    let err = loop {
        match within(
            STEP,
            "submit while draining",
            coord.submit(Job::new("echo", "x")),
        )
        .await
        {
            Err(err) => break err,
            Ok(pending) => held.push(pending),
        }
    };
    assert!(
        matches!(&err, JobError::Submit(SubmitError::Draining { node }) if node == "dr-a"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "coordinator on node dr-a is draining");
    let batch = within(
        STEP,
        "submit_many",
        coord.submit_many(vec![Job::new("echo", "")]),
    )
    .await;
    assert!(matches!(
        batch,
        Err(JobError::Submit(SubmitError::Draining { .. }))
    ));
    // Another node's envelope gets an Error reply saying so.
    let payload = bytes::Bytes::from_static(br#"{"kind":"echo"}"#);
    let reply = within(
        STEP,
        "envelope while draining",
        nodes[1]
            .router
            .request(coord.addr().clone(), PayloadFormat::Json, payload, STEP),
    )
    .await
    .unwrap();
    assert_eq!(reply.kind, EnvelopeKind::Error);
    let reason = reply.payload_str().unwrap();
    assert!(
        reason.contains("coordinator on node dr-a is draining"),
        "{reason}"
    );
    // Every held job finishes, then the drain completes.
    within(STEP, "drain", draining)
        .await
        .unwrap()
        .expect("drained");
    for pending in held {
        let result = within(STEP, "held result", pending.result()).await.unwrap();
        assert!(result.is_success(), "{result:?}");
    }
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!((stats.in_progress, stats.failed), (0, 0));
    // Draining again returns at once.
    within(STEP, "drain again", coord.drain()).await.unwrap();
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_pool_finishes_running_jobs_and_loses_no_attempt() {
    let nodes = cluster(&[("dp-a", &[]), ("dp-b", &[])], "").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::RoundRobin).await;
    let mut first = Vec::new();
    for _ in 0..10 {
        let job = Job::new("sleep", "100");
        first.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    // Some of those run on dp-b; drain it while they do, and keep
    // submitting: jobs reaching dp-b meanwhile are refused and re-placed.
    let drain_b = tokio::spawn(async move {
        let node = nodes.into_iter().collect::<Vec<_>>();
        within(STEP, "pool drain", node[1].pool.drain()).await;
        assert!(node[1].pool.is_draining());
        assert_eq!(node[1].pool.in_flight() + node[1].pool.queue_depth(), 0);
        node
    });
    let mut second = Vec::new();
    for i in 0..200 {
        let job = Job::new("echo", i.to_string());
        second.push(within(STEP, "submit", coord.submit(job)).await.unwrap());
    }
    let nodes = within(STEP, "drain task", drain_b).await.unwrap();
    for pending in first.into_iter().chain(second) {
        let result = within(STEP, "result", pending.result()).await.unwrap();
        assert!(result.is_success(), "{result:?}");
        assert_eq!(result.attempt, 1, "a refusal is not an attempt: {result:?}");
    }
    // Once the gossip has spread, dp-b gets nothing new.
    let withdrawn = until_members(&nodes[0].router, |r| {
        !r.get_all_peers()
            .iter()
            .any(|m| m.node == "dp-b" && m.has_tag("kind:echo"))
    });
    within(STEP, "dp-b stops advertising", withdrawn).await;
    let result = within(STEP, "after drain", coord.run(Job::new("whoami", "")))
        .await
        .unwrap();
    assert_eq!(result.outcome(), Ok("dp-a"));
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    assert_eq!(
        (stats.retries, stats.failed, stats.dead_letters),
        (0, 0, 0),
        "{stats:?}"
    );
    finish(coord, nodes).await;
}
