//! Cluster-wide limits per job kind: at most N attempts of a kind running
//! across the cluster, at most R starts per second (a token bucket),
//! whichever coordinator accepted the jobs. See `docs/jobs.md`, "Cluster-wide
//! limits".
//!
//! A lease protocol, sans-IO like the coordinator core that owns it:
//!
//! - Each coordinator advertises the limits it is configured with as node
//!   tags (`limit:<kind>:<running>:<rate>:<burst>`). A kind is limited on
//!   every coordinator as soon as any live node advertises a limit for it;
//!   where nodes disagree, the stricter value of each part wins.
//! - The kind's **leader** is the lowest-named node that advertises it and
//!   is not Down. It grants shares on demand ([`leader`]): running slots as
//!   max-min fair shares of the demand (what does not divide evenly goes
//!   to the holders in turns), start tokens from one bucket, one at a
//!   time in turn. A new leader grants nothing for one lease.
//! - Each coordinator (**holder**, [`holder`]) reports what it runs and
//!   wants; a job starts only with a slot of an unexpired lease and a
//!   token. Jobs without one wait (queued, counted in the statistics as
//!   waiting for a limit).
//!
//! Messages go between `limits@<node>` actors: a name registered for nodes
//! only (external clients cannot address it), so only authenticated nodes,
//! each speaking for itself, reach the protocol; everything in them is
//! still checked and every map they feed is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::job::JobId;

mod holder;
mod leader;
mod spec;
mod wire;

#[cfg(test)]
mod tests;

use holder::KindHolder;
use leader::KindLeader;
pub use spec::{KindLimit, LimitsConfig, ParseLimitError, LIMIT_TAG_PREFIX};
pub(crate) use wire::LimitMsg;

/// A report and a grant, as seeds of the fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn sample_messages() -> Vec<LimitMsg> {
    vec![
        LimitMsg::Report(wire::Report {
            kind: "sleep".into(),
            report_seq: 3,
            acked: 1,
            used: 1,
            want: 5,
            want_tokens: 4,
        }),
        LimitMsg::Grant(wire::Grant {
            kind: "sleep".into(),
            report_seq: 3,
            seq: 2,
            allowed: 2,
            tokens: 1,
            lease_ms: 2000,
        }),
        // The most tokens a grant can carry: twice overflowed a sum.
        LimitMsg::Grant(wire::Grant {
            kind: "sleep".into(),
            report_seq: 0,
            seq: 1,
            allowed: 0,
            tokens: u32::MAX,
            lease_ms: 1000,
        }),
    ]
}

/// The well-known name of the lease protocol's actor on every node.
pub const LIMITS: &str = "limits";

/// Most limited kinds followed (tags are untrusted input).
const MAX_KINDS: usize = 256;
/// Most limit tags read per node.
const MAX_TAGS_PER_NODE: usize = 64;
/// With nothing changed, the leaders and holders run at most this often
/// (renewals, expiry, the bucket), not on every coordinator input.
const IDLE_RUN: Duration = Duration::from_millis(5);

/// One limited kind, as one coordinator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitSnapshot {
    /// The job kind.
    pub kind: String,
    /// The effective cluster-wide running limit, if any.
    pub running: Option<u32>,
    /// The effective cluster-wide starts per second, if any.
    pub rate: Option<f64>,
    /// The node granting shares (`None` while none is known).
    pub leader: Option<String>,
    /// Attempts of the kind this coordinator runs now.
    pub running_here: u32,
    /// The share last granted to this coordinator.
    pub allowed_here: u32,
    /// Jobs of the kind waiting here for a share or a token.
    pub waiting_here: u64,
    /// On the leader: slots granted across the cluster; else `None`.
    pub granted_total: Option<u32>,
}

#[derive(Debug)]
struct KindState {
    limit: KindLimit,
    holder: KindHolder,
    leading: Option<KindLeader>,
}

/// The limits engine of one coordinator; see the module guide.
#[derive(Debug)]
pub(crate) struct LimitEngine {
    me: String,
    config: LimitsConfig,
    /// The limits advertised by each node that is not Down.
    advertised: BTreeMap<String, Vec<KindLimit>>,
    /// Nodes not Down (reports are taken from these only).
    live: BTreeSet<String>,
    kinds: FxHashMap<String, KindState>,
    outbox: Vec<(String, LimitMsg)>,
    /// Jobs of kinds no longer limited, to place again.
    freed: Vec<JobId>,
    /// Something changed since the last run (a start, an end, a message).
    changed: bool,
    last_run: Option<Instant>,
}

