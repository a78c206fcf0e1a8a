//! The coordinator's view of worker nodes: status, tags, load, latency and
//! statistics, and the eligibility filter that runs before any strategy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::Job;
use crate::stats::NodeStats;
use crate::strategy::Candidate;

/// The weight of a new round-trip sample in the latency EWMA.
pub const LATENCY_EWMA_ALPHA: f64 = 0.2;

/// A node's membership status, as the coordinator needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeStatus {
    /// Reachable; eligible for new attempts.
    Up,
    /// Missed heartbeats; not given new attempts, running ones continue.
    Suspect,
    /// Gone; its running attempts are retried elsewhere at once.
    Down,
}

/// Load a node reports through gossip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// CPU use in percent, if known.
    pub cpu: Option<f32>,
    /// Jobs running on the node.
    pub in_flight: u32,
    /// Jobs queued on the node.
    pub queue_depth: u32,
}

/// What the membership layer tells the coordinator about one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Its status.
    pub status: NodeStatus,
    /// Its tags: capabilities (`gpu`) and served kinds (`kind:resize`).
    pub tags: Vec<String>,
    /// Its last reported load.
    pub load: NodeLoad,
}

impl NodeInfo {
    /// An Up node with `tags` and no reported load.
    pub fn up<S: Into<String>>(name: impl Into<String>, tags: impl IntoIterator<Item = S>) -> Self {
        NodeInfo {
            name: name.into(),
            status: NodeStatus::Up,
            tags: tags.into_iter().map(Into::into).collect(),
            load: NodeLoad::default(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) status: NodeStatus,
    tags: Vec<String>,
    load: NodeLoad,
    pub(crate) outstanding: u32,
    pub(crate) latency: Option<Duration>,
    pub(crate) stats: NodeStats,
}

impl NodeState {
    fn new(info: NodeInfo) -> Self {
        NodeState {
            status: info.status,
            tags: info.tags,
            load: info.load,
            outstanding: 0,
            latency: None,
            stats: NodeStats::default(),
        }
    }

    /// Up, carrying every required tag, and serving the job's kind.
    pub(crate) fn is_eligible(&self, job: &Job) -> bool {
        self.status == NodeStatus::Up
            && job.tags.iter().all(|t| self.tags.contains(t))
            && self.serves(&job.kind)
    }

    fn serves(&self, kind: &str) -> bool {
        self.tags
            .iter()
            .any(|t| t.strip_prefix(crate::handler::KIND_TAG_PREFIX) == Some(kind))
    }

    pub(crate) fn observe_latency(&mut self, rtt: Duration) {
        self.latency = Some(match self.latency {
            None => rtt,
            Some(old) => {
                let mixed = old.as_secs_f64() * (1.0 - LATENCY_EWMA_ALPHA)
                    + rtt.as_secs_f64() * LATENCY_EWMA_ALPHA;
                Duration::from_secs_f64(mixed)
            }
        });
    }
}

/// All known nodes, sorted by name.
#[derive(Debug, Default)]
pub(crate) struct NodeTable {
    nodes: BTreeMap<Arc<str>, NodeState>,
}

impl NodeTable {
    /// Inserts or updates a node; returns its previous status, if known.
    pub(crate) fn upsert(&mut self, info: NodeInfo) -> Option<NodeStatus> {
        match self.nodes.get_mut(info.name.as_str()) {
            Some(state) => {
                let previous = state.status;
                state.status = info.status;
                state.tags = info.tags;
                state.load = info.load;
                Some(previous)
            }
            None => {
                let name: Arc<str> = Arc::from(info.name.as_str());
                self.nodes.insert(name, NodeState::new(info));
                None
            }
        }
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut NodeState> {
        self.nodes.get_mut(name)
    }

    /// The shared name of a known node.
    pub(crate) fn key(&self, name: &str) -> Option<Arc<str>> {
        self.nodes.get_key_value(name).map(|(k, _)| k.clone())
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.nodes.keys()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &NodeState)> {
        self.nodes.iter()
    }

    /// Whether any node could run `job` right now.
    pub(crate) fn any_eligible(&self, job: &Job) -> bool {
        self.nodes.values().any(|n| n.is_eligible(job))
    }

    /// The eligible candidates for `job`, by name, preferring nodes not
    /// `tried` yet: if every eligible node was tried, only `last_failed` is
    /// avoided; if it is the only eligible node, it is used anyway.
    pub(crate) fn candidates<'a>(
        &'a self,
        job: &Job,
        tried: impl Fn(&str) -> bool,
        last_failed: Option<&str>,
    ) -> Vec<Candidate<'a>> {
        let eligible: Vec<(&'a str, &'a NodeState)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_eligible(job))
            .map(|(k, n)| (&**k, n))
            .collect();
        let fresh = || eligible.iter().filter(|(k, _)| !tried(k));
        let chosen: Vec<&(&str, &NodeState)> = if fresh().next().is_some() {
            fresh().collect()
        } else if eligible.len() > 1 && last_failed.is_some() {
            eligible
                .iter()
                .filter(|(k, _)| Some(*k) != last_failed)
                .collect()
        } else {
            eligible.iter().collect()
        };
        chosen.into_iter().map(|(k, n)| candidate(k, n)).collect()
    }
}

