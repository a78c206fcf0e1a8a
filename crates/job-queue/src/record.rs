//! Job records: what a coordinator knows about each job it accepted, from
//! submission to its final result, and the retention that bounds them.
//!
//! A record is kept for every job a coordinator owns: while the job is
//! unfinished (never evicted), and after it is final for the retention
//! window (by age, and by total bytes, oldest finished first). The JSON
//! form is the one of `docs/jobs.md`, "Job records".

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use serde::{Deserialize, Serialize};

use crate::failure::FailureCause;
use crate::job::{Job, JobId, JobResult};

#[path = "record_query.rs"]
mod query;
#[path = "record_ring.rs"]
mod ring;
#[path = "record_table.rs"]
mod table;
pub use query::{FinishedSample, JobPage, JobQuery, MAX_SAMPLES};
use table::RecordTable;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, no attempt running: waiting for a node, or to retry.
    Queued,
    /// An attempt is running.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished without running: no node served its kind and tags.
    Failed,
    /// Failed for good (out of attempts, or a permanent error).
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Whether the job is final.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The final state a result means.
    pub fn of_result(result: &JobResult) -> JobState {
        match &result.error {
            None => JobState::Succeeded,
            Some(f) if f.cause == FailureCause::Cancelled => JobState::Cancelled,
            Some(_) if result.attempt == 0 => JobState::Failed,
            Some(_) => JobState::Dead,
        }
    }

    /// The `snake_case` name (`"queued"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// One attempt of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt number (1-based).
    pub attempt: u32,
    /// The node it was sent to.
    pub node: String,
    /// When it was dispatched (unix ms).
    pub started_ms: u64,
    /// When it ended (unix ms), once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<FailureCause>,
}

/// The latest progress report of a running job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// Fraction done, 0.0..=1.0.
    pub fraction: f32,
    /// The handler's note.
    pub note: String,
}

/// A job's record (see `docs/jobs.md`, "Job records").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// The node whose coordinator owns the job.
    pub owner: String,
    /// Where it is in its life.
    pub state: JobState,
    /// The running (or last) attempt; 0 only before the first dispatch.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When it was accepted (unix ms).
    pub submitted_ms: u64,
    /// When its first attempt was dispatched (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it became final (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Its attempts, in order.
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// The latest progress report, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressRecord>,
    /// The final result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
}

/// How long finished records are kept, and how many bytes of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) age: Duration,
    pub(crate) bytes: u64,
}

/// The current time in unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Finished entries by id, oldest first, bounded by a [`Retention`] (a
/// [`RecordTable`] that never holds a live entry).
#[derive(Debug)]
pub(crate) struct FinishedLog<V>(RecordTable<std::convert::Infallible, V>);

impl<V> Default for FinishedLog<V> {
    fn default() -> Self {
        FinishedLog(RecordTable::default())
    }
}

impl<V> FinishedLog<V> {
    /// Adds (or replaces) an entry finished at `finished_ms`.
    pub(crate) fn insert(&mut self, id: JobId, finished_ms: u64, bytes: usize, value: V) {
        self.0.insert_finished(id, finished_ms, bytes, value);
    }

    #[cfg(test)]
    pub(crate) fn get(&self, id: &JobId) -> Option<&V> {
        self.0.finished(id)
    }

    pub(crate) fn remove(&mut self, id: &JobId) -> Option<V> {
        self.0.remove_finished(id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.finished_len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.0.bytes()
    }

    /// Drops the oldest entries while over the byte budget or older than
    /// the age limit at `now_ms`; returns how many were dropped.
    pub(crate) fn evict(&mut self, now_ms: u64, retention: Retention) -> usize {
        self.0.evict(now_ms, retention)
    }

    /// Every entry's value, in no particular order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_finished_mut().map(|(_, value)| value)
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&JobId, &V)> {
        self.0.oldest_finished()
    }
}

