//! `{"cmd":"submit_batch","jobs":[..]}`: many jobs in one client frame.
//!
//! Each job is taken or refused on its own, as a single submission would
//! be: an undecodable or invalid job, a full coordinator or a draining one
//! refuses that job (with its position and, when known, its id); a known id
//! (also one repeated inside the batch) waits for its job instead of running
//! it again. Accepted jobs are journaled like single submissions.
//!
//! Answers do not go out one per job: every result or refusal of a batch
//! known during one run of the coordinator's mailbox is gathered here and
//! leaves at the end of that run's flush as ONE envelope,
//! `{"results":[JobResult..],"refused":[{"index":..,"id":..,"reason":..}]}`,
//! correlated with the batch's envelope (split only past
//! [`MAX_REPLY_BYTES`]). Every entry of a batch is answered exactly once,
//! so a client knows a batch is done when it has counted as many results
//! and refusals as it sent jobs.

use std::time::Instant;

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, MessageId, PayloadFormat};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{Shell, Waiter};
use crate::job::{IdSet, Job, JobId, JobResult};
use crate::mapreduce::{engine_kind_refusal, is_engine_kind};

/// Results and refusals of one batch past this many bytes leave at once
/// (more envelopes for that batch, each well under the frame limit).
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Answers to batches gathered during one mailbox run, sent by the flush.
#[derive(Default)]
pub(in crate::service) struct BatchReplies {
    pending: FxHashMap<MessageId, BatchReply>,
}

/// What one batch gets in its next answer.
struct BatchReply {
    to: ActorAddr,
    /// The answer's start, then `JobResult` JSON objects, comma-separated
    /// (the answer is finished in place: no copy of the results).
    results: Vec<u8>,
    /// Refusal JSON objects, comma-separated.
    refused: Vec<u8>,
}

/// How every batch answer starts.
const RESULTS_START: &[u8] = b"{\"results\":[";

impl BatchReply {
    fn new(to: &ActorAddr) -> Self {
        BatchReply {
            to: to.clone(),
            results: RESULTS_START.to_vec(),
            refused: Vec::new(),
        }
    }

    fn has_results(&self) -> bool {
        self.results.len() > RESULTS_START.len()
    }

    fn payload(self) -> Bytes {
        let mut out = self.results;
        out.reserve(self.refused.len() + 16);
        out.extend_from_slice(b"],\"refused\":[");
        out.extend_from_slice(&self.refused);
        out.extend_from_slice(b"]}");
        Bytes::from(out)
    }

    fn bytes(&self) -> usize {
        self.results.len() - RESULTS_START.len() + self.refused.len()
    }
}

/// One refused entry of a batch.
#[derive(Serialize)]
struct Refusal<'a> {
    /// Its position in the batch (from 0); unknown for a job lost later.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    reason: &'a str,
}

impl BatchReplies {
    fn entry(&mut self, to: &ActorAddr, request: MessageId) -> &mut BatchReply {
        self.pending
            .entry(request)
            .or_insert_with(|| BatchReply::new(to))
    }

    /// Makes sure the batch `request` gets an answer at the next flush
    /// (an empty batch is answered too).
    fn open(&mut self, to: &ActorAddr, request: MessageId) {
        self.entry(to, request);
    }

    /// Adds a result; returns a full answer to send now.
    fn result(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        result: &JobResult,
    ) -> Option<(MessageId, BatchReply)> {
        let entry = self.entry(to, request);
        if entry.has_results() {
            entry.results.push(b',');
        }
        result.append_json(&mut entry.results);
        self.take_if_full(request)
    }

    /// Adds a refusal; returns a full answer to send now.
    fn refused(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        refusal: &Refusal<'_>,
    ) -> Option<(MessageId, BatchReply)> {
        let entry = self.entry(to, request);
        if !entry.refused.is_empty() {
            entry.refused.push(b',');
        }
        // Cannot fail: plain strings and a number.
        let _ = serde_json::to_writer(&mut entry.refused, refusal);
        self.take_if_full(request)
    }

    fn take_if_full(&mut self, request: MessageId) -> Option<(MessageId, BatchReply)> {
        let full = self
            .pending
            .get(&request)
            .is_some_and(|reply| reply.bytes() >= MAX_REPLY_BYTES);
        full.then(|| self.pending.remove(&request).map(|r| (request, r)))
            .flatten()
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn drain(&mut self) -> impl Iterator<Item = (MessageId, BatchReply)> + '_ {
        self.pending.drain()
    }
}