fn candidate<'a>(name: &'a str, node: &NodeState) -> Candidate<'a> {
    Candidate {
        node: name,
        outstanding: node.outstanding,
        reported_in_flight: node.load.in_flight,
        reported_queue_depth: node.load.queue_depth,
        cpu: node.load.cpu,
        latency: node.latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NodeTable {
        let mut t = NodeTable::default();
        t.upsert(NodeInfo::up("a", ["kind:echo"]));
        t.upsert(NodeInfo::up("b", ["kind:echo", "gpu"]));
        t.upsert(NodeInfo::up("c", ["kind:resize", "gpu"]));
        let mut down = NodeInfo::up("d", ["kind:echo", "gpu"]);
        down.status = NodeStatus::Down;
        t.upsert(down);
        t
    }

    fn names(c: &[Candidate<'_>]) -> Vec<String> {
        c.iter().map(|c| c.node.to_owned()).collect()
    }

    #[test]
    fn eligibility_needs_up_tags_and_kind() {
        let t = table();
        let echo = Job::new("echo", "");
        assert_eq!(names(&t.candidates(&echo, |_| false, None)), ["a", "b"]);
        let gpu_echo = Job::new("echo", "").with_tag("gpu");
        assert_eq!(names(&t.candidates(&gpu_echo, |_| false, None)), ["b"]);
        assert!(!t.any_eligible(&Job::new("echo", "").with_tag("tpu")));
        assert!(!t.any_eligible(&Job::new("render", "")));
    }

    #[test]
    fn retries_prefer_untried_nodes() {
        let t = table();
        let echo = Job::new("echo", "");
        assert_eq!(names(&t.candidates(&echo, |n| n == "a", Some("a"))), ["b"]);
        // Both tried: avoid only the last failure.
        assert_eq!(names(&t.candidates(&echo, |_| true, Some("b"))), ["a"]);
        // A single eligible node is reused.
        let gpu = Job::new("echo", "").with_tag("gpu");
        assert_eq!(names(&t.candidates(&gpu, |n| n == "b", Some("b"))), ["b"]);
    }

    #[test]
    fn latency_ewma() {
        let mut t = table();
        let a = t.get_mut("a").unwrap();
        a.observe_latency(Duration::from_millis(10));
        assert_eq!(a.latency, Some(Duration::from_millis(10)));
        a.observe_latency(Duration::from_millis(20));
        let ms = a.latency.unwrap().as_secs_f64() * 1e3;
        assert!((ms - 12.0).abs() < 1e-6, "{ms}");
    }
}
