//! The coordinator's journal: an append-only file of records, one per
//! accepted job (`Submit`, the job's bincode form) and one per finished job
//! (`Complete`, its id), written by a dedicated thread; also the finished
//! jobs' records, the recurring jobs and the dead letters.
//!
//! Record layout: `len: u32 LE` (of kind + body), `crc32: u32 LE` (of kind +
//! body), `kind: u8`, body. Replay stops at the first torn or corrupt record
//! (a crash mid-write) and drops the rest.
//!
//! Fsync policy (group commit): the thread takes every batch waiting for it,
//! writes them with one `write`, and calls `fsync` (`sync_data`) once if any
//! of them holds a `Submit`; only then are those submissions acknowledged.
//! `Complete` records are written but not fsynced on their own: after a
//! power loss (not a process crash) the last completions may be lost and
//! those jobs run again. When the file exceeds 4 MiB and four times the
//! live records, it is compacted: the unfinished jobs are written to a new
//! file that atomically replaces it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::recurring::RecurringJob;
use super::{Accepted, AcceptedMany};
use crate::coordinator::{AttemptFailure, DeadLetter};
use crate::error::SubmitError;
use crate::job::{IdMap, Job, JobId};
use crate::record::{now_ms, FinishedLog, JobRecord, Retention};

/// The journal's file name inside the data directory.
pub(super) const FILE_NAME: &str = "jobs.journal";
const COMPACT_MIN_BYTES: u64 = 4 << 20;
const MAX_RECORD: usize = 64 << 20;
const HEADER: usize = 8;

const KIND_SUBMIT: u8 = 1;
const KIND_COMPLETE: u8 = 2;
const KIND_ID_FLOOR: u8 = 3;
const KIND_FINISHED: u8 = 4;
/// A recurring job added or replaced: its JSON form (`RecurringJob`).
const KIND_RECURRING: u8 = 5;
/// A recurring job removed: its name.
const KIND_UNRECURRING: u8 = 6;
/// A job dead-lettered: see [`encode_dead_letter`].
const KIND_DEAD: u8 = 7;
/// A dead letter removed (resubmitted, discarded or evicted): its id.
const KIND_UNDEAD: u8 = 8;

/// One journal entry.
#[derive(Debug)]
pub(super) enum Record {
    /// A job was accepted (its bincode form).
    Submit(JobId, Vec<u8>),
    /// A job finished (no record kept: a resumed job refused at resume).
    Complete(JobId),
    /// A job finished: its record (JSON), kept within retention.
    Finished(JobId, u64, Vec<u8>),
    /// A recurring job was added or replaced (its name, its JSON form).
    Recurring(String, Vec<u8>),
    /// A recurring job was removed.
    Unrecurring(String),
    /// A job was dead-lettered ([`encode_dead_letter`]).
    Dead(JobId, Vec<u8>),
    /// A dead letter was removed.
    Undead(JobId),
}

/// Records to write, and the submissions to acknowledge once they are
/// durable.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) records: Vec<Record>,
    pub(super) acks: Vec<Ack>,
    /// The highest generated-id counter used so far.
    pub(super) id_floor: u64,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.acks.is_empty()
    }
}

/// The writer thread's handle, and what the replay found.
#[derive(Debug)]
pub(crate) struct Journal {
    tx: Option<std_mpsc::Sender<Batch>>,
    done: Option<oneshot::Receiver<()>>,
    /// Unfinished jobs found at open, in submission order.
    pub(super) unfinished: Vec<Job>,
    /// The highest generated-id counter recorded.
    pub(super) id_floor: u64,
    /// Records of finished jobs within retention, oldest first.
    pub(super) finished: Vec<JobRecord>,
    /// The recurring jobs, by name.
    pub(super) recurring: Vec<RecurringJob>,
    /// The dead letters, oldest first.
    pub(super) dead: Vec<DeadLetter>,
}

