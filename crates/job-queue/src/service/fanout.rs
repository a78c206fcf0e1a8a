//! Cluster-wide `get` and `cancel`: a coordinator that does not know some
//! ids asks every other Up coordinator once, at the same time, bounded by a
//! timeout, with `{"cmd":"get"|"cancel","ids":[..],"local":true}` (`local`:
//! answer from your own records, do not ask further).

use std::time::Duration;

use bytes::Bytes;
use cluster_router::{ActorAddr, ActorName, EnvelopeKind, MemberStatus, PayloadFormat, Router};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::COORDINATOR;
use crate::job::JobId;
use crate::record::JobRecord;

/// Most ids in one `get`, `cancel` or `attach`.
pub const MAX_IDS: usize = 1_000;
/// Most cluster-wide queries one coordinator runs at a time.
pub(super) const MAX_FANOUTS: usize = 32;

/// The answer to `get`: the records found and the ids nobody knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// The records found, in the order asked (local ones first).
    pub records: Vec<JobRecord>,
    /// Ids no coordinator that answered knows.
    pub unknown: Vec<JobId>,
}

impl Lookup {
    /// Adds what other coordinators found for this lookup's unknown ids.
    pub(super) fn merge(&mut self, remote: Lookup) {
        self.unknown
            .retain(|id| !remote.records.iter().any(|r| &r.id == id));
        self.records.extend(remote.records);
    }
}

/// The answer to `cancel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReport {
    /// Jobs that were cancelled now.
    pub cancelled: Vec<JobId>,
    /// Jobs that were final already (their result stands).
    #[serde(rename = "final")]
    pub already_final: Vec<JobId>,
    /// Ids nobody knows.
    pub unknown: Vec<JobId>,
}

impl CancelReport {
    /// Adds what other coordinators did with this report's unknown ids.
    pub(super) fn merge(&mut self, remote: CancelReport) {
        let known = |id: &JobId| remote.cancelled.contains(id) || remote.already_final.contains(id);
        self.unknown.retain(|id| !known(id));
        self.cancelled.extend(remote.cancelled);
        self.already_final.extend(remote.already_final);
    }
}

#[derive(Serialize)]
struct LocalQuery<'a> {
    cmd: &'a str,
    ids: &'a [JobId],
    local: bool,
}

/// Asks every other Up coordinator for the records of `ids`.
pub(super) async fn get(router: &Router, ids: &[JobId], timeout: Duration) -> Lookup {
    let answers: Vec<Lookup> = ask_all(router, "get", ids, timeout).await;
    let mut found = Lookup::default();
    for answer in answers {
        for record in answer.records {
            let wanted = ids.contains(&record.id);
            if wanted && !found.records.iter().any(|r| r.id == record.id) {
                found.records.push(record);
            }
        }
    }
    found.unknown = ids
        .iter()
        .filter(|id| !found.records.iter().any(|r| &r.id == *id))
        .cloned()
        .collect();
    found
}

/// Asks every other Up coordinator to cancel `ids`.
pub(super) async fn cancel(router: &Router, ids: &[JobId], timeout: Duration) -> CancelReport {
    let answers: Vec<CancelReport> = ask_all(router, "cancel", ids, timeout).await;
    let mut report = CancelReport::default();
    for answer in answers {
        for id in answer.cancelled {
            if ids.contains(&id) && !report.cancelled.contains(&id) {
                report.cancelled.push(id);
            }
        }
        for id in answer.already_final {
            if ids.contains(&id) && !report.already_final.contains(&id) {
                report.already_final.push(id);
            }
        }
    }
    report.unknown = ids
        .iter()
        .filter(|id| !report.cancelled.contains(id) && !report.already_final.contains(id))
        .cloned()
        .collect();
    report
}

/// Sends one local query to every other Up coordinator at once and
/// collects the answers that arrive within `timeout` and decode.
async fn ask_all<T: for<'de> Deserialize<'de>>(
    router: &Router,
    cmd: &str,
    ids: &[JobId],
    timeout: Duration,
) -> Vec<T> {
    if ids.is_empty() {
        return Vec::new();
    }
    let query = LocalQuery {
        cmd,
        ids,
        local: true,
    };
    let Ok(payload) = serde_json::to_vec(&query) else {
        return Vec::new();
    };
    let payload = Bytes::from(payload);
    let Ok(name) = ActorName::new(COORDINATOR) else {
        return Vec::new();
    };
    let me = router.node_id().clone();
    let peers = router
        .members()
        .into_iter()
        .filter(|m| m.status == MemberStatus::Up && m.node != me);
    let asks = peers.map(|member| {
        let to = ActorAddr::new(name.clone(), member.node.clone());
        let payload = payload.clone();
        async move {
            let answer = router
                .request(to, PayloadFormat::Json, payload, timeout)
                .await;
            match answer {
                Ok(env) if env.kind == EnvelopeKind::Message => env.payload_json::<T>().ok(),
                Ok(env) => {
                    tracing::debug!(from = %env.from, kind = ?env.kind, "cluster query refused");
                    None
                }
                Err(err) => {
                    tracing::debug!(node = %member.node, %err, "cluster query unanswered");
                    None
                }
            }
        }
    });
    join_all(asks).await.into_iter().flatten().collect()
}
