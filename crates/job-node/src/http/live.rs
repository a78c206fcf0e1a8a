//! The dashboard's live feed: one sampler per HTTP server reads the node
//! once a second (membership, the coordinator's statistics, and the jobs
//! it saw finish in that second) and hands the result to every open
//! `GET /dashboard/events` stream (Server-Sent Events).
//!
//! * **Bounded per connection.** A stream holds only the latest tick (a
//!   `watch` channel): a slow browser skips ticks, it never queues them.
//! * **Bounded connections.** At most [`MAX_STREAMS`] streams at once; the
//!   next is answered `503`.
//! * **History.** The last [`HISTORY`] ticks' chart series are kept and
//!   sent first, so a page opened late draws the last minutes at once.
//! * **Lazy.** The sampler starts with the first stream and runs while the
//!   server does (it stops when the router is dropped), so a node nobody
//!   watches pays nothing.
//! * **Latency figures are windowed**: per tick, p50 and p99 of the
//!   processing time of the jobs this node's coordinator saw finish in that
//!   tick, per worker node and per kind (from the job records, not the
//!   since-start statistics).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use job_queue::{FinishedSample, MAX_SAMPLES};
use serde::Serialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Api, ClusterView, StatsView};

/// Streams open at once.
pub(crate) const MAX_STREAMS: usize = 64;
/// Ticks of chart history kept (one a second: five minutes).
pub(crate) const HISTORY: usize = 300;
/// Time between ticks.
const TICK: Duration = Duration::from_secs(1);

/// Figures of the jobs finished in one tick.
#[derive(Debug, Default, Clone, Serialize)]
struct Figures {
    /// Jobs finished.
    n: usize,
    /// Of which not succeeded.
    failed: usize,
    /// Processing time percentiles, in milliseconds.
    p50: f64,
    p99: f64,
}

impl Figures {
    fn of(samples: &[&FinishedSample]) -> Self {
        let mut times: Vec<f64> = samples.iter().map(|s| s.elapsed_ms).collect();
        times.sort_unstable_by(f64::total_cmp);
        let pick = |q: f64| {
            if times.is_empty() {
                return 0.0;
            }
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
            times[rank - 1]
        };
        Figures {
            n: samples.len(),
            failed: samples.iter().filter(|s| !s.succeeded).count(),
            p50: pick(0.5),
            p99: pick(0.99),
        }
    }
}

/// One tick of chart series.
#[derive(Debug, Serialize)]
struct Series {
    /// The tick's end (unix ms).
    t: u64,
    /// Its length in milliseconds.
    window_ms: u64,
    /// Whether more jobs finished than could be sampled.
    truncated: bool,
    all: Figures,
    nodes: BTreeMap<String, Figures>,
    kinds: BTreeMap<String, Figures>,
}

impl Series {
    fn of(t: u64, window_ms: u64, samples: &[FinishedSample]) -> Self {
        let mut nodes: BTreeMap<&str, Vec<&FinishedSample>> = BTreeMap::new();
        let mut kinds: BTreeMap<&str, Vec<&FinishedSample>> = BTreeMap::new();
        for s in samples {
            if !s.node.is_empty() {
                nodes.entry(&s.node).or_default().push(s);
            }
            kinds.entry(&s.kind).or_default().push(s);
        }
        let all: Vec<&FinishedSample> = samples.iter().collect();
        let figures = |m: BTreeMap<&str, Vec<&FinishedSample>>| {
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), Figures::of(&v)))
                .collect()
        };
        Series {
            t,
            window_ms,
            truncated: samples.len() >= MAX_SAMPLES,
            all: Figures::of(&all),
            nodes: figures(nodes),
            kinds: figures(kinds),
        }
    }
}

/// A member's status and since when this node has seen it so.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: String,
    since_ms: u64,
}

/// The feed shared by every stream of one HTTP server.
pub(crate) struct LiveHub {
    api: Arc<dyn Api>,
    started: Once,
    tick: watch::Sender<Arc<str>>,
    history: Mutex<VecDeque<Arc<str>>>,
    streams: Arc<Semaphore>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").finish_non_exhaustive()
    }
}

impl LiveHub {
    pub(crate) fn new(api: Arc<dyn Api>) -> Arc<Self> {
        Arc::new(LiveHub {
            api,
            started: Once::new(),
            tick: watch::channel(Arc::from("")).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        })
    }