/// The live records: unfinished submits in submission order, and the
/// finished jobs' records within retention.
#[derive(Debug)]
struct Live {
    seq: u64,
    records: IdMap<(u64, Vec<u8>)>,
    bytes: u64,
    id_floor: u64,
    finished: FinishedLog<Vec<u8>>,
    retention: Retention,
    /// Recurring jobs by name (JSON forms); few (at most `MAX_RECURRING`).
    recurring: std::collections::BTreeMap<String, Vec<u8>>,
    /// Dead letters by id, with their order of arrival; as many as the
    /// coordinator keeps (it journals the ones it evicts).
    dead: IdMap<(u64, Vec<u8>)>,
}

impl Live {
    fn new(retention: Retention) -> Self {
        Live {
            seq: 0,
            records: IdMap::default(),
            bytes: 0,
            id_floor: 0,
            finished: FinishedLog::default(),
            retention,
            recurring: std::collections::BTreeMap::new(),
            dead: IdMap::default(),
        }
    }

    fn dead_letter(&mut self, id: JobId, body: Vec<u8>) {
        self.seq += 1;
        self.dead.insert(id, (self.seq, body));
    }

    /// The dead letters' bodies, oldest first.
    fn dead_ordered(&self) -> Vec<&[u8]> {
        let mut list: Vec<&(u64, Vec<u8>)> = self.dead.values().collect();
        list.sort_unstable_by_key(|(seq, _)| *seq);
        list.into_iter().map(|(_, body)| body.as_slice()).collect()
    }

    fn finish(&mut self, id: JobId, finished_ms: u64, body: Vec<u8>) {
        self.complete(&id);
        let size = body.len() + HEADER + 9;
        self.finished.insert(id, finished_ms, size, body);
        self.finished.evict(now_ms(), self.retention);
    }

    /// Bytes of every live record.
    fn total_bytes(&self) -> u64 {
        let recurring: usize = self.recurring.values().map(|b| b.len() + HEADER + 1).sum();
        let dead: usize = self.dead.values().map(|(_, b)| b.len() + HEADER + 1).sum();
        self.bytes + self.finished.bytes() + recurring as u64 + dead as u64
    }

    fn submit(&mut self, id: JobId, body: Vec<u8>) {
        // A re-run: the earlier run's record is replaced when it finishes.
        self.finished.remove(&id);
        self.seq += 1;
        self.bytes += body.len() as u64 + HEADER as u64 + 1;
        if let Some((_, old)) = self.records.insert(id, (self.seq, body)) {
            self.bytes -= old.len() as u64 + HEADER as u64 + 1;
        }
    }

    fn complete(&mut self, id: &JobId) {
        if let Some((_, body)) = self.records.remove(id) {
            self.bytes -= body.len() as u64 + HEADER as u64 + 1;
        }
    }

    fn ordered(&self) -> Vec<&[u8]> {
        let mut list: Vec<&(u64, Vec<u8>)> = self.records.values().collect();
        list.sort_unstable_by_key(|(seq, _)| *seq);
        list.into_iter().map(|(_, body)| body.as_slice()).collect()
    }
}

/// Lets one journal writer at a time use a data directory: a coordinator
/// restarted after a failure opens its journal only once the failed
/// instance's writer thread has written what it was given and exited.
#[derive(Debug, Clone, Default)]
pub(super) struct Gate(Arc<Mutex<()>>);

