//! Prometheus metrics (`GET /metrics`), kept with `prometheus-client`.
//!
//! Counters and the latency histogram are fed by events
//! ([`Metrics::record_submitted`], [`Metrics::record_result`],
//! [`Metrics::record_retry`]); gauges are refreshed from the backend's
//! cluster and statistics views just before each scrape.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::http::{ClusterView, StatsView};

/// Labels of the per-job metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindNode {
    kind: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The node's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    submitted: Family<KindNode, Counter>,
    completed: Family<KindNode, Counter>,
    failed: Family<KindNode, Counter>,
    retried: Family<KindNode, Counter>,
    latency: Family<KindNode, Histogram, fn() -> Histogram>,
    links: Gauge,
    members: Family<StatusLabel, Gauge>,
    in_flight: Family<NodeLabel, Gauge>,
    dead_letters: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `jobmesh_` prefix.
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("jobmesh")),
            submitted: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            links: Gauge::default(),
            members: Family::default(),
            in_flight: Family::default(),
            dead_letters: Gauge::default(),
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.register(
            "jobs_submitted",
            "Jobs accepted by this node's coordinator, by kind and accepting node",
            self.submitted.clone(),
        );
        r.register(
            "jobs_completed",
            "Job attempts that succeeded, by kind and worker node",
            self.completed.clone(),
        );
        r.register(
            "jobs_failed",
            "Job attempts that failed, by kind and worker node",
            self.failed.clone(),
        );
        r.register(
            "jobs_retried",
            "Job attempts retried, by kind and the node that failed them",
            self.retried.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Processing time of finished attempts, by kind and worker node",
            self.latency.clone(),
        );
        r.register("links", "Open links to other nodes", self.links.clone());
        r.register("members", "Cluster members by status", self.members.clone());
        r.register(
            "node_in_flight",
            "Jobs running per node, from gossip",
            self.in_flight.clone(),
        );
        r.register(
            "dead_letters",
            "Jobs in this coordinator's dead-letter list",
            self.dead_letters.clone(),
        );
    }

    /// Counts a job accepted on `node`.
    pub fn record_submitted(&self, kind: &str, node: &str) {
        self.submitted.get_or_create(&labels(kind, node)).inc();
    }

    /// Counts a finished attempt on `worker_node` and records its time.
    pub fn record_result(&self, kind: &str, worker_node: &str, success: bool, elapsed: Duration) {
        let key = labels(kind, worker_node);
        if success {
            self.completed.get_or_create(&key).inc();
        } else {
            self.failed.get_or_create(&key).inc();
        }
        self.latency
            .get_or_create(&key)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a retry of a job that failed on `node`.
    pub fn record_retry(&self, kind: &str, node: &str) {
        self.retried.get_or_create(&labels(kind, node)).inc();
    }

    /// Refreshes the membership gauges.
    pub fn update_cluster(&self, cluster: &ClusterView) {
        self.links.set(saturating_i64(cluster.links));
        self.members.clear();
        self.in_flight.clear();
        for member in &cluster.members {
            self.members
                .get_or_create(&StatusLabel {
                    status: member.status.clone(),
                })
                .inc();
            self.in_flight
                .get_or_create(&NodeLabel {
                    node: member.node.clone(),
                })
                .set(i64::from(member.load.in_flight));
        }
    }

    /// Refreshes the gauges taken from the statistics.
    pub fn update_stats(&self, stats: &StatsView) {
        self.dead_letters.set(saturating_i64(stats.dead_letters));
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

fn labels(kind: &str, node: &str) -> KindNode {
    KindNode {
        kind: kind.to_owned(),
        node: node.to_owned(),
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
