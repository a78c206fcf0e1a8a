//! The coordinator's view of worker nodes: status, tags, load, latency and
//! statistics, and the eligibility filter that runs before any strategy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::selectors::KindSelectors;
use super::window::{advertised_concurrency, AdaptiveWindow};
use crate::job::Job;
use crate::stats::NodeStats;
use crate::strategy::Candidate;

/// The weight of a new round-trip sample in the latency EWMA.
pub(crate) const LATENCY_EWMA_ALPHA: f64 = 0.2;

/// The prefix of the tag with which a node advertises its dispatch window:
/// `capacity:<n>`, the most attempts a coordinator keeps outstanding on it.
pub const CAPACITY_TAG_PREFIX: &str = "capacity:";

/// The tag advertising a dispatch window of `window` jobs (`capacity:<n>`).
pub fn capacity_tag(window: u32) -> String {
    format!("{CAPACITY_TAG_PREFIX}{window}")
}

/// The window a node advertises in its tags, if any (the first valid
/// `capacity:<n>` with `n >= 1`).
fn advertised_window(tags: &[String]) -> Option<u32> {
    tags.iter()
        .filter_map(|t| t.strip_prefix(CAPACITY_TAG_PREFIX)?.parse().ok())
        .find(|n| *n >= 1)
}

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
    /// The advertised (or default) window.
    window: u32,
    /// The effective window: halved on a refusal, grown back by one per
    /// accepted result up to `window` (additive increase, multiplicative
    /// decrease, as several coordinators may share the node's queue).
    limit: u32,
    /// The delay-driven window of a node advertising its concurrency
    /// (`workers:<k>`); the node's window is then the smaller of it and
    /// `limit`.
    adaptive: Option<AdaptiveWindow>,
    /// The concurrency the node advertises (`workers:<k>`), if any.
    concurrency: Option<u32>,
    serves_any: bool,
    /// The kinds its `kind:<name>` tags name: placement asks per job and
    /// node, so a set lookup rather than a scan of the tags.
    kinds: FxHashSet<Box<str>>,
    pub(crate) latency: Option<Duration>,
    /// The link's own round trip (without queueing and processing).
    link_rtt: BaseRtt,
    pub(crate) stats: NodeStats,
}

/// How long a window of the link round-trip minimum lasts.
const BASE_RTT_WINDOW: Duration = Duration::from_secs(10);

/// The smallest round trip not spent in the node's queue or handler
/// (round trip minus processing time) over the last one or two windows of
/// [`BASE_RTT_WINDOW`]: the link's own delay, as LEDBAT's base delay or
/// BBR's min RTT. A queue on the node raises each sample but not the
/// minimum, so the queue is not counted twice by `earliest-finish`.
#[derive(Debug, Default)]
struct BaseRtt {
    current: Option<Duration>,
    previous: Option<Duration>,
    since: Option<Instant>,
}

impl BaseRtt {
    fn observe(&mut self, sample: Duration, now: Instant) {
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= BASE_RTT_WINDOW {
            self.previous = self.current.take();
            self.since = Some(now);
        }
        self.current = Some(self.current.map_or(sample, |c| c.min(sample)));
    }