impl LimitEngine {
    pub(crate) fn new(me: String, config: LimitsConfig, now: Instant) -> Self {
        let mut engine = LimitEngine {
            me,
            config,
            advertised: BTreeMap::new(),
            live: BTreeSet::new(),
            kinds: FxHashMap::default(),
            outbox: Vec::new(),
            freed: Vec::new(),
            changed: true,
            last_run: None,
        };
        engine.recompute(now);
        engine
    }

    /// Whether nothing is limited (the hot path skips everything then).
    pub(crate) fn is_idle(&self) -> bool {
        self.kinds.is_empty() && self.freed.is_empty()
    }

    /// Follows a node's status and tags (its advertised limits).
    pub(crate) fn observe_node(&mut self, node: &str, live: bool, tags: &[String], now: Instant) {
        let limits: Vec<KindLimit> = if live {
            tags.iter()
                .filter(|t| t.starts_with(LIMIT_TAG_PREFIX))
                .take(MAX_TAGS_PER_NODE)
                .filter_map(|t| KindLimit::from_tag(t))
                .collect()
        } else {
            Vec::new()
        };
        let was_live = self.live.contains(node);
        let same = match self.advertised.get(node) {
            Some(old) => *old == limits,
            None => limits.is_empty(),
        };
        if was_live == live && same {
            return;
        }
        if live {
            if self.live.insert(node.to_owned()) && node != self.me {
                // It may follow another leader still: wait out its grants.
                for state in self.kinds.values_mut() {
                    if let Some(leader) = &mut state.leading {
                        leader.hold_off(now);
                    }
                }
            }
        } else {
            self.live.remove(node);
        }
        if limits.is_empty() {
            self.advertised.remove(node);
        } else {
            self.advertised.insert(node.to_owned(), limits);
        }
        self.recompute(now);
    }

    /// Recomputes every kind's effective limit and leader.
    fn recompute(&mut self, now: Instant) {
        self.changed = true;
        let mut wanted: BTreeMap<String, (KindLimit, String)> = BTreeMap::new();
        let own = std::iter::once((&self.me, &self.config.kinds));
        for (node, limits) in own.chain(self.advertised.iter()) {
            for limit in limits {
                if let Some((merged, leader)) = wanted.get_mut(&limit.kind) {
                    *merged = merged.stricter(limit);
                    if node < leader {
                        leader.clone_from(node);
                    }
                } else if wanted.len() < MAX_KINDS {
                    wanted.insert(limit.kind.clone(), (limit.clone(), node.clone()));
                }
            }
        }
        let gone: Vec<String> = self
            .kinds
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for kind in gone {
            if let Some(mut state) = self.kinds.remove(&kind) {
                self.freed.extend(state.holder.take_parked());
            }
        }
        let lease = self.config.lease;
        for (kind, (limit, leader)) in wanted {
            let state = self.kinds.entry(kind).or_insert_with(|| KindState {
                limit: limit.clone(),
                holder: KindHolder::new(lease),
                leading: None,
            });
            state.limit = limit.clone();
            state.holder.set_leader(Some(leader.clone()));
            if leader == self.me {
                let leading = state
                    .leading
                    .get_or_insert_with(|| KindLeader::new(limit.clone(), lease, now));
                leading.set_limit(limit);
            } else {
                state.leading = None;
            }
        }
    }

