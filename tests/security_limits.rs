//! The limits protocol is for nodes only: an external client, even with a
//! valid token, cannot reach `limits@<node>` on its node or another (the
//! router refuses and counts it), and a limited kind still works.

mod support;

use std::time::Duration;

use job_queue::{CoordinatorOptions, Job, KindLimit, LimitsConfig, StrategyKind};
use serde_json::json;
use support::jobs;
use support::router;
use support::ws::{connect_bearer, next_json, send_json, welcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_address_the_limits_protocol() {
    let nodes = jobs::cluster(&[("lim-a", &[]), ("lim-b", &[])], "").await;
    let limit: KindLimit = "kind=echo,running=1".parse().unwrap();
    let options = || {
        let mut options = CoordinatorOptions::default();
        options.core.limits = LimitsConfig {
            kinds: vec![limit.clone()],
            lease: Duration::from_millis(300),
        };
        options
    };
    let coord_a =
        jobs::coordinator_with(&nodes[0].router, StrategyKind::RoundRobin, options()).await;
    let coord_b =
        jobs::coordinator_with(&nodes[1].router, StrategyKind::RoundRobin, options()).await;

    let url = nodes[0].router.url();
    let mut ws = connect_bearer(router::STEP, &url, jobs::SECRET).await;
    welcome(router::STEP, &mut ws, "lim-a").await;
    let before = (
        nodes[0].router.stats().client_refused,
        nodes[1].router.stats().client_refused,
    );
    // A forged grant of a thousand slots, to the local and the remote node.
    let forged = json!({"kind": "echo", "report_seq": 1, "seq": 9, "allowed": 1000,
                        "tokens": 1000, "lease_ms": 3_600_000});
    for (n, to) in ["limits@lim-a", "limits@lim-b"].into_iter().enumerate() {
        send_json(
            jobs::STEP,
            &mut ws,
            &json!({"to": to, "id": n + 1, "payload": forged}),
        )
        .await;
        let answer = next_json(jobs::STEP, &mut ws).await;
        assert_eq!(answer["kind"], "error", "{answer}");
        assert_eq!(answer["correlation_id"], n + 1, "{answer}");
        let reason = answer["payload"].as_str().unwrap();
        assert!(
            reason.contains("does not take messages from external clients"),
            "{reason}"
        );
    }
    let after = (
        nodes[0].router.stats().client_refused,
        nodes[1].router.stats().client_refused,
    );
    assert_eq!(
        after.0 + after.1,
        before.0 + before.1 + 2,
        "both refusals counted"
    );

    // The limited kind runs, one at a time, through both coordinators.
    let mut pending = Vec::new();
    for i in 0..10 {
        let coord = if i % 2 == 0 { &coord_a } else { &coord_b };
        pending.push(
            coord
                .submit(Job::new("echo", i.to_string()))
                .await
                .expect("accepted"),
        );
    }
    for job in pending {
        let result = tokio::time::timeout(jobs::STEP, job.result())
            .await
            .expect("result in time")
            .expect("result");
        assert!(result.error.is_none(), "{result:?}");
    }
    let stats = coord_b.stats().await.unwrap();
    assert_eq!(stats.limits.len(), 1);
    assert_eq!(stats.limits[0].leader.as_deref(), Some("lim-a"));
    assert_eq!(stats.limits[0].running, Some(1));
    coord_b.shutdown().await;
    jobs::finish(coord_a, nodes).await;
}
