//! Searching a coordinator's job records: one page of the records that
//! match a [`JobQuery`] (newest submission first), and the samples of the
//! jobs finished within a window (for live throughput and latency).
//!
//! Both are bounded whatever the number of records: a page holds at most
//! [`JobQuery::MAX_LIMIT`] records and skips at most
//! [`JobQuery::MAX_OFFSET`]; a sample batch holds at most the caller's
//! limit, itself at most [`MAX_SAMPLES`]. A search scans every record
//! (the retention bounds how many there are) without cloning any but the
//! page's.

use serde::{Deserialize, Serialize};

use super::{decode_stored, JobRecord, JobState, LiveStatus, Records, StoredHead, StoredHeadNodes};
use crate::job::JobId;

/// Most samples one [`Coordinator::finished_between`](crate::Coordinator::finished_between) returns.
pub const MAX_SAMPLES: usize = 50_000;

/// Which records to list, and which page of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Ids containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Jobs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Jobs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Jobs with an attempt on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Matches to skip (clamped to [`MAX_OFFSET`](Self::MAX_OFFSET)).
    #[serde(default)]
    pub offset: usize,
    /// Records to return (clamped to 1..=[`MAX_LIMIT`](Self::MAX_LIMIT)).
    #[serde(default)]
    pub limit: usize,
}

impl JobQuery {
    /// The largest page.
    pub const MAX_LIMIT: usize = 500;
    /// The deepest page start.
    pub const MAX_OFFSET: usize = 1_000_000;

    /// Whether a record matches: `on_node` tells whether the job had an
    /// attempt on a node (asked only when the query names one).
    fn matches(
        &self,
        id: &JobId,
        kind: &str,
        state: JobState,
        on_node: impl FnOnce(&str) -> bool,
    ) -> bool {
        self.state.is_none_or(|s| s == state)
            && self.kind.as_deref().is_none_or(|k| k == kind)
            && self.id.as_deref().is_none_or(|t| id.as_str().contains(t))
            && self.node.as_deref().is_none_or(on_node)
    }
}

/// One page of a search.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// How many records match.
    pub total: usize,
    /// Where this page starts among them.
    pub offset: usize,
    /// The page's records, newest submission first.
    pub jobs: Vec<JobRecord>,
}

/// A job that finished: what live charts need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishedSample {
    /// Its kind.
    pub kind: String,
    /// The node of its final attempt (empty if it never ran).
    pub node: String,
    /// When it became final (unix ms).
    pub finished_ms: u64,
    /// The final attempt's processing time, in milliseconds.
    pub elapsed_ms: f64,
    /// Whether it succeeded.
    pub succeeded: bool,
}