/// What a coordinator keeps about a job that is not final yet.
#[derive(Debug)]
struct LiveRecord<W> {
    /// Who waits for the job's result (the coordinator actor's waiter):
    /// kept in the record, so that the job's end finds both in one place.
    waiter: Option<W>,
    kind: Arc<str>,
    max_attempts: u32,
    submitted_ms: u64,
    started_ms: Option<u64>,
    /// Usually one: kept inline.
    attempts: SmallVec<[LiveAttempt; 1]>,
}

/// An [`AttemptRecord`] of a live job; its node's name is shared with the
/// coordinator's node table.
#[derive(Clone, Debug)]
struct LiveAttempt {
    attempt: u32,
    node: Arc<str>,
    started_ms: u64,
    ended_ms: Option<u64>,
    cause: Option<FailureCause>,
}

impl LiveAttempt {
    fn to_record(&self) -> AttemptRecord {
        AttemptRecord {
            attempt: self.attempt,
            node: self.node.to_string(),
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            cause: self.cause,
        }
    }
}

/// The most bytes the encoding buffer of finished records keeps between
/// records.
const SCRATCH_KEPT: usize = 64 << 10;

/// Kinds interned for live records (at most this many; beyond, a kind gets
/// its own copy): kinds come from clients.
const MAX_INTERNED_KINDS: usize = 1024;

/// Every job record of one coordinator: the unfinished ones and the
/// finished ones within retention.
///
/// `W` is who waits for a job's result (see [`set_waiter`](Self::set_waiter)).
#[derive(Debug)]
pub(crate) struct Records<W = ()> {
    owner: String,
    /// One slot per job for its whole life: its live record (boxed, so
    /// that a slot stays small), then in place its finished record as one
    /// bincode blob ([`StoredOut`]): one allocation per job, decoded into
    /// a [`JobRecord`] (and rendered as JSON) only when someone asks.
    table: RecordTable<Box<LiveRecord<W>>, Box<[u8]>>,
    retention: Retention,
    /// Shared copies of the kinds seen (see [`MAX_INTERNED_KINDS`]).
    kinds: FxHashMap<Arc<str>, ()>,
    /// Where a finished record is encoded before its exact copy is kept
    /// (one pass of the encoder, no sizing pass; at most one record).
    scratch: Vec<u8>,
}

/// How a job in progress stands in the core (for a live record's view).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveStatus {
    pub(crate) attempt: u32,
    pub(crate) running: bool,
}

impl Records {
    /// Records without waiters.
    #[cfg(test)]
    pub(crate) fn new(owner: String, retention: Retention) -> Self {
        Records::with_waiters(owner, retention)
    }
}

impl<W> Records<W> {
    /// Records whose live jobs may each hold a waiter `W`.
    pub(crate) fn with_waiters(owner: String, retention: Retention) -> Self {
        Records {
            owner,
            table: RecordTable::default(),
            retention,
            kinds: FxHashMap::default(),
            scratch: Vec::new(),
        }
    }

    /// Whether the id is known (unfinished, or finished within retention).
    pub(crate) fn contains(&self, id: &JobId) -> bool {
        self.table.contains(id)
    }

    /// Whether the job is finished (and its record still kept).
    pub(crate) fn is_finished(&self, id: &JobId) -> bool {
        self.table.finished(id).is_some()
    }

    /// Whether the job is unfinished.
    pub(crate) fn is_live(&self, id: &JobId) -> bool {
        self.table.live(id).is_some()
    }

    /// The final record of a finished job, decoded from its stored form.
    pub(crate) fn finished(&self, id: &JobId) -> Option<JobRecord> {
        let blob = self.table.finished(id)?;
        match bincode::deserialize::<StoredIn>(blob) {
            Ok(stored) => Some(stored.into_record(id.clone(), self.owner.clone())),
            Err(err) => {
                // Only this module writes these bytes: a bug, not input.
                tracing::error!(%id, %err, "a stored job record does not decode");
                None
            }
        }
    }