    /// Whether jobs of `kind` need a permit.
    pub(crate) fn is_limited(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// Whether a job of `kind` needs no permit, or may take one now.
    pub(crate) fn may_start(&mut self, kind: &str, now: Instant) -> bool {
        match self.kinds.get_mut(kind) {
            None => true,
            Some(state) => state.holder.may_start(&state.limit, now),
        }
    }

    /// Takes a permit for an attempt of `kind` starting (after
    /// [`may_start`](Self::may_start)).
    pub(crate) fn start(&mut self, kind: &str) {
        if let Some(state) = self.kinds.get_mut(kind) {
            state.holder.start(&state.limit);
            self.changed = true;
        }
    }

    /// An attempt of `kind` that started here ended.
    pub(crate) fn finished(&mut self, kind: &str) {
        if let Some(state) = self.kinds.get_mut(kind) {
            state.holder.finished();
            self.changed = true;
        }
    }

    /// Parks a job waiting for a permit of `kind`.
    pub(crate) fn park(&mut self, kind: &str, id: JobId) {
        self.changed = true;
        match self.kinds.get_mut(kind) {
            Some(state) => state.holder.park(id),
            None => self.freed.push(id),
        }
    }

    /// Forgets a parked job (cancelled).
    pub(crate) fn unpark(&mut self, kind: &str, id: &JobId) {
        if let Some(state) = self.kinds.get_mut(kind) {
            state.holder.unpark(id);
            self.changed = true;
        }
    }

    /// The next parked job that may start now (or whose kind is no longer
    /// limited).
    pub(crate) fn next_startable(&mut self, now: Instant) -> Option<JobId> {
        if let Some(id) = self.freed.pop() {
            return Some(id);
        }
        self.kinds
            .values_mut()
            .filter(|s| s.holder.has_parked())
            .find_map(|s| {
                let ready = s.holder.may_start(&s.limit, now);
                ready.then(|| s.holder.pop_parked()).flatten()
            })
            .inspect(|_| self.changed = true)
    }

    /// Jobs parked waiting for a permit.
    pub(crate) fn parked(&self) -> usize {
        self.kinds.values().map(|s| s.holder.parked()).sum()
    }

    /// A message from `limits@<from>` (the router vouches for `from`).
    pub(crate) fn received(&mut self, from: &str, msg: LimitMsg, now: Instant) {
        let Some(state) = self.kinds.get_mut(msg.kind()) else {
            tracing::debug!(
                from,
                kind = msg.kind(),
                "limits message for a kind not limited here"
            );
            return;
        };
        self.changed = true;
        match msg {
            LimitMsg::Report(report) => match &mut state.leading {
                Some(leader) if self.live.contains(from) || from == self.me => {
                    leader.report(from, &report, now);
                }
                _ => {
                    tracing::debug!(from, kind = %report.kind, "limits report to a node that does not lead the kind")
                }
            },
            LimitMsg::Grant(grant) => {
                if state.holder.leader() == Some(from) {
                    state.holder.grant(&grant, now);
                } else {
                    tracing::debug!(from, kind = %grant.kind, "limits grant from a node that does not lead the kind");
                }
            }
        }
        self.run(now);
    }

    /// Runs every kind's leader and holder: grants and reports to send;
    /// those between this node and itself are delivered at once.
    pub(crate) fn run(&mut self, now: Instant) {
        let recent = self
            .last_run
            .is_some_and(|t| now.saturating_duration_since(t) < IDLE_RUN);
        if !self.changed && recent {
            return;
        }
        self.changed = false;
        self.last_run = Some(now);
        for state in self.kinds.values_mut() {
            for _ in 0..3 {
                let mut local = false;
                if let Some(leader) = &mut state.leading {
                    for (node, grant) in leader.poll(now) {
                        if node == self.me {
                            state.holder.grant(&grant, now);
                            local = true;
                        } else {
                            self.outbox.push((node, LimitMsg::Grant(grant)));
                        }
                    }
                }
                if let Some(report) = state.holder.poll(&state.limit, now) {
                    match (&mut state.leading, state.holder.leader()) {
                        (Some(leader), _) => {
                            leader.report(&self.me, &report, now);
                            local = true;
                        }
                        (None, Some(to)) => {
                            self.outbox.push((to.to_owned(), LimitMsg::Report(report)));
                        }
                        (None, None) => {}
                    }
                }
                if !local {
                    break;
                }
            }
        }
    }

    /// The messages to send, to `limits@<node>`.
    pub(crate) fn take_outbox(&mut self) -> Vec<(String, LimitMsg)> {
        std::mem::take(&mut self.outbox)
    }

    /// Every limited kind, by kind.
    pub(crate) fn snapshot(&self) -> Vec<LimitSnapshot> {
        let mut out: Vec<LimitSnapshot> = self
            .kinds
            .iter()
            .map(|(kind, s)| LimitSnapshot {
                kind: kind.clone(),
                running: s.limit.running,
                rate: s.limit.rate,
                leader: s.holder.leader().map(str::to_owned),
                running_here: s.holder.used(),
                allowed_here: s.holder.share(),
                waiting_here: s.holder.parked() as u64,
                granted_total: s.leading.as_ref().map(KindLeader::booked),
            })
            .collect();
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        out
    }

    #[cfg(test)]
    fn leader_of(&self, kind: &str) -> Option<&KindLeader> {
        self.kinds.get(kind)?.leading.as_ref()
    }
}