impl<W> Records<W> {
    /// The page of records matching `query`, newest submission first
    /// (ties by id). `status` tells how an unfinished job stands.
    pub(crate) fn search(
        &self,
        query: &JobQuery,
        status: impl Fn(&JobId) -> Option<LiveStatus>,
    ) -> JobPage {
        let mut hits: Vec<(u64, &JobId)> = Vec::new();
        for (id, live) in self.table.iter_live() {
            // The core is asked only when the state filter needs it.
            let running = query.state.is_some() && status(id).is_some_and(|s| s.running);
            let state = if running {
                JobState::Running
            } else {
                JobState::Queued
            };
            let on_node = |n: &str| live.attempts.iter().any(|a| &*a.node == n);
            if query.matches(id, &live.kind, state, on_node) {
                hits.push((live.submitted_ms, id));
            }
        }
        // The finished map itself, in no order: no lookup per entry, and of
        // each stored record only the leading fields, borrowed (the nodes
        // of its attempts only for a search by node).
        for (id, blob) in self.table.iter_finished() {
            let Ok(head) = bincode::deserialize::<StoredHead<'_>>(blob) else {
                continue;
            };
            let on_node = |n: &str| {
                bincode::deserialize::<StoredHeadNodes<'_>>(blob)
                    .is_ok_and(|h| h.attempts.iter().any(|a| a.1 == n))
            };
            if query.matches(id, head.kind, head.state, on_node) {
                hits.push((head.submitted_ms, id));
            }
        }
        let total = hits.len();
        let offset = query.offset.min(JobQuery::MAX_OFFSET).min(total);
        let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
        let end = (offset + limit).min(total);
        let newest_first = |a: &(u64, &JobId), b: &(u64, &JobId)| b.cmp(a);
        if end < total {
            // Only the first `end` need ordering.
            hits.select_nth_unstable_by(end, newest_first);
            hits.truncate(end);
        }
        hits.sort_unstable_by(newest_first);
        let jobs = hits[offset..]
            .iter()
            .filter_map(|(_, id)| self.view(id, status(id), None))
            .collect();
        JobPage {
            total,
            offset,
            jobs,
        }
    }

    /// The jobs finished after `after_ms` and at or before `until_ms`
    /// (unix ms), newest first, at most `limit` (itself at most
    /// [`MAX_SAMPLES`]). Walks back from the newest finished record and
    /// stops at the first one at or before `after_ms`.
    pub(crate) fn finished_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Vec<FinishedSample> {
        let limit = limit.min(MAX_SAMPLES);
        self.table
            .newest_finished()
            .skip_while(|(finished_ms, _)| *finished_ms > until_ms)
            .take_while(|(finished_ms, _)| *finished_ms > after_ms)
            .take(limit)
            .filter_map(|(finished_ms, blob)| {
                let stored = decode_stored(blob)?;
                Some(FinishedSample {
                    kind: stored.kind,
                    node: stored.node,
                    finished_ms,
                    elapsed_ms: stored.elapsed.as_micros() as f64 / 1e3,
                    succeeded: stored.state == JobState::Succeeded,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::job::{Job, JobResult};
    use crate::record::Retention;

    fn records() -> Records {
        Records::new(
            "node-a".into(),
            Retention {
                age: Duration::from_secs(3600),
                bytes: u64::MAX,
            },
        )
    }

    fn job(id: &str, kind: &str) -> Job {
        Job::new(kind, "x").with_id(JobId::new(id).unwrap())
    }

    /// 100,000 records (a quarter unfinished): every filter, pages in
    /// order without overlap, bounded pages.
    #[test]
    fn a_hundred_thousand_records_page_by_filter() {
        let mut r = records();
        for i in 0..100_000u64 {
            let kind = if i % 2 == 0 { "echo" } else { "sleep" };
            let j = job(&format!("job-{i:06}"), kind);
            r.submitted(&j, 1_000 + i);
            let node = if i % 3 == 0 { "node-b" } else { "node-c" };
            r.attempt_started(&j.id, 1, &node.into(), 1_000 + i);
            if i % 4 != 0 {
                let result = JobResult::success(j.id.clone(), "ok", node, 1, Duration::ZERO);
                r.finish(&result, 2_000 + i);
            }
        }
        let running = |_: &JobId| {
            Some(LiveStatus {
                attempt: 1,
                running: true,
            })
        };
        let all = r.search(
            &JobQuery {
                limit: 50,
                ..JobQuery::default()
            },
            running,
        );
        assert_eq!(all.total, 100_000);
        assert_eq!(all.jobs.len(), 50);
        assert_eq!(all.jobs[0].id.as_str(), "job-099999");
        assert_eq!(all.jobs[49].id.as_str(), "job-099950");

        let next = r.search(
            &JobQuery {
                offset: 50,
                limit: 50,
                ..JobQuery::default()
            },
            running,
        );
        assert_eq!(next.jobs[0].id.as_str(), "job-099949");

        let query = JobQuery {
            state: Some(JobState::Running),
            kind: Some("echo".into()),
            node: Some("node-b".into()),
            limit: 10_000,
            ..JobQuery::default()
        };
        let page = r.search(&query, running);
        // i % 4 == 0 (unfinished, even: echo) and i % 3 == 0: i % 12 == 0.
        assert_eq!(page.total, 100_000 / 12 + 1);
        assert_eq!(page.jobs.len(), JobQuery::MAX_LIMIT);
        assert!(page.jobs.iter().all(|j| j.state == JobState::Running
            && j.kind == "echo"
            && j.attempts[0].node == "node-b"));

        let by_id = r.search(
            &JobQuery {
                id: Some("-04242".into()),
                limit: 100,
                ..JobQuery::default()
            },
            running,
        );
        assert_eq!(by_id.total, 10);
        assert_eq!(by_id.jobs[0].id.as_str(), "job-042429");
        assert_eq!(by_id.jobs[9].id.as_str(), "job-042420");

        let beyond = r.search(
            &JobQuery {
                offset: 200_000,
                limit: 10,
                ..JobQuery::default()
            },
            running,
        );
        assert_eq!(
            (beyond.total, beyond.offset, beyond.jobs.len()),
            (100_000, 100_000, 0)
        );
    }

    #[test]
    fn finished_between_walks_back_to_the_moment() {
        let mut r = records();
        for i in 0..1_000u64 {
            let j = job(&format!("j-{i}"), "echo");
            r.submitted(&j, i);
            let result =
                JobResult::success(j.id.clone(), "ok", "node-b", 1, Duration::from_millis(2));
            r.finish(&result, 10_000 + i);
        }
        let recent = r.finished_between(10_989, 10_998, 100);
        assert_eq!(recent.len(), 9);
        assert_eq!(recent[0].finished_ms, 10_998);
        assert_eq!(recent[8].finished_ms, 10_990);
        assert!(recent.iter().all(|s| s.succeeded && s.node == "node-b"));
        assert!((recent[0].elapsed_ms - 2.0).abs() < 1e-9);
        assert_eq!(r.finished_between(0, u64::MAX, 7).len(), 7);
    }
}