    /// The stored form of a finished job's record (what the journal
    /// writes; [`insert_finished_blob`](Self::insert_finished_blob) reads
    /// it back).
    pub(crate) fn finished_blob(&self, id: &JobId) -> Option<&[u8]> {
        self.table.finished(id).map(|blob| &**blob)
    }

    /// A job was accepted.
    pub(crate) fn submitted(&mut self, job: &Job, now_ms: u64) {
        let kind = self.intern(&job.kind);
        self.submitted_parts(job.id.clone(), kind, job.max_attempts, now_ms);
    }

    /// A shared copy of `kind`.
    pub(crate) fn intern(&mut self, kind: &str) -> Arc<str> {
        if let Some((shared, ())) = self.kinds.get_key_value(kind) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(kind);
        if self.kinds.len() < MAX_INTERNED_KINDS {
            self.kinds.insert(Arc::clone(&shared), ());
        }
        shared
    }

    /// A job was accepted (its id, kind and attempts allowed).
    pub(crate) fn submitted_parts(
        &mut self,
        id: JobId,
        kind: Arc<str>,
        max_attempts: u32,
        now_ms: u64,
    ) {
        // Replaces a finished record of the same id (an explicit re-run);
        // a live one (not expected) keeps its waiter.
        let id_again = id.clone();
        let replaced = self.table.insert_live(
            id,
            Box::new(LiveRecord {
                waiter: None,
                kind,
                max_attempts,
                submitted_ms: now_ms,
                started_ms: None,
                attempts: SmallVec::new(),
            }),
        );
        if let Some(waiter) = replaced.and_then(|old| old.waiter) {
            if let Some(live) = self.table.live_mut(&id_again) {
                live.waiter = Some(waiter);
            }
        }
    }