impl Shell {
    /// `{"cmd":"submit_batch","jobs":[..]}` from `env` (already bounded by
    /// [`MAX_BATCH_JOBS`](super::super::MAX_BATCH_JOBS)).
    pub(super) fn on_submit_batch(&mut self, env: &Envelope, jobs: Vec<&RawValue>, now: Instant) {
        let (to, request) = (env.from.clone(), env.id);
        let from_client = env.sent_by_client();
        self.batch_replies.open(&to, request);
        let mut fresh: Vec<(usize, Job)> = Vec::with_capacity(jobs.len());
        // Jobs whose id came earlier in this batch: handled after the
        // earlier one, as if submitted after it.
        let mut repeated: Vec<(usize, Job)> = Vec::new();
        let mut seen = IdSet::with_capacity_and_hasher(jobs.len(), Default::default());
        for (index, raw) in jobs.into_iter().enumerate() {
            let job = match Job::from_json(raw.get()) {
                Ok(job) => job,
                Err(err) => {
                    let id = id_of(raw);
                    let reason = format!("cannot decode job: {err}");
                    self.refuse_in_batch(&to, request, index, id.as_deref(), &reason);
                    continue;
                }
            };
            if from_client && is_engine_kind(&job.kind) {
                let reason = engine_kind_refusal(&job.kind);
                let id = (!job.id.is_unassigned()).then(|| job.id.as_str());
                self.refuse_in_batch(&to, request, index, id, &reason);
                continue;
            }
            if job.id.is_unassigned() {
                fresh.push((index, job));
            } else if self.records.contains(&job.id) {
                self.wait_in_batch(&to, request, index, job.id);
            } else if seen.insert(job.id.clone()) {
                fresh.push((index, job));
            } else {
                repeated.push((index, job));
            }
        }
        self.take_fresh(&to, request, fresh, now);
        for (index, job) in repeated {
            if self.records.contains(&job.id) {
                self.wait_in_batch(&to, request, index, job.id);
            } else {
                self.take_one(&to, request, index, job, now);
            }
        }
    }

    /// Accepts `fresh` (no known or repeated ids): all at once when every
    /// one can be taken, else one by one, each refused on its own.
    fn take_fresh(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        fresh: Vec<(usize, Job)>,
        now: Instant,
    ) {
        if fresh.is_empty() {
            return;
        }
        let room = self
            .core
            .config()
            .max_jobs
            .saturating_sub(self.core.in_progress());
        let all_fit = !self.core.is_draining()
            && fresh.len() <= room
            && fresh.iter().all(|(_, job)| job.validate().is_ok());
        if !all_fit {
            for (index, job) in fresh {
                self.take_one(to, request, index, job, now);
            }
            return;
        }
        let (indexes, jobs): (Vec<usize>, Vec<Job>) = fresh.into_iter().unzip();
        match self.submit_batch_fresh(jobs, now) {
            Ok(ids) => {
                for id in ids {
                    self.journal_submit(&id);
                    self.wait_for(id, batch_waiter(to, request));
                }
            }
            Err(err) => {
                // Not expected (every check was made): refuse them all.
                let reason = err.to_string();
                for index in indexes {
                    self.refuse_in_batch(to, request, index, None, &reason);
                }
            }
        }
    }

    fn take_one(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        index: usize,
        job: Job,
        now: Instant,
    ) {
        let id = (!job.id.is_unassigned()).then(|| job.id.to_string());
        match self.submit_fresh(job, now) {
            Ok(id) => {
                self.journal_submit(&id);
                self.wait_for(id, batch_waiter(to, request));
            }
            Err(err) => {
                self.refuse_in_batch(to, request, index, id.as_deref(), &err.to_string());
            }
        }
    }

    /// A known id in a batch: its entry is answered with that job's result.
    fn wait_in_batch(&mut self, to: &ActorAddr, request: MessageId, index: usize, id: JobId) {
        let name = id.to_string();
        if !self.add_waiter(&id, batch_waiter(to, request)) {
            let reason = "coordinator holds too many waiters; retry later";
            self.refuse_in_batch(to, request, index, Some(&name), reason);
        }
    }

    fn refuse_in_batch(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        index: usize,
        id: Option<&str>,
        reason: &str,
    ) {
        let refusal = Refusal {
            index: Some(index),
            id,
            reason,
        };
        if let Some(full) = self.batch_replies.refused(to, request, &refusal) {
            self.send_batch_reply(full);
        }
    }

    /// A final result for an entry of a batch.
    pub(super) fn deliver_in_batch(
        &mut self,
        to: &ActorAddr,
        request: MessageId,
        result: &JobResult,
    ) {
        if let Some(full) = self.batch_replies.result(to, request, result) {
            self.send_batch_reply(full);
        }
    }

    /// A job of a batch lost in a restart (its submission never reached the
    /// journal): its entry is refused.
    pub(super) fn lost_in_batch(&mut self, to: &ActorAddr, request: MessageId, id: &JobId) {
        let name = id.to_string();
        let reason = "coordinator restarted and lost the job";
        let refusal = Refusal {
            index: None,
            id: Some(&name),
            reason,
        };
        if let Some(full) = self.batch_replies.refused(to, request, &refusal) {
            self.send_batch_reply(full);
        }
    }

    /// Sends every batch answer gathered since the last flush.
    pub(super) fn send_batch_replies(&mut self) {
        if self.batch_replies.is_empty() {
            return;
        }
        let replies: Vec<_> = self.batch_replies.drain().collect();
        for reply in replies {
            self.send_batch_reply(reply);
        }
    }

    fn send_batch_reply(&mut self, (request, reply): (MessageId, BatchReply)) {
        let to = reply.to.clone();
        let mut env = Envelope::new(to, self.me.clone(), PayloadFormat::Json, reply.payload());
        env.correlation_id = Some(request);
        // Results and refusals as this node serialized them (a result's
        // output is a JSON string in it): valid, and a few levels deep.
        self.send_own_json(env);
    }
}

fn batch_waiter(to: &ActorAddr, request: MessageId) -> Waiter {
    Waiter::Batch {
        to: to.clone(),
        request,
    }
}

/// The `id` of a job that could not be decoded, if it has a string one
/// short enough to be an id (a longer one is not echoed back: the index
/// names the entry).
fn id_of(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    let id = serde_json::from_str::<IdOnly>(raw.get()).ok()?.id?;
    (id.len() <= JobId::MAX_LEN).then_some(id)
}
