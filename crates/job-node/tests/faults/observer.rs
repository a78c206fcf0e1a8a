//! Watches every node's own view of the membership: asks `system@<node>`
//! for `{"cmd":"members"}` every [`POLL_EVERY`] over a client connection
//! to that node, and keeps the timeline of what each node reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use job_node::{ClientFrame, ClusterClient};
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::lab::Lab;
use super::LIMIT;

/// Interval between two polls of one node.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// What one node reported at one moment: member -> status.
#[derive(Debug, Clone)]
pub struct View {
    pub at: Instant,
    pub observer: String,
    pub statuses: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct MembersReply {
    members: Vec<MemberRow>,
}

#[derive(Deserialize)]
struct MemberRow {
    node: String,
    status: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Connects a client to node `i` of the lab.
pub async fn connect(lab: &Lab, i: usize) -> ClusterClient {
    let token = cluster_router::client_token(&cluster_router::Secret::from(lab.secret()));
    let url = lab.url(i);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match ClusterClient::connect(&url, &token, Duration::from_secs(5)).await {
            Ok(client) => return client,
            Err(err) if tokio::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("cannot connect to {url}: {err}"),
        }
    }
}

/// Asks `system@<node>` for the member table over `client`; `None` when no
/// answer comes within `timeout` (a paused node) or the connection is gone.
pub async fn members(
    client: &mut ClusterClient,
    node: &str,
    timeout: Duration,
) -> Option<Vec<(String, String, Vec<String>)>> {
    let id = client
        .send(&format!("system@{node}"), r#"{"cmd":"members"}"#)
        .await
        .ok()?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, client.recv())
            .await
            .ok()?
            .ok()?;
        let ClientFrame::Envelope(env) = frame else {
            continue;
        };
        if env.correlation_id != id {
            continue; // a late answer to an earlier poll
        }
        let reply: MembersReply = serde_json::from_str(&env.payload).ok()?;
        return Some(
            reply
                .members
                .into_iter()
                .map(|m| (m.node, m.status, m.tags))
                .collect(),
        );
    }
}

/// Waits until every node sees all `lab.count()` nodes up and serving
/// `sleep` jobs.
pub async fn wait_formed(lab: &Lab) {
    let n = lab.count();
    for i in 1..=n {
        let mut client = connect(lab, i).await;
        let name = lab.name(i);
        let formed = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(rows) = members(&mut client, &name, Duration::from_secs(2)).await {
                    let ready = rows
                        .iter()
                        .filter(|(_, s, tags)| s == "up" && tags.iter().any(|t| t == "kind:sleep"))
                        .count();
                    if ready == n {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(formed.is_ok(), "{name} never saw {n} ready members");
    }
}

/// The timeline of every node's view, filled by one polling task per node.
#[derive(Debug)]
pub struct Observer {
    views: Arc<Mutex<Vec<View>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Observer {
    /// Starts polling every node of the lab.
    pub async fn start(lab: &Lab) -> Observer {
        let views = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 1..=lab.count() {
            let mut client = connect(lab, i).await;
            let name = lab.name(i);
            let views = views.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(rows) = members(&mut client, &name, Duration::from_secs(1)).await
                    else {
                        continue;
                    };
                    let statuses = rows.into_iter().map(|(n, s, _)| (n, s)).collect();
                    views.lock().unwrap().push(View {
                        at: Instant::now(),
                        observer: name.clone(),
                        statuses,
                    });
                }
            }));
        }
        Observer { views, tasks }
    }

    /// A copy of the timeline so far.
    pub fn views(&self) -> Vec<View> {
        self.views.lock().unwrap().clone()
    }

    /// The first moment after `after` by which every node in `observers`
    /// has reported `member` as `status` (the latest of their first reports).
    pub fn all_report(
        &self,
        observers: &[String],
        member: &str,
        status: &str,
        after: Instant,
    ) -> Option<Instant> {
        let views = self.views();
        let mut latest = after;
        for o in observers {
            let first = views.iter().find(|v| {
                v.at >= after
                    && v.observer == *o
                    && v.statuses.get(member).map(String::as_str) == Some(status)
            })?;
            latest = latest.max(first.at);
        }
        Some(latest)
    }

    /// Waits (bounded by [`LIMIT`]) until [`Observer::all_report`] holds.
    pub async fn wait_all_report(
        &self,
        observers: &[String],
        member: &str,
        status: &str,
        after: Instant,
    ) -> Instant {
        let found = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(at) = self.all_report(observers, member, status, after) {
                    return at;
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("{observers:?} never all reported {member} {status}"))
    }

    /// The first moment after `after` by which each node in `observers`
    /// reported every node in `members` up (the latest of their first
    /// such reports).
    pub fn all_up(
        &self,
        observers: &[String],
        members: &[String],
        after: Instant,
    ) -> Option<Instant> {
        let views = self.views();
        let mut latest = after;
        for o in observers {
            let first = views.iter().find(|v| {
                v.at >= after
                    && v.observer == *o
                    && members
                        .iter()
                        .all(|m| v.statuses.get(m).map(String::as_str) == Some("up"))
            })?;
            latest = latest.max(first.at);
        }
        Some(latest)
    }

    /// Waits (bounded by [`LIMIT`]) until [`Observer::all_up`] holds.
    pub async fn wait_all_up(
        &self,
        observers: &[String],
        members: &[String],
        after: Instant,
    ) -> Instant {
        let found = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(at) = self.all_up(observers, members, after) {
                    return at;
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("{observers:?} never all saw {members:?} up"))
    }

    /// Every report of `down` about a member for which `allowed(observer,
    /// member)` says no: false Down verdicts.
    pub fn false_downs(&self, allowed: impl Fn(&str, &str) -> bool) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for v in self.views() {
            for (member, status) in &v.statuses {
                let pair = (v.observer.clone(), member.clone());
                if status == "down" && !allowed(&v.observer, member) && !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }

    /// How many times `observer`'s view of `member` changed status.
    pub fn changes(&self, observer: &str, member: &str) -> usize {
        let mut last: Option<String> = None;
        let mut n = 0;
        for v in self.views().iter().filter(|v| v.observer == observer) {
            let now = v.statuses.get(member).cloned();
            if last.is_some() && now != last {
                n += 1;
            }
            last = now;
        }
        n
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
