//! Load-balancing strategies on a real three-node cluster: least in-flight
//! avoids a busy node, lowest latency avoids a node with injected delay (the
//! EWMA comes from real round trips), least CPU follows gossiped load.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use cluster_router::Load;
use job_queue::{Job, StrategyKind};
use support::jobs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_in_flight_avoids_a_busy_node() {
    let nodes = cluster(&[("lf-a", &[]), ("lf-b", &["busy"]), ("lf-c", &[])], "lf-b").await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastInFlight).await;
    // Four jobs only lf-b can take, and that hang there.
    let mut held = Vec::new();
    for _ in 0..4 {
        let job = Job::new("stall", "")
            .with_tag("busy")
            .with_timeout(Duration::from_secs(60))
            .with_max_attempts(1);
        held.push(
            within(STEP, "submit held job", coord.submit(job))
                .await
                .unwrap(),
        );
    }
    let mut per_node: HashMap<String, u32> = HashMap::new();
    for _ in 0..12 {
        let result = within(STEP, "whoami", coord.run(Job::new("whoami", "")))
            .await
            .unwrap();
        assert!(result.is_success(), "{result:?}");
        *per_node.entry(result.worker_node).or_default() += 1;
    }
    assert!(
        !per_node.contains_key("lf-b"),
        "the busy node got work: {per_node:?}"
    );
    assert_eq!(per_node.values().sum::<u32>(), 12);
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    let b = stats.nodes.iter().find(|n| n.node == "lf-b").unwrap();
    assert_eq!((b.in_flight, b.completed), (4, 0));
    finish(coord, nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowest_latency_prefers_the_nodes_without_injected_delay() {
    let make = |name: &str| {
        if name == "ll-b" {
            delayed_registry(Duration::from_millis(40))
        } else {
            registry("")
        }
    };
    let names: [(&str, &[&str]); 3] = [("ll-a", &[]), ("ll-b", &[]), ("ll-c", &[])];
    let nodes = cluster_with(&names, make, Duration::from_millis(100)).await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LowestLatency).await;
    // Measure every node a few times (round robin), then let the EWMA decide.
    for _ in 0..6 {
        let job = Job::new("whoami", "").with_strategy(StrategyKind::RoundRobin);
        within(STEP, "warm-up", coord.run(job)).await.unwrap();
    }
    for _ in 0..20 {
        let result = within(STEP, "whoami", coord.run(Job::new("whoami", "")))
            .await
            .unwrap();
        assert_ne!(result.worker_node, "ll-b", "picked the delayed node");
    }
    let stats = within(STEP, "stats", coord.stats()).await.unwrap();
    let latency = |n: &str| stats.nodes.iter().find(|s| s.node == n).unwrap().latency_ms;
    assert!(latency("ll-b") > 30.0, "{}", latency("ll-b"));
    assert!(latency("ll-a") < latency("ll-b") && latency("ll-c") < latency("ll-b"));
    finish(coord, nodes).await;
}

fn load(cpu: f32) -> Load {
    Load {
        cpu_percent: cpu,
        in_flight: 0,
        queue_depth: 0,
    }
}

/// Sets each node's load and waits until the first node sees them all
/// through gossip. The loads are set again on every check: a pool publishes
/// its real load once when it starts, possibly after the first set.
async fn set_loads(nodes: &[Node], loads: &[(&str, f32)]) {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        for (node, (_, cpu)) in nodes.iter().zip(loads) {
            node.router.set_load(load(*cpu));
        }
        let members = nodes[0].router.members();
        let seen = loads.iter().all(|(node, cpu)| {
            members
                .iter()
                .any(|m| m.node == *node && (m.load.cpu_percent - cpu).abs() < 0.01)
        });
        if seen {
            return;
        }
        ticker.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_cpu_prefers_the_node_reporting_low_load() {
    let names: [(&str, &[&str]); 3] = [("lc-a", &[]), ("lc-b", &[]), ("lc-c", &[])];
    // The pools publish their real load once at start, then not for an hour:
    // the loads set below stay.
    let nodes = cluster_with(&names, |_| registry(""), Duration::from_secs(3600)).await;
    let loads = [("lc-a", 150.0), ("lc-b", 170.0), ("lc-c", 3.0)];
    within(STEP, "loads gossiped", set_loads(&nodes, &loads)).await;
    let coord = coordinator(&nodes[0].router, StrategyKind::LeastCpu).await;
    for _ in 0..10 {
        let result = within(STEP, "whoami", coord.run(Job::new("whoami", "")))
            .await
            .unwrap();
        assert_eq!(result.outcome(), Ok("lc-c"));
    }
    finish(coord, nodes).await;
}