impl Gate {
    /// Waits for the previous writer to finish, then opens the journal in
    /// `dir` (on the blocking pool).
    pub(super) async fn open(&self, dir: PathBuf, retention: Retention) -> io::Result<Journal> {
        let turn = Arc::clone(&self.0).lock_owned().await;
        tokio::task::spawn_blocking(move || Journal::open(&dir, retention, Some(turn)))
            .await
            .map_err(io::Error::other)?
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir`, replays it, compacts it to the
    /// unfinished jobs and starts the writer thread, which holds `turn`
    /// (see [`Gate`]) until it exits.
    pub(crate) fn open(
        dir: &Path,
        retention: Retention,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        let mut live = replay(&data, retention);
        live.finished.evict(now_ms(), retention);
        compact(dir, &path, &live)?;
        let finished = live
            .finished
            .iter()
            .filter_map(|(_, body)| serde_json::from_slice::<JobRecord>(body.get(8..)?).ok())
            .collect();
        let unfinished = live
            .ordered()
            .into_iter()
            .filter_map(|body| Job::from_bincode(body).ok())
            .collect();
        let recurring = live
            .recurring
            .values()
            .filter_map(|body| serde_json::from_slice::<RecurringJob>(body).ok())
            .collect();
        let dead = live
            .dead_ordered()
            .into_iter()
            .filter_map(decode_dead_letter)
            .collect();
        let id_floor = live.id_floor;
        let file = OpenOptions::new().append(true).open(&path)?;
        let (tx, rx) = std_mpsc::channel();
        let (done_tx, done) = oneshot::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            path,
            len: file.metadata()?.len(),
            file,
            floor_written: live.id_floor,
            live,
        };
        std::thread::Builder::new()
            .name("job-journal".into())
            .spawn(move || {
                writer.run(rx);
                drop(turn);
                let _ = done_tx.send(());
            })?;
        Ok(Journal {
            tx: Some(tx),
            done: Some(done),
            unfinished,
            id_floor,
            finished,
            recurring,
            dead,
        })
    }

    /// Hands a batch to the writer; its acknowledgements are sent once the
    /// records are durable.
    pub(super) fn write(&self, batch: Batch) {
        if let Some(tx) = &self.tx {
            if let Err(std_mpsc::SendError(batch)) = tx.send(batch) {
                fail_acks(batch.acks, io::ErrorKind::BrokenPipe);
            }
        }
    }

    /// Flushes what is queued and stops the writer thread.
    pub(super) async fn close(&mut self) {
        self.tx = None;
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

#[derive(Debug)]
/// An acknowledgement sent once its records are durable: one submission,
/// or a batch journaled as one group.
pub(super) enum Ack {
    One(oneshot::Sender<Accepted>, Accepted),
    Many(oneshot::Sender<AcceptedMany>, AcceptedMany),
    /// Told once the batch's records are durable (or could not be written).
    Durable(oneshot::Sender<Result<(), io::ErrorKind>>),
}

impl Ack {
    fn send(self) {
        match self {
            Ack::One(reply, accepted) => {
                let _ = reply.send(accepted);
            }
            Ack::Many(reply, accepted) => {
                let _ = reply.send(accepted);
            }
            Ack::Durable(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn fail(self, kind: io::ErrorKind) {
        let err = SubmitError::Journal { kind };
        match self {
            Ack::One(reply, _) => {
                let _ = reply.send(Err(err));
            }
            Ack::Many(reply, _) => {
                let _ = reply.send(Err(err));
            }
            Ack::Durable(reply) => {
                let _ = reply.send(Err(kind));
            }
        }
    }
}

fn fail_acks(acks: Vec<Ack>, kind: io::ErrorKind) {
    for ack in acks {
        ack.fail(kind);
    }
}

struct Writer {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    live: Live,
    floor_written: u64,
}

impl Writer {
    fn run(mut self, rx: std_mpsc::Receiver<Batch>) {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Ok(first) = rx.recv() {
            let mut batches = vec![first];
            batches.extend(rx.try_iter());
            buf.clear();
            let mut sync = false;
            let mut acks = Vec::new();
            for batch in batches {
                self.live.id_floor = self.live.id_floor.max(batch.id_floor);
                for record in batch.records {
                    sync |= matches!(
                        record,
                        Record::Submit(..) | Record::Recurring(..) | Record::Unrecurring(..)
                    );
                    self.apply(record, &mut buf);
                }
                acks.extend(batch.acks);
            }
            if self.live.id_floor > self.floor_written {
                encode(KIND_ID_FLOOR, &self.live.id_floor.to_le_bytes(), &mut buf);
                self.floor_written = self.live.id_floor;
            }
            match self.commit(&buf, sync) {
                Ok(()) => {
                    for ack in acks {
                        ack.send();
                    }
                }
                Err(err) => {
                    tracing::error!(path = %self.path.display(), %err, "journal write failed");
                    fail_acks(acks, err.kind());
                }
            }
        }
        if let Err(err) = self.file.sync_data() {
            tracing::warn!(%err, "journal sync at close failed");
        }
    }

    fn apply(&mut self, record: Record, buf: &mut Vec<u8>) {
        match record {
            Record::Submit(id, body) => {
                encode(KIND_SUBMIT, &body, buf);
                self.live.submit(id, body);
            }
            Record::Complete(id) => {
                encode(KIND_COMPLETE, id.as_str().as_bytes(), buf);
                self.live.complete(&id);
            }
            Record::Finished(id, finished_ms, body) => {
                let mut framed = Vec::with_capacity(body.len() + 8);
                framed.extend_from_slice(&finished_ms.to_le_bytes());
                framed.extend_from_slice(&body);
                encode(KIND_FINISHED, &framed, buf);
                self.live.finish(id, finished_ms, framed);
            }
            Record::Recurring(name, body) => {
                encode(KIND_RECURRING, &body, buf);
                self.live.recurring.insert(name, body);
            }
            Record::Unrecurring(name) => {
                encode(KIND_UNRECURRING, name.as_bytes(), buf);
                self.live.recurring.remove(&name);
            }
            Record::Dead(id, body) => {
                encode(KIND_DEAD, &body, buf);
                self.live.dead_letter(id, body);
            }
            Record::Undead(id) => {
                encode(KIND_UNDEAD, id.as_str().as_bytes(), buf);
                self.live.dead.remove(&id);
            }
        }
    }

    fn commit(&mut self, buf: &[u8], sync: bool) -> io::Result<()> {
        self.file.write_all(buf)?;
        if sync {
            self.file.sync_data()?;
        }
        self.len += buf.len() as u64;
        if self.len > COMPACT_MIN_BYTES && self.len > 4 * self.live.total_bytes() {
            compact(&self.dir, &self.path, &self.live)?;
            self.file = OpenOptions::new().append(true).open(&self.path)?;
            self.len = self.file.metadata()?.len();
        }
        Ok(())
    }
}

/// Rewrites the journal with only the live records (and the id floor),
/// atomically: temporary file, fsync, rename, fsync of the directory.
fn compact(dir: &Path, path: &Path, live: &Live) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut buf = Vec::with_capacity(live.total_bytes() as usize + 32);
    encode(KIND_ID_FLOOR, &live.id_floor.to_le_bytes(), &mut buf);
    for (_, framed) in live.finished.iter() {
        encode(KIND_FINISHED, framed, &mut buf);
    }
    for body in live.recurring.values() {
        encode(KIND_RECURRING, body, &mut buf);
    }
    for body in live.dead_ordered() {
        encode(KIND_DEAD, body, &mut buf);
    }
    for body in live.ordered() {
        encode(KIND_SUBMIT, body, &mut buf);
    }
    let mut file = File::create(&tmp)?;
    file.write_all(&buf)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; not supported everywhere.
        let _ = d.sync_all();
    }
    Ok(())
}

fn encode(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len() + 1).expect("journal records are small");
    out.extend_from_slice(&len.to_le_bytes());
    let crc = crc32(crc32(0, &[kind]), body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// Replays records up to the first torn or corrupt one.
fn replay(data: &[u8], retention: Retention) -> Live {
    let mut live = Live::new(retention);
    let mut at = 0;
    while let Some((kind, body, next)) = read_record(data, at) {
        match kind {
            KIND_SUBMIT => match Job::from_bincode(body) {
                Ok(job) => live.submit(job.id, body.to_vec()),
                Err(err) => tracing::warn!(%err, "journal: undecodable job skipped"),
            },
            KIND_COMPLETE => {
                if let Ok(Ok(id)) = std::str::from_utf8(body).map(JobId::new) {
                    live.complete(&id);
                }
            }
            KIND_FINISHED => match finished_record(body) {
                Some((id, finished_ms)) => {
                    live.complete(&id);
                    let size = body.len() + HEADER + 1;
                    live.finished.insert(id, finished_ms, size, body.to_vec());
                }
                None => tracing::warn!("journal: undecodable job record skipped"),
            },
            KIND_RECURRING => match serde_json::from_slice::<RecurringJob>(body) {
                Ok(spec) => {
                    live.recurring.insert(spec.name, body.to_vec());
                }
                Err(err) => tracing::warn!(%err, "journal: undecodable recurring job skipped"),
            },
            KIND_UNRECURRING => {
                if let Ok(name) = std::str::from_utf8(body) {
                    live.recurring.remove(name);
                }
            }
            KIND_DEAD => match decode_dead_letter(body) {
                Some(letter) => live.dead_letter(letter.job.id, body.to_vec()),
                None => tracing::warn!("journal: undecodable dead letter skipped"),
            },
            KIND_UNDEAD => {
                if let Ok(Ok(id)) = std::str::from_utf8(body).map(JobId::new) {
                    live.dead.remove(&id);
                }
            }
            KIND_ID_FLOOR => {
                if let Ok(bytes) = <[u8; 8]>::try_from(body) {
                    live.id_floor = live.id_floor.max(u64::from_le_bytes(bytes));
                }
            }
            _ => tracing::warn!(kind, "journal: unknown record kind skipped"),
        }
        at = next;
    }
    if at < data.len() {
        tracing::warn!(
            dropped = data.len() - at,
            "journal: torn or corrupt tail dropped"
        );
    }
    live
}

/// A dead letter's journal body: `job_len: u32 LE`, the job's bincode
/// form, then the failures of its attempts as JSON.
pub(super) fn encode_dead_letter(letter: &DeadLetter) -> Vec<u8> {
    let job = letter.job.to_bincode();
    let failures = serde_json::to_vec(&letter.failures).unwrap_or_else(|_| b"[]".to_vec());
    let mut body = Vec::with_capacity(4 + job.len() + failures.len());
    body.extend_from_slice(&u32::try_from(job.len()).unwrap_or(u32::MAX).to_le_bytes());
    body.extend_from_slice(&job);
    body.extend_from_slice(&failures);
    body
}

/// The dead letter of an [`encode_dead_letter`] body.
fn decode_dead_letter(body: &[u8]) -> Option<DeadLetter> {
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let (job, failures) = (rest.get(..len)?, rest.get(len..)?);
    Some(DeadLetter {
        job: Job::from_bincode(job).ok()?,
        failures: serde_json::from_slice::<Vec<AttemptFailure>>(failures).ok()?,
    })
}

/// The id and finish time of a `Finished` body (`finished_ms: u64 LE`,
/// then the record's JSON).
fn finished_record(body: &[u8]) -> Option<(JobId, u64)> {
    let (ms, json) = body.split_first_chunk::<8>()?;
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: JobId,
    }
    let IdOnly { id } = serde_json::from_slice(json).ok()?;
    Some((id, u64::from_le_bytes(*ms)))
}

fn read_record(data: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let header = data.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let end = at.checked_add(HEADER)?.checked_add(len)?;
    let payload = data.get(at + HEADER..end)?;
    if crc32(0, payload) != crc {
        return None;
    }
    Some((payload[0], &payload[1..], end))
}

/// CRC-32 (IEEE), continuing from `crc` (0 to start).
/// `crc32fast` computes it with the CPU's carry-less multiply (a table
/// byte by byte was a twentieth of a journaling node's CPU).
fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(bytes);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: Retention = Retention {
        age: std::time::Duration::from_secs(3600),
        bytes: u64::MAX,
    };

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
    }

    fn job(id: &str) -> Job {
        Job::new("echo", id).with_id(JobId::new(id).unwrap())
    }

    #[test]
    fn replay_keeps_unfinished_jobs_in_order_and_drops_a_torn_tail() {
        let mut data = Vec::new();
        for id in ["j-1", "j-2", "j-3"] {
            encode(KIND_SUBMIT, &job(id).to_bincode(), &mut data);
        }
        encode(KIND_COMPLETE, b"j-2", &mut data);
        encode(KIND_ID_FLOOR, &7u64.to_le_bytes(), &mut data);
        let whole = data.len();
        encode(KIND_SUBMIT, &job("j-4").to_bincode(), &mut data);
        data.truncate(data.len() - 3);
        let live = replay(&data, WIDE);
        let ids: Vec<String> = live
            .ordered()
            .into_iter()
            .map(|b| Job::from_bincode(b).unwrap().id.to_string())
            .collect();
        assert_eq!(ids, ["j-1", "j-3"]);
        assert_eq!(live.id_floor, 7);
        // A flipped bit ends the replay at that record.
        let mut corrupt = data[..whole].to_vec();
        corrupt[HEADER + 2] ^= 1;
        assert!(replay(&corrupt, WIDE).records.is_empty());
    }

    #[tokio::test]
    async fn a_reopened_journal_resumes_unfinished_jobs_and_compacts() {
        let dir = std::env::temp_dir().join(format!("jq-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut journal = Journal::open(&dir, WIDE, None).unwrap();
        assert!(journal.unfinished.is_empty());
        let (reply, acked) = oneshot::channel();
        let (_tx, rx) = oneshot::channel();
        let mut batch = Batch {
            id_floor: 12,
            ..Batch::default()
        };
        for id in ["a-1", "a-2"] {
            batch.records.push(Record::Submit(
                JobId::new(id).unwrap(),
                job(id).to_bincode(),
            ));
        }
        batch
            .records
            .push(Record::Complete(JobId::new("a-1").unwrap()));
        batch
            .acks
            .push(Ack::One(reply, Ok((JobId::new("a-2").unwrap(), rx))));
        journal.write(batch);
        let acked = tokio::time::timeout(std::time::Duration::from_secs(10), acked)
            .await
            .unwrap()
            .unwrap();
        assert!(acked.is_ok());
        journal.close().await;
        let mut again = Journal::open(&dir, WIDE, None).unwrap();
        let ids: Vec<&str> = again.unfinished.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["a-2"]);
        assert_eq!(again.id_floor, 12);
        again.close().await;
        let _ = fs::remove_dir_all(&dir);
    }

    fn record_json(id: &str, finished_ms: u64) -> Vec<u8> {
        let result = crate::job::JobResult::success(
            JobId::new(id).unwrap(),
            "out",
            "n2",
            1,
            std::time::Duration::ZERO,
        );
        let record = JobRecord {
            id: JobId::new(id).unwrap(),
            kind: "echo".into(),
            owner: "n1".into(),
            state: crate::record::JobState::Succeeded,
            attempt: 1,
            max_attempts: 3,
            submitted_ms: finished_ms,
            started_ms: None,
            finished_ms: Some(finished_ms),
            attempts: Vec::new(),
            progress: None,
            result: Some(result),
        };
        serde_json::to_vec(&record).unwrap()
    }

    #[tokio::test]
    async fn finished_records_survive_a_reopen_within_retention_and_reruns_replace_them() {
        let dir = std::env::temp_dir().join(format!("jq-journal-rec-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let journal = Journal::open(&dir, WIDE, None).unwrap();
        let now = now_ms();
        let mut batch = Batch::default();
        for (id, at) in [("old-1", now - 7_200_000), ("new-1", now), ("again-1", now)] {
            let body = job(id).to_bincode();
            batch
                .records
                .push(Record::Submit(JobId::new(id).unwrap(), body));
            let json = record_json(id, at);
            batch
                .records
                .push(Record::Finished(JobId::new(id).unwrap(), at, json));
        }
        // A re-run of again-1: submitted anew, not finished yet.
        let body = job("again-1").to_bincode();
        batch
            .records
            .push(Record::Submit(JobId::new("again-1").unwrap(), body));
        let (reply, acked) = oneshot::channel();
        let (_tx, rx) = oneshot::channel();
        batch
            .acks
            .push(Ack::One(reply, Ok((JobId::new("again-1").unwrap(), rx))));
        journal.write(batch);
        let mut journal = journal;
        tokio::time::timeout(std::time::Duration::from_secs(10), acked)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        journal.close().await;
        // Kept for an hour: the two-hour-old record is gone at reopen.
        let hour = Retention {
            age: std::time::Duration::from_secs(3600),
            bytes: u64::MAX,
        };
        let mut again = Journal::open(&dir, hour, None).unwrap();
        let finished: Vec<&str> = again.finished.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(finished, ["new-1"]);
        let unfinished: Vec<&str> = again.unfinished.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(unfinished, ["again-1"]);
        again.close().await;
        // A byte budget below one record keeps none.
        let tiny = Retention {
            age: std::time::Duration::from_secs(3600),
            bytes: 1,
        };
        let mut last = Journal::open(&dir, tiny, None).unwrap();
        assert!(last.finished.is_empty());
        last.close().await;
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn dead_letters_survive_reopens_and_compaction_until_removed() {
        use crate::failure::{FailureCause, JobFailure};
        let dir = std::env::temp_dir().join(format!("jq-journal-dead-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let letter = |id: &str| DeadLetter {
            job: job(id),
            failures: vec![AttemptFailure {
                attempt: 1,
                node: Some("n2".into()),
                failure: JobFailure::new(FailureCause::Panic, format!("{id} broke")),
            }],
        };
        let mut journal = Journal::open(&dir, WIDE, None).unwrap();
        let mut batch = Batch::default();
        for id in ["d-1", "d-2", "d-3"] {
            let id = JobId::new(id).unwrap();
            batch
                .records
                .push(Record::Submit(id.clone(), job(id.as_str()).to_bincode()));
            batch.records.push(Record::Complete(id.clone()));
            let body = encode_dead_letter(&letter(id.as_str()));
            batch.records.push(Record::Dead(id, body));
        }
        batch
            .records
            .push(Record::Undead(JobId::new("d-2").unwrap()));
        journal.write(batch);
        journal.close().await;

        // Reopening replays, then compacts: the letters survive both, in
        // order, with their job and failures; the removed one stays gone.
        for _ in 0..2 {
            let mut again = Journal::open(&dir, WIDE, None).unwrap();
            assert_eq!(again.dead, [letter("d-1"), letter("d-3")]);
            assert!(again.unfinished.is_empty());
            again.close().await;
        }
        let mut again = Journal::open(&dir, WIDE, None).unwrap();
        let mut batch = Batch::default();
        batch
            .records
            .push(Record::Undead(JobId::new("d-1").unwrap()));
        again.write(batch);
        again.close().await;
        let mut last = Journal::open(&dir, WIDE, None).unwrap();
        assert_eq!(last.dead, [letter("d-3")]);
        last.close().await;
        // A cut-off body is skipped, not trusted.
        assert!(decode_dead_letter(&encode_dead_letter(&letter("x"))[..6]).is_none());
        assert!(decode_dead_letter(&[0xff, 0xff, 0xff, 0xff]).is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