    /// Makes `waiter` the one who waits for the unfinished job `id`
    /// (replacing an earlier one); hands it back if `id` is not unfinished.
    pub(crate) fn set_waiter(&mut self, id: &JobId, waiter: W) -> Result<(), W> {
        match self.table.live_mut(id) {
            Some(live) => {
                live.waiter = Some(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// Who waits for the unfinished job `id`.
    pub(crate) fn waiter(&self, id: &JobId) -> Option<&W> {
        self.table.live(id)?.waiter.as_ref()
    }

    /// Who waits for the unfinished job `id`, to change.
    pub(crate) fn waiter_mut(&mut self, id: &JobId) -> Option<&mut W> {
        self.table.live_mut(id)?.waiter.as_mut()
    }

    /// Takes the waiters of the unfinished jobs `lost` picks (their
    /// records stay).
    pub(crate) fn take_waiters(&mut self, mut lost: impl FnMut(&JobId) -> bool) -> Vec<(JobId, W)> {
        let mut taken = Vec::new();
        for (id, live) in self.table.iter_live_mut() {
            if lost(id) {
                if let Some(waiter) = live.waiter.take() {
                    taken.push((id.clone(), waiter));
                }
            }
        }
        taken
    }

    /// Forgets an unfinished job that was never accepted after all.
    pub(crate) fn forget_live(&mut self, id: &JobId) {
        self.table.remove_live(id);
    }

    /// Attempt `attempt` was sent to `node`. A refused dispatch is placed
    /// again under the same number: that attempt's node is replaced.
    pub(crate) fn attempt_started(
        &mut self,
        id: &JobId,
        attempt: u32,
        node: &Arc<str>,
        now_ms: u64,
    ) {
        let Some(live) = self.table.live_mut(id) else {
            return;
        };
        live.started_ms.get_or_insert(now_ms);
        if let Some(last) = live.attempts.last_mut() {
            if last.attempt == attempt {
                last.node = Arc::clone(node);
                last.started_ms = now_ms;
                return;
            }
            last.ended_ms.get_or_insert(now_ms);
        }
        live.attempts.push(LiveAttempt {
            attempt,
            node: Arc::clone(node),
            started_ms: now_ms,
            ended_ms: None,
            cause: None,
        });
    }

    /// Attempt `attempt` failed with `cause`.
    pub(crate) fn attempt_failed(
        &mut self,
        id: &JobId,
        attempt: u32,
        node: Option<&str>,
        cause: FailureCause,
        now_ms: u64,
    ) {
        let Some(live) = self.table.live_mut(id) else {
            return;
        };
        match live
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.attempt == attempt)
        {
            Some(a) => {
                a.ended_ms.get_or_insert(now_ms);
                a.cause = Some(cause);
            }
            // Failed before any dispatch (no eligible node on a retry).
            None => live.attempts.push(LiveAttempt {
                attempt,
                node: Arc::from(node.unwrap_or_default()),
                started_ms: now_ms,
                ended_ms: Some(now_ms),
                cause: Some(cause),
            }),
        }
    }

    /// The job is final: its record becomes a finished one (evicting the
    /// oldest beyond retention). Returns `None` if the job was not
    /// unfinished here, else its waiter, if it had one (its record is then
    /// [`finished`](Self::finished)).
    pub(crate) fn finish(&mut self, result: &JobResult, now_ms: u64) -> Option<Option<W>> {
        let scratch = &mut self.scratch;
        let finished = self.table.finish(&result.id, now_ms, |live| {
            let mut live = *live;
            if let Some(last) = live.attempts.last_mut() {
                last.ended_ms.get_or_insert(now_ms);
                if last.cause.is_none() {
                    last.cause = result.error.as_ref().map(|e| e.cause);
                }
            }
            let stored = StoredOut {
                kind: &live.kind,
                state: JobState::of_result(result),
                attempt: result.attempt,
                max_attempts: live.max_attempts,
                submitted_ms: live.submitted_ms,
                started_ms: live.started_ms,
                finished_ms: now_ms,
                attempts: StoredAttempts::Live(&live.attempts),
                result: Some(StoredResult::of(result)),
            };
            let kept = encode_stored(scratch, &result.id, &stored).map(|blob| {
                let bytes = stored_size(&blob, &result.id);
                (blob, bytes)
            });
            (kept, live.waiter)
        });
        self.table.evict(now_ms, self.retention);
        finished
    }

    /// Adds a finished record (e.g. read back from the journal).
    pub(crate) fn insert_finished(&mut self, record: JobRecord, now_ms: u64) {
        let finished_ms = record.finished_ms.unwrap_or(now_ms);
        let stored = StoredOut {
            kind: &record.kind,
            state: record.state,
            attempt: record.attempt,
            max_attempts: record.max_attempts,
            submitted_ms: record.submitted_ms,
            started_ms: record.started_ms,
            finished_ms,
            attempts: StoredAttempts::Records(&record.attempts),
            result: record.result.as_ref().map(StoredResult::of),
        };
        if let Some(blob) = encode_stored(&mut self.scratch, &record.id, &stored) {
            let bytes = stored_size(&blob, &record.id);
            // Replaces a live record of the same id.
            self.table
                .insert_finished(record.id.clone(), finished_ms, bytes, blob);
        }
        self.table.evict(now_ms, self.retention);
    }

    /// Adds a finished record in its stored form (a
    /// [`finished_blob`](Self::finished_blob) read back from the journal);
    /// returns false, keeping nothing, if `blob` does not decode.
    pub(crate) fn insert_finished_blob(
        &mut self,
        id: JobId,
        finished_ms: u64,
        blob: Box<[u8]>,
        now_ms: u64,
    ) -> bool {
        if bincode::deserialize::<StoredIn>(&blob).is_err() {
            return false;
        }
        let bytes = stored_size(&blob, &id);
        // Replaces a live record of the same id.
        self.table.insert_finished(id, finished_ms, bytes, blob);
        self.table.evict(now_ms, self.retention);
        true
    }

    /// Drops a finished record (an explicit re-run); returns whether there
    /// was one.
    pub(crate) fn forget_finished(&mut self, id: &JobId) -> bool {
        self.table.remove_finished(id).is_some()
    }

    /// Drops records past the age limit.
    pub(crate) fn expire(&mut self, now_ms: u64) -> usize {
        self.table.evict(now_ms, self.retention)
    }

    /// The record of `id`: a finished one as kept, an unfinished one built
    /// from what the core says (`status`; `None` while the job waits
    /// outside the core, e.g. resumed and waiting for an eligible node).
    pub(crate) fn view(
        &self,
        id: &JobId,
        status: Option<LiveStatus>,
        progress: Option<ProgressRecord>,
    ) -> Option<JobRecord> {
        if self.is_finished(id) {
            return self.finished(id);
        }
        let live = self.table.live(id)?;
        let (attempt, running) = status.map_or((0, false), |s| (s.attempt, s.running));
        Some(JobRecord {
            id: id.clone(),
            kind: live.kind.to_string(),
            owner: self.owner.clone(),
            state: if running {
                JobState::Running
            } else {
                JobState::Queued
            },
            attempt: attempt.max(live.attempts.last().map_or(0, |a| a.attempt)),
            max_attempts: live.max_attempts,
            submitted_ms: live.submitted_ms,
            started_ms: live.started_ms,
            finished_ms: None,
            attempts: live.attempts.iter().map(LiveAttempt::to_record).collect(),
            progress: progress.filter(|_| running),
            result: None,
        })
    }

    /// Unfinished and finished records held, and the finished ones' bytes.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize, u64) {
        (
            self.table.live_len(),
            self.table.finished_len(),
            self.table.bytes(),
        )
    }
}

/// Encodes a finished record once into `scratch`, then copies it into one
/// exact allocation (`bincode::serialize` walks a record twice: once to
/// size it, once to write it).
fn encode_stored(scratch: &mut Vec<u8>, id: &JobId, stored: &StoredOut<'_>) -> Option<Box<[u8]>> {
    scratch.clear();
    if let Err(err) = bincode::serialize_into(&mut *scratch, stored) {
        tracing::error!(%id, %err, "a job record does not encode");
        return None;
    }
    let blob: Box<[u8]> = Box::from(scratch.as_slice());
    // A record with a huge result does not pin its buffer.
    if scratch.capacity() > SCRATCH_KEPT {
        *scratch = Vec::new();
    }
    Some(blob)
}

/// What a finished record costs in memory: its blob (as the allocator
/// rounds it), its slot in the records' ring (which holds the blob's
/// pointer and the id's), its index entry with the index's spare room,
/// and the id's own allocation.
fn stored_size(blob: &[u8], id: &JobId) -> usize {
    const SLOT: usize = 56;
    const INDEX: usize = 16;
    /// An `Arc<str>`'s two counts.
    const ARC: usize = 16;
    blob.len().next_multiple_of(16) + SLOT + INDEX + (ARC + id.as_str().len()).next_multiple_of(16)
}

/// The stored form of a finished record (bincode: every field always
/// written, in order). The journal writes it as is (record kind 9 of
/// `service/journal.rs`, `docs/jobs.md`, "Durability"): a change to this
/// layout or to its parts needs a new blob version there, and a reader
/// of the old one. The id is the map's key and the owner the
/// coordinator's name, so neither is stored.
#[derive(Serialize)]
struct StoredOut<'a> {
    kind: &'a str,
    state: JobState,
    attempt: u32,
    max_attempts: u32,
    submitted_ms: u64,
    started_ms: Option<u64>,
    finished_ms: u64,
    attempts: StoredAttempts<'a>,
    result: Option<StoredResult<'a>>,
}

/// The attempts as a sequence of tuples (the JSON form's optional fields
/// would not survive bincode).
enum StoredAttempts<'a> {
    Live(&'a [LiveAttempt]),
    Records(&'a [AttemptRecord]),
}

impl Serialize for StoredAttempts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredAttempts::Live(attempts) => serializer.collect_seq(
                attempts
                    .iter()
                    .map(|a| (a.attempt, &*a.node, a.started_ms, a.ended_ms, a.cause)),
            ),
            StoredAttempts::Records(attempts) => serializer.collect_seq(attempts.iter().map(|a| {
                (
                    a.attempt,
                    a.node.as_str(),
                    a.started_ms,
                    a.ended_ms,
                    a.cause,
                )
            })),
        }
    }
}