    /// A new stream: `None` when [`MAX_STREAMS`] are open. The stream ends
    /// when `closing` is cancelled (the server shuts down).
    pub(crate) fn stream(
        self: &Arc<Self>,
        closing: Option<CancellationToken>,
    ) -> Option<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
        let permit = Arc::clone(&self.streams).try_acquire_owned().ok()?;
        self.start();
        // Subscribed before the history is read: a tick in between is in
        // both (the page drops a tick it already has), never in neither.
        let mut rx = self.tick.subscribe();
        rx.mark_unchanged();
        let history = {
            let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let parts: Vec<&str> = history.iter().map(|s| &**s).collect();
            format!("[{}]", parts.join(","))
        };
        let state = StreamState {
            history: Some(history),
            rx,
            closing: closing.unwrap_or_default(),
            _permit: permit,
        };
        let events = stream::unfold(state, |mut state| async move {
            if let Some(history) = state.history.take() {
                let event = Event::default().event("history").data(history);
                return Some((Ok(event), state));
            }
            tokio::select! {
                () = state.closing.cancelled() => return None,
                changed = state.rx.changed() => changed.ok()?,
            }
            let data = state.rx.borrow_and_update().clone();
            let event = Event::default().event("tick").data(&*data);
            Some((Ok(event), state))
        });
        Some(Sse::new(events).keep_alive(KeepAlive::default()))
    }

    fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            tokio::spawn(sample(Arc::downgrade(self)));
        });
    }

    fn push_history(&self, series: Arc<str>) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(series);
    }
}

struct StreamState {
    history: Option<String>,
    rx: watch::Receiver<Arc<str>>,
    closing: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

/// The sampler: one tick a second while the hub lives.
async fn sample(hub: Weak<LiveHub>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after = job_queue_now_ms().saturating_sub(1);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        interval.tick().await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        // Jobs finished up to the millisecond before this call are all
        // recorded by the time the coordinator answers it.
        let until = job_queue_now_ms().saturating_sub(1).max(after);
        let samples = match hub.api.finished_between(after, until, MAX_SAMPLES).await {
            Ok(samples) => samples,
            Err(err) => {
                tracing::debug!(%err, "dashboard: finished jobs unavailable");
                Vec::new()
            }
        };
        let series = Series::of(until, until - after, &samples);
        after = until;
        let cluster = hub.api.cluster().await.ok();
        let stats = hub.api.stats().await.ok();
        let state = state_json(cluster.as_ref(), stats.as_ref(), &mut seen, until);
        let series = match serde_json::to_string(&series) {
            Ok(text) => Arc::<str>::from(text),
            Err(_) => continue,
        };
        hub.push_history(Arc::clone(&series));
        let tick = format!(r#"{{"series":{series},"state":{state}}}"#);
        hub.tick.send_replace(Arc::from(tick));
    }
}

fn job_queue_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The members (with since when each has had its status) and the
/// statistics, as JSON.
fn state_json(
    cluster: Option<&ClusterView>,
    stats: Option<&StatsView>,
    seen: &mut HashMap<String, Seen>,
    now_ms: u64,
) -> String {
    let mut since = serde_json::Map::new();
    if let Some(cluster) = cluster {
        seen.retain(|node, _| cluster.members.iter().any(|m| &m.node == node));
        for member in &cluster.members {
            let entry = seen.entry(member.node.clone()).or_insert(Seen {
                status: member.status.clone(),
                since_ms: now_ms,
            });
            if entry.status != member.status {
                *entry = Seen {
                    status: member.status.clone(),
                    since_ms: now_ms,
                };
            }
            since.insert(member.node.clone(), entry.since_ms.into());
        }
    }
    serde_json::json!({ "cluster": cluster, "stats": stats, "since_ms": since }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(node: &str, kind: &str, ms: f64, ok: bool) -> FinishedSample {
        FinishedSample {
            kind: kind.into(),
            node: node.into(),
            finished_ms: 1,
            elapsed_ms: ms,
            succeeded: ok,
        }
    }

    #[test]
    fn a_tick_has_percentiles_per_node_and_kind() {
        let mut samples: Vec<FinishedSample> = (1..=100)
            .map(|i| sample("node-b", "echo", f64::from(i), true))
            .collect();
        samples.push(sample("node-c", "sleep", 500.0, false));
        let series = Series::of(10, 1000, &samples);
        assert_eq!(series.all.n, 101);
        assert_eq!(series.all.failed, 1);
        let b = &series.nodes["node-b"];
        assert_eq!((b.n, b.p50, b.p99), (100, 50.0, 99.0));
        assert_eq!(series.kinds["sleep"].p99, 500.0);
        assert!(!series.truncated);
    }

    #[test]
    fn since_changes_with_the_status() {
        let member = |status: &str| super::super::MemberView {
            node: "node-b".into(),
            url: "ws://x".into(),
            status: status.into(),
            tags: vec![],
            load: Default::default(),
        };
        let cluster = |status: &str| ClusterView {
            node: "node-a".into(),
            links: 1,
            members: vec![member(status)],
        };
        let mut seen = HashMap::new();
        let a = state_json(Some(&cluster("up")), None, &mut seen, 100);
        assert!(a.contains(r#""node-b":100"#), "{a}");
        let b = state_json(Some(&cluster("up")), None, &mut seen, 200);
        assert!(b.contains(r#""node-b":100"#), "{b}");
        let c = state_json(Some(&cluster("down")), None, &mut seen, 300);
        assert!(c.contains(r#""node-b":300"#), "{c}");
    }
}
