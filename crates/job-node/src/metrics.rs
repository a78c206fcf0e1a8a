//! Prometheus metrics (`GET /metrics`), kept with `prometheus-client`.
//!
//! The processing-time histogram is fed by events: every attempt this
//! node's workers finish ([`Metrics::observe_attempt`]). The job counters
//! follow the coordinator's statistics: [`Metrics::update_stats`] adds what
//! grew since the previous call, so they stay monotonic counters. The
//! gauges are refreshed from the cluster and statistics views just before
//! each scrape.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
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

/// The statistics counts last folded into the counters.
#[derive(Debug, Default)]
struct Seen {
    submitted: u64,
    retries: u64,
    refusals: u64,
    speculative_started: u64,
    speculative_won: u64,
    attempts: HashMap<KindNode, (u64, u64)>,
}

/// Most kinds whose processing-time histogram is cached for
/// [`Metrics::observe_attempt`].
const MAX_CACHED_KINDS: usize = 256;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The node's metrics registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    seen: Mutex<Seen>,
    submitted: Counter,
    completed: Family<KindNode, Counter>,
    failed: Family<KindNode, Counter>,
    retried: Counter,
    refused: Counter,
    speculative_started: Counter,
    speculative_won: Counter,
    queued: Gauge,
    waiting_for_limit: Gauge,
    latency: Family<KindNode, Histogram, fn() -> Histogram>,
    /// The histogram of `latency` for each kind, with the node it is
    /// labelled with: the per-attempt observation finds it without
    /// building (allocating) a label set and hashing it.
    latency_by_kind: RwLock<HashMap<String, (String, Histogram)>>,
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
    pub(crate) fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("jobmesh")),
            seen: Mutex::new(Seen::default()),
            submitted: Counter::default(),
            completed: Family::default(),
            failed: Family::default(),
            retried: Counter::default(),
            refused: Counter::default(),
            speculative_started: Counter::default(),
            speculative_won: Counter::default(),
            queued: Gauge::default(),
            waiting_for_limit: Gauge::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            latency_by_kind: RwLock::default(),
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
            "Jobs accepted by this node's coordinator",
            self.submitted.clone(),
        );
        r.register(
            "jobs_completed",
            "Job attempts of this node's coordinator that succeeded, by kind and worker node",
            self.completed.clone(),
        );
        r.register(
            "jobs_failed",
            "Job attempts of this node's coordinator that failed, by kind and worker node",
            self.failed.clone(),
        );
        r.register(
            "jobs_retried",
            "Attempts beyond the first made by this node's coordinator",
            self.retried.clone(),
        );
        r.register(
            "dispatches_refused",
            "Dispatches of this node's coordinator refused by a worker pool (full or draining) and placed again",
            self.refused.clone(),
        );
        r.register(
            "jobs_speculative_started",
            "Speculative backups this node's coordinator started for straggling attempts",
            self.speculative_started.clone(),
        );
        r.register(
            "jobs_speculative_won",
            "Jobs of this node's coordinator whose speculative backup finished first",
            self.speculative_won.clone(),
        );
        r.register(
            "jobs_queued",
            "Jobs waiting in this node's coordinator for a node's dispatch window",
            self.queued.clone(),
        );
        r.register(
            "jobs_waiting_for_limit",
            "Jobs held in this node's coordinator for a cluster-wide limit of their kind",
            self.waiting_for_limit.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Processing time of the attempts this node's workers finished, by kind",
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

    /// Records the processing time of an attempt this node's workers
    /// finished (successfully or not) for a job of `kind`.
    pub(crate) fn observe_attempt(&self, kind: &str, node: &str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        {
            let cached = self
                .latency_by_kind
                .read()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((labelled, histogram)) = cached.get(kind) {
                if labelled == node {
                    histogram.observe(seconds);
                    return;
                }
            }
        }
        let histogram = self.latency.get_or_create(&labels(kind, node)).clone();
        histogram.observe(seconds);
        let mut cached = self
            .latency_by_kind
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // The kinds are the registry's (bounded); the cap only guards it.
        if cached.len() < MAX_CACHED_KINDS || cached.contains_key(kind) {
            cached.insert(kind.to_owned(), (node.to_owned(), histogram));
        }
    }

    /// Refreshes the membership gauges.
    pub(crate) fn update_cluster(&self, cluster: &ClusterView) {
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

    /// Brings the job counters up to the coordinator's statistics (adding
    /// what grew since the previous call; a coordinator whose counts went
    /// down, i.e. restarted, becomes the new baseline) and refreshes the
    /// dead-letter and queued-jobs gauges.
    pub(crate) fn update_stats(&self, stats: &StatsView) {
        self.dead_letters.set(saturating_i64(stats.dead_letters));
        self.queued.set(saturating_i64(stats.queued));
        self.waiting_for_limit
            .set(saturating_i64(stats.waiting_for_limit));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.submitted
            .inc_by(stats.submitted.saturating_sub(seen.submitted));
        seen.submitted = stats.submitted;
        self.retried
            .inc_by(stats.retries.saturating_sub(seen.retries));
        seen.retries = stats.retries;
        self.refused
            .inc_by(stats.refusals.saturating_sub(seen.refusals));
        seen.refusals = stats.refusals;
        self.speculative_started.inc_by(
            stats
                .speculative_started
                .saturating_sub(seen.speculative_started),
        );
        seen.speculative_started = stats.speculative_started;
        self.speculative_won
            .inc_by(stats.speculative_won.saturating_sub(seen.speculative_won));
        seen.speculative_won = stats.speculative_won;
        for node in &stats.nodes {
            for kind in &node.kinds {
                let key = labels(&kind.kind, &node.node);
                let (done, failed) = seen.attempts.get(&key).copied().unwrap_or_default();
                self.completed
                    .get_or_create(&key)
                    .inc_by(kind.completed.saturating_sub(done));
                self.failed
                    .get_or_create(&key)
                    .inc_by(kind.failed.saturating_sub(failed));
                seen.attempts.insert(key, (kind.completed, kind.failed));
            }
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The classic Prometheus text format (`text/plain; version=0.0.4`) of
/// an OpenMetrics text: what scrapers without OpenMetrics support parse.
///
/// The differences that matter: a counter's `# HELP`/`# TYPE` name the
/// sample (`x_total`), not the family (`x`), or classic parsers call the
/// samples untyped; `_created` samples, `# UNIT` and `# EOF` do not exist
/// there; `unknown` is `untyped`.
pub(crate) fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let is_counter = |name: &str| counters.contains(&name);
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = line
            .strip_prefix("# HELP ")
            .map(|rest| ("HELP", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("TYPE", rest)));
        if let Some((what, rest)) = comment {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let tail = if what == "TYPE" && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            let suffix = if is_counter(name) { "_total" } else { "" };
            out.push_str(&format!("# {what} {name}{suffix} {tail}\n"));
            continue;
        }
        let sample = line.split(['{', ' ']).next().unwrap_or(line);
        if sample.strip_suffix("_created").is_some_and(is_counter) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_histograms_count_per_kind_and_node() {
        let metrics = Metrics::new();
        let ms = Duration::from_millis(1);
        for node in ["n1", "n1", "n2", "n1", "n1", "n2"] {
            metrics.observe_attempt("echo", node, ms);
        }
        metrics.observe_attempt("sha256", "n1", ms);
        let text = metrics.encode();
        let count = |labels: &str| {
            let prefix = format!("jobmesh_job_duration_seconds_count{{{labels}}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
                .trim()
                .to_owned()
        };
        assert_eq!(count(r#"kind="echo",node="n1""#), "4");
        assert_eq!(count(r#"kind="echo",node="n2""#), "2");
        assert_eq!(count(r#"kind="sha256",node="n1""#), "1");
    }
}