#[derive(Serialize)]
struct StoredResult<'a> {
    result: Option<&'a str>,
    error: Option<&'a crate::failure::JobFailure>,
    worker_node: &'a str,
    attempt: u32,
    elapsed: Duration,
}

impl<'a> StoredResult<'a> {
    fn of(result: &'a JobResult) -> Self {
        StoredResult {
            result: result.result.as_deref(),
            error: result.error.as_ref(),
            worker_node: &result.worker_node,
            attempt: result.attempt,
            elapsed: result.elapsed,
        }
    }
}

type StoredAttemptIn = (u32, String, u64, Option<u64>, Option<FailureCause>);

/// The leading fields of a stored finished record, borrowed from its blob:
/// what a search filters on, decoded without an allocation (bincode's
/// top-level functions allow the trailing fields).
#[derive(Deserialize)]
pub(crate) struct StoredHead<'a> {
    #[serde(borrow)]
    pub(crate) kind: &'a str,
    pub(crate) state: JobState,
    _attempt: u32,
    _max_attempts: u32,
    pub(crate) submitted_ms: u64,
    _started_ms: Option<u64>,
    _finished_ms: u64,
}

/// A stored attempt, its node borrowed.
pub(crate) type StoredAttemptRef<'a> = (u32, &'a str, u64, Option<u64>, Option<FailureCause>);