    fn get(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl NodeState {
    fn new(info: NodeInfo, default_window: u32, target: Option<Duration>) -> Self {
        let window = advertised_window(&info.tags)
            .unwrap_or(default_window)
            .max(1);
        let adaptive = adaptive_window(&info.tags, target);
        NodeState {
            concurrency: advertised_concurrency(&info.tags),
            adaptive,
            status: info.status,
            serves_any: serves_any(&info.tags),
            kinds: served_kinds(&info.tags),
            tags: info.tags,
            load: info.load,
            outstanding: 0,
            window,
            limit: window,
            latency: None,
            link_rtt: BaseRtt::default(),
            stats: NodeStats::default(),
        }
    }

    fn update(&mut self, info: NodeInfo, default_window: u32, target: Option<Duration>) {
        let window = advertised_window(&info.tags)
            .unwrap_or(default_window)
            .max(1);
        if window != self.window {
            self.window = window;
            self.limit = window;
        }
        self.concurrency = advertised_concurrency(&info.tags);
        let concurrency = self.concurrency.filter(|_| target.is_some());
        if concurrency != self.adaptive.as_ref().map(AdaptiveWindow::concurrency) {
            self.adaptive = adaptive_window(&info.tags, target);
        }
        self.status = info.status;
        self.serves_any = serves_any(&info.tags);
        self.kinds = served_kinds(&info.tags);
        self.tags = info.tags;
        self.load = info.load;
    }

    /// Whether another attempt fits in the node's window.
    pub(crate) fn has_credit(&self) -> bool {
        self.outstanding < self.limit()
    }

    /// The effective window: the refusal-driven limit, and the adaptive
    /// window if the node advertises its concurrency.
    pub(crate) fn limit(&self) -> u32 {
        match &self.adaptive {
            Some(adaptive) => adaptive.size(self.window).min(self.limit),
            None => self.limit,
        }
    }

    /// A result whose job waited `waited` before it ran (round trip minus
    /// processing time): feeds the adaptive window.
    pub(crate) fn observe_wait(&mut self, waited: Duration) {
        let outstanding = self.outstanding.saturating_add(1);
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.observe(waited, outstanding, self.window);
        }
    }

    /// A result's round trip minus its processing time, at `now`: feeds
    /// the link's base round trip.
    pub(crate) fn observe_link(&mut self, outside_handler: Duration, now: Instant) {
        self.link_rtt.observe(outside_handler, now);
    }

    /// An accepted result: the window grows back by one.
    pub(crate) fn credit_returned(&mut self) {
        self.limit = (self.limit + 1).min(self.window);
    }

    /// A refusal by the node's full queue: the window is halved.
    pub(crate) fn refused(&mut self) {
        self.limit = (self.limit / 2).max(1);
    }

    /// Up, carrying every required tag (and `accept`, the tag the job's
    /// kind selector asks for), and serving the job's kind.
    pub(crate) fn is_eligible(&self, job: &Job, accept: Option<&str>) -> bool {
        self.status == NodeStatus::Up && self.fits(job, accept)
    }

    /// Up or Suspect, with the job's tags and kind: the node may still run
    /// it (a Suspect node may come back).
    pub(crate) fn could_serve(&self, job: &Job, accept: Option<&str>) -> bool {
        self.status != NodeStatus::Down && self.fits(job, accept)
    }

    fn fits(&self, job: &Job, accept: Option<&str>) -> bool {
        job.tags.iter().all(|t| self.tags.contains(t))
            && accept.is_none_or(|a| self.tags.iter().any(|t| t == a))
            && self.serves(&job.kind)
    }

    fn serves(&self, kind: &str) -> bool {
        self.kinds.contains(kind)
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

/// The adaptive window of a node advertising its concurrency, when
/// adaptive windows are on (`target` set).
fn adaptive_window(tags: &[String], target: Option<Duration>) -> Option<AdaptiveWindow> {
    let target = target?;
    advertised_concurrency(tags).map(|k| AdaptiveWindow::new(k, target))
}

/// The kinds named by `kind:<name>` tags.
fn served_kinds(tags: &[String]) -> FxHashSet<Box<str>> {
    tags.iter()
        .filter_map(|t| t.strip_prefix(crate::handler::KIND_TAG_PREFIX))
        .map(Box::from)
        .collect()
}

fn serves_any(tags: &[String]) -> bool {
    tags.iter()
        .any(|t| t.starts_with(crate::handler::KIND_TAG_PREFIX))
}

/// Eligible nodes of one placement: inline for up to 8 (no allocation per
/// placement on a small cluster).
pub(crate) type Eligible<'a> = smallvec::SmallVec<[(&'a str, &'a NodeState); 8]>;

/// All known nodes, sorted by name.
#[derive(Debug)]
pub(crate) struct NodeTable {
    nodes: BTreeMap<Arc<str>, NodeState>,
    default_window: u32,
    queue_target: Option<Duration>,
    selectors: KindSelectors,
    /// The coordinator's own node: no network between them, so its
    /// candidates carry a round trip of zero.
    local: Option<Arc<str>>,
    /// The own node's pool load as it is now (running, queued), when the
    /// pool runs in this process ([`Self::set_local_live_load`]).
    local_live: Option<(u32, u32)>,
}

impl Default for NodeTable {
    fn default() -> Self {
        NodeTable::new(1024)
    }
}

impl NodeTable {
    pub(crate) fn new(default_window: u32) -> Self {
        NodeTable {
            nodes: BTreeMap::new(),
            default_window: default_window.max(1),
            queue_target: Some(Duration::from_millis(50)),
            selectors: KindSelectors::default(),
            local: None,
            local_live: None,
        }
    }

    /// Names the coordinator's own node (see [`candidate`]).
    pub(crate) fn with_local(mut self, node: &str) -> Self {
        self.local = (!node.is_empty()).then(|| Arc::from(node));
        self
    }

    /// Whether `name` is the coordinator's own node.
    pub(crate) fn is_local(&self, name: &str) -> bool {
        self.local.as_deref() == Some(name)
    }

    /// The own node's pool load read in this process just now (`None`:
    /// not known, the reported load stands). The load a node reports
    /// through the membership is up to a report interval plus a refresh
    /// old: right after a burst it still shows the burst's queue, and the
    /// own node, idle by then, looked busy and lost single jobs to remote
    /// nodes (an extra network hop each) for most of a second.
    pub(crate) fn set_local_live_load(&mut self, load: Option<(u32, u32)>) {
        self.local_live = load;
    }

    /// See [`Self::set_local_live_load`].
    pub(crate) fn local_live_load(&self) -> Option<(u32, u32)> {
        self.local_live
    }

    /// The wait adaptive windows aim for (see [`AdaptiveWindow`]).
    pub(crate) fn with_queue_target(mut self, target: Option<Duration>) -> Self {
        self.queue_target = target;
        self
    }

    /// Uses `selectors` for exact eligibility (see [`KindSelectors`]).
    pub(crate) fn with_selectors(mut self, selectors: KindSelectors) -> Self {
        self.selectors = selectors;
        self
    }

    /// The `accept:` tag a node must carry to run `job`, if any.
    pub(crate) fn required_tag(&self, job: &Job) -> Option<String> {
        self.selectors.required_tag(job)
    }

    /// Inserts or updates a node; returns its previous status, if known.
    pub(crate) fn upsert(&mut self, info: NodeInfo) -> Option<NodeStatus> {
        match self.nodes.get_mut(info.name.as_str()) {
            Some(state) => {
                let previous = state.status;
                state.update(info, self.default_window, self.queue_target);
                Some(previous)
            }
            None => {
                let name: Arc<str> = Arc::from(info.name.as_str());
                let state = NodeState::new(info, self.default_window, self.queue_target);
                self.nodes.insert(name, state);
                None
            }
        }
    }

    /// Whether some Up node serving at least one kind has room in its
    /// window (a cheap test before scanning the ready queue).
    pub(crate) fn any_credit(&self) -> bool {
        self.nodes
            .values()
            .any(|n| n.status == NodeStatus::Up && n.serves_any && n.has_credit())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&NodeState> {
        self.nodes.get(name)
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

    /// Whether any node that is not Down could run `job`.
    pub(crate) fn any_could_serve(&self, job: &Job) -> bool {
        let accept = self.required_tag(job);
        self.nodes
            .values()
            .any(|n| n.could_serve(job, accept.as_deref()))
    }

    /// A node's status and tags, to tell later whether it changed.
    pub(crate) fn shape(&self, name: &str) -> Option<(NodeStatus, &[String])> {
        self.nodes.get(name).map(|n| (n.status, n.tags.as_slice()))
    }

    /// [`any_eligible`](Self::any_eligible) of each job in `jobs`, asked
    /// once per run of jobs with the same kind and tags (unless the kind
    /// has a selector, which reads each job's data).
    pub(crate) fn eligibility(&self, jobs: &[Job]) -> Vec<bool> {
        let mut out: Vec<bool> = Vec::with_capacity(jobs.len());
        let mut run: Option<(&Job, bool)> = None;
        for job in jobs {
            let answer = match (run, out.last()) {
                (Some((prev, false)), Some(&last))
                    if prev.kind == job.kind && prev.tags == job.tags =>
                {
                    last
                }
                _ => {
                    run = Some((job, self.selectors.has(&job.kind)));
                    self.any_eligible(job)
                }
            };
            out.push(answer);
        }
        out
    }

    /// Whether any node could run `job` right now.
    pub(crate) fn any_eligible(&self, job: &Job) -> bool {
        let accept = self.required_tag(job);
        self.nodes
            .values()
            .any(|n| n.is_eligible(job, accept.as_deref()))
    }

    /// The eligible candidates for `job`, by name, preferring nodes not
    /// `tried` yet: if every eligible node was tried, only `last_failed` is
    /// avoided; if it is the only eligible node, it is used anyway.
    #[cfg(test)]
    pub(crate) fn candidates<'a>(
        &'a self,
        job: &Job,
        tried: impl Fn(&str) -> bool,
        last_failed: Option<&str>,
    ) -> Vec<Candidate<'a>> {
        self.preferred(job, tried, last_failed)
            .into_iter()
            .map(|(k, n)| candidate(k, n, &job.kind, 0))
            .collect()
    }

    /// The preferred eligible nodes for `job` (see
    /// [`candidates`](Self::candidates)), before the credit filter.
    pub(crate) fn preferred<'a>(
        &'a self,
        job: &Job,
        tried: impl Fn(&str) -> bool,
        last_failed: Option<&str>,
    ) -> Eligible<'a> {
        let accept = self.required_tag(job);
        let eligible: Eligible<'a> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_eligible(job, accept.as_deref()))
            .map(|(k, n)| (&**k, n))
            .collect();
        // The common case, a job that has not failed anywhere: every
        // eligible node is fresh (no second list).
        if !eligible.iter().any(|(k, _)| tried(k)) {
            return eligible;
        }
        let fresh = || eligible.iter().filter(|(k, _)| !tried(k));
        if fresh().next().is_some() {
            fresh().copied().collect()
        } else if eligible.len() > 1 && last_failed.is_some() {
            eligible
                .iter()
                .filter(|(k, _)| Some(*k) != last_failed)
                .copied()
                .collect()
        } else {
            eligible
        }
    }
}

/// What a strategy sees of `node` for a job of `kind`.
pub(crate) fn candidate<'a>(
    name: &'a str,
    node: &NodeState,
    kind: &str,
    backlog: u32,
) -> Candidate<'a> {
    Candidate {
        has_room: node.has_credit(),
        backlog,
        concurrency: node.concurrency,
        service_time: node.stats.mean_of(kind),
        node: name,
        outstanding: node.outstanding,
        reported_in_flight: node.load.in_flight,
        reported_queue_depth: node.load.queue_depth,
        cpu: node.load.cpu,
        latency: node.latency,
        link_rtt: node.link_rtt.get(),
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
    fn a_kind_selector_needs_the_accept_tag() {
        let mut selectors = KindSelectors::default();
        selectors.insert("exec", |job: &Job| Some(job.data.clone()));
        let mut t = NodeTable::new(8).with_selectors(selectors);
        t.upsert(NodeInfo::up("a", ["kind:exec", "accept:exec:ls"]));
        t.upsert(NodeInfo::up("b", ["kind:exec", "accept:exec:date"]));
        t.upsert(NodeInfo::up("c", ["kind:echo", "accept:exec:ls"]));
        let ls = Job::new("exec", "ls");
        assert_eq!(names(&t.candidates(&ls, |_| false, None)), ["a"]);
        let date = Job::new("exec", "date");
        assert_eq!(names(&t.candidates(&date, |_| false, None)), ["b"]);
        assert!(!t.any_eligible(&Job::new("exec", "rm")));
        assert!(t.any_could_serve(&ls) && !t.any_could_serve(&Job::new("exec", "rm")));
    }

    #[test]
    fn eligibility_of_a_batch_is_asked_per_run_of_like_jobs() {
        let mut selectors = KindSelectors::default();
        selectors.insert("exec", |job: &Job| Some(job.data.clone()));
        let mut t = table().with_selectors(selectors);
        t.upsert(NodeInfo::up("e", ["kind:exec", "accept:exec:ls"]));
        let jobs = [
            Job::new("echo", "1"),
            Job::new("echo", "2"),
            Job::new("echo", "").with_tag("tpu"),
            Job::new("echo", "").with_tag("tpu"),
            Job::new("echo", "3").with_tag("gpu"),
            // A selector reads each job's data: asked for every one.
            Job::new("exec", "ls"),
            Job::new("exec", "rm"),
            Job::new("exec", "ls"),
            Job::new("render", ""),
        ];
        let expected: Vec<bool> = jobs.iter().map(|j| t.any_eligible(j)).collect();
        assert_eq!(
            expected,
            [true, true, false, false, true, true, false, true, false]
        );
        assert_eq!(t.eligibility(&jobs), expected);
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
    fn windows_come_from_capacity_tags_and_shrink_on_refusal() {
        let mut t = NodeTable::new(8);
        t.upsert(NodeInfo::up("a", ["kind:echo", "capacity:3"]));
        t.upsert(NodeInfo::up("b", ["kind:echo", "capacity:zero"]));
        assert_eq!(t.get_mut("a").unwrap().limit(), 3);
        assert_eq!(t.get_mut("b").unwrap().limit(), 8, "bad tag: default");
        let a = t.get_mut("a").unwrap();
        a.outstanding = 3;
        assert!(!a.has_credit());
        a.refused();
        assert_eq!(a.limit(), 1);
        a.credit_returned();
        a.credit_returned();
        a.credit_returned();
        assert_eq!(a.limit(), 3, "grows back up to the advertised window");
        t.upsert(NodeInfo::up("a", ["kind:echo", "capacity:5"]));
        assert_eq!(t.get_mut("a").unwrap().limit(), 5);
        // A node serving nothing never counts as spare credit.
        let mut idle = NodeTable::new(8);
        idle.upsert(NodeInfo::up("c", ["gpu"]));
        assert!(!idle.any_credit());
        assert!(t.any_credit());
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