/// [`StoredHead`] and the attempts' nodes (for a search by node).
#[derive(Deserialize)]
pub(crate) struct StoredHeadNodes<'a> {
    #[serde(borrow)]
    _head: StoredHead<'a>,
    #[serde(borrow)]
    pub(crate) attempts: Vec<StoredAttemptRef<'a>>,
}

/// Decodes the stored form of a finished record (the whole of it).
pub(crate) fn decode_stored(blob: &[u8]) -> Option<StoredSummary> {
    let StoredIn {
        kind,
        state,
        result,
        ..
    } = bincode::deserialize(blob).ok()?;
    let (node, elapsed) = result.map_or((String::new(), Duration::ZERO), |r| {
        (r.worker_node, r.elapsed)
    });
    Some(StoredSummary {
        kind,
        node,
        elapsed,
        state,
    })
}

/// What live charts need of a finished record.
pub(crate) struct StoredSummary {
    pub(crate) kind: String,
    pub(crate) node: String,
    pub(crate) elapsed: Duration,
    pub(crate) state: JobState,
}

#[derive(Deserialize)]
struct StoredIn {
    kind: String,
    state: JobState,
    attempt: u32,
    max_attempts: u32,
    submitted_ms: u64,
    started_ms: Option<u64>,
    finished_ms: u64,
    attempts: Vec<StoredAttemptIn>,
    result: Option<StoredResultIn>,
}

#[derive(Deserialize)]
struct StoredResultIn {
    result: Option<String>,
    error: Option<crate::failure::JobFailure>,
    worker_node: String,
    attempt: u32,
    elapsed: Duration,
}

impl StoredIn {
    fn into_record(self, id: JobId, owner: String) -> JobRecord {
        let result = self.result.map(|r| JobResult {
            id: id.clone(),
            result: r.result,
            error: r.error,
            worker_node: r.worker_node,
            attempt: r.attempt,
            elapsed: r.elapsed,
        });
        let attempts = self
            .attempts
            .into_iter()
            .map(
                |(attempt, node, started_ms, ended_ms, cause)| AttemptRecord {
                    attempt,
                    node,
                    started_ms,
                    ended_ms,
                    cause,
                },
            )
            .collect();
        JobRecord {
            id,
            kind: self.kind,
            owner,
            state: self.state,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            submitted_ms: self.submitted_ms,
            started_ms: self.started_ms,
            finished_ms: Some(self.finished_ms),
            attempts,
            progress: None,
            result,
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
