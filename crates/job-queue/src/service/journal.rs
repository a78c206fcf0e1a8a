//! The coordinator's journal: an append-only file of records, one per
//! accepted job (`Submit`, the job's bincode form) and one per finished job
//! (its record in the compact stored form of `record.rs`); also the
//! recurring jobs and the dead letters.
//!
//! Record layout: `len: u32 LE` (of kind + body), `crc32: u32 LE` (of kind +
//! body), `kind: u8`, body. Replay stops at the first torn or corrupt record
//! (a crash mid-write) and drops the rest.
//!
//! The coordinator encodes the records of one flush into one buffer
//! ([`Encoded`]: framed and checksummed, with a short note per record of
//! what it changes), and a dedicated thread writes them.
//!
//! Fsync policy (group commit): the thread takes every batch waiting for it,
//! writes them with one `write`, and calls `fsync` (`sync_data`) once if any
//! of them holds a `Submit`; only then are those submissions acknowledged.
//! Finished records are written but not fsynced on their own: after a
//! power loss (not a process crash) the last completions may be lost and
//! those jobs run again. A write that fails is cut off the file again, so
//! that no torn record hides the ones written after it.
//!
//! The writer keeps no copy of the records: it knows where each live one
//! (unfinished job, finished record within retention, recurring job, dead
//! letter) lies in the file. When the file exceeds 4 MiB and four times
//! the live records, it is compacted: those byte ranges are copied, in
//! file order and checksums included, to a new file that atomically
//! replaces it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::recurring::RecurringJob;
use super::{Accepted, AcceptedMany};
use crate::coordinator::{AttemptFailure, DeadLetter};
use crate::error::SubmitError;
use crate::job::{IdMap, Job, JobId};
use crate::record::{now_ms, FinishedLog, JobRecord, Records, Retention};

/// The journal's file name inside the data directory.
pub(super) const FILE_NAME: &str = "jobs.journal";
const COMPACT_MIN_BYTES: u64 = 4 << 20;
const MAX_RECORD: usize = 64 << 20;
const HEADER: usize = 8;

const KIND_SUBMIT: u8 = 1;
const KIND_COMPLETE: u8 = 2;
const KIND_ID_FLOOR: u8 = 3;
/// A job finished, its record as JSON (written by older builds; still
/// read): `finished_ms: u64 LE`, then the `JobRecord` JSON.
const KIND_FINISHED_JSON: u8 = 4;
/// A recurring job added or replaced: its JSON form (`RecurringJob`).
const KIND_RECURRING: u8 = 5;
/// A recurring job removed: its name.
const KIND_UNRECURRING: u8 = 6;
/// A job dead-lettered: see [`encode_dead_letter`].
const KIND_DEAD: u8 = 7;
/// A dead letter removed (resubmitted, discarded or evicted): its id.
const KIND_UNDEAD: u8 = 8;
/// A job finished, its record in the stored form: `finished_ms: u64 LE`,
/// `version: u8` ([`BLOB_V1`]), `id_len: u8`, the id, then the stored
/// record (`Records::finished_blob`).
const KIND_FINISHED: u8 = 9;
/// The stored record form of `record.rs` as of this kind's introduction.
const BLOB_V1: u8 = 1;

/// One journal entry (the rarer kinds; submissions and finished records
/// have their own methods on [`Encoded`]).
#[derive(Debug)]
pub(super) enum Record {
    /// A job finished without a record kept (a resumed job refused at
    /// resume).
    Complete(JobId),
    /// A recurring job was added or replaced (its name, its JSON form).
    Recurring(String, Vec<u8>),
    /// A recurring job was removed.
    Unrecurring(String),
    /// A job was dead-lettered ([`encode_dead_letter`]).
    Dead(JobId, Vec<u8>),
    /// A dead letter was removed.
    Undead(JobId),
}

/// What one record changes in the live set.
#[derive(Debug)]
enum Op {
    Submit(JobId),
    Complete(JobId),
    Finished(JobId, u64),
    Recurring(String),
    Unrecurring(String),
    Dead(JobId),
    Undead(JobId),
}

/// Records encoded in order, as they go to the file: the framed bytes,
/// and for each record what it changes and its framed length.
#[derive(Debug, Default)]
pub(super) struct Encoded {
    bytes: Vec<u8>,
    ops: Vec<(Op, u32)>,
    /// Whether a record must be fsynced before the batch is acknowledged.
    sync: bool,
}

impl Encoded {
    /// Appends one of the rarer records.
    pub(super) fn push(&mut self, record: Record) {
        match record {
            Record::Complete(id) => {
                let op = Op::Complete(id.clone());
                self.add(KIND_COMPLETE, op, |out| {
                    out.extend_from_slice(id.as_str().as_bytes())
                });
            }
            Record::Recurring(name, body) => {
                self.sync = true;
                self.add(KIND_RECURRING, Op::Recurring(name), |out| {
                    out.extend_from_slice(&body);
                });
            }
            Record::Unrecurring(name) => {
                self.sync = true;
                let op = Op::Unrecurring(name.clone());
                self.add(KIND_UNRECURRING, op, |out| {
                    out.extend_from_slice(name.as_bytes())
                });
            }
            Record::Dead(id, body) => {
                self.add(KIND_DEAD, Op::Dead(id), |out| out.extend_from_slice(&body));
            }
            Record::Undead(id) => {
                let op = Op::Undead(id.clone());
                self.add(KIND_UNDEAD, op, |out| {
                    out.extend_from_slice(id.as_str().as_bytes())
                });
            }
        }
    }

    /// Appends a job's submission: its bincode form, numbered from 1 if it
    /// has made no attempt yet (still in the ready queue).
    pub(super) fn submit(&mut self, job: &Job) {
        self.sync = true;
        self.add(KIND_SUBMIT, Op::Submit(job.id.clone()), |out| {
            job.append_bincode_as(job.attempt.max(1), out);
        });
    }

    /// Appends a finished job's record, `blob` being its stored form
    /// (`Records::finished_blob`).
    pub(super) fn finished(&mut self, id: &JobId, finished_ms: u64, blob: &[u8]) {
        // Ids are at most `JobId::MAX_LEN` (128) bytes.
        let Ok(id_len) = u8::try_from(id.as_str().len()) else {
            return self.push(Record::Complete(id.clone()));
        };
        let op = Op::Finished(id.clone(), finished_ms);
        self.add(KIND_FINISHED, op, |out| {
            out.extend_from_slice(&finished_ms.to_le_bytes());
            out.push(BLOB_V1);
            out.push(id_len);
            out.extend_from_slice(id.as_str().as_bytes());
            out.extend_from_slice(blob);
        });
    }

    /// Whether there is no record.
    pub(super) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Frames one record into the buffer and notes what it changes; a
    /// record over the limit is left out (and logged), since replay would
    /// stop at it.
    fn add(&mut self, kind: u8, op: Op, body: impl FnOnce(&mut Vec<u8>)) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(16 << 10);
        }
        match frame(&mut self.bytes, kind, body) {
            Some(len) => self.ops.push((op, len)),
            None => tracing::error!(
                kind,
                ?op,
                "journal: record over {MAX_RECORD} bytes not written"
            ),
        }
    }
}

/// Records to write, and the submissions to acknowledge once they are
/// durable.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) records: Encoded,
    pub(super) acks: Vec<Ack>,
    /// The highest generated-id counter used so far.
    pub(super) id_floor: u64,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.acks.is_empty()
    }
}

/// A finished job's record read back from the journal.
#[derive(Debug)]
pub(super) enum Finished {
    /// Journaled by an older build, as JSON.
    Json(Box<JobRecord>),
    /// Journaled in the stored form.
    Stored {
        id: JobId,
        finished_ms: u64,
        blob: Box<[u8]>,
    },
}

impl Finished {
    /// Adds the record to `records`.
    pub(super) fn restore<W>(self, records: &mut Records<W>, now_ms: u64) {
        match self {
            Finished::Json(record) => records.insert_finished(*record, now_ms),
            Finished::Stored {
                id,
                finished_ms,
                blob,
            } => {
                if !records.insert_finished_blob(id.clone(), finished_ms, blob, now_ms) {
                    tracing::warn!(%id, "journal: undecodable job record skipped");
                }
            }
        }
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
    pub(super) finished: Vec<Finished>,
    /// The recurring jobs, by name.
    pub(super) recurring: Vec<RecurringJob>,
    /// The dead letters, oldest first.
    pub(super) dead: Vec<DeadLetter>,
}

/// Where a live record lies in the file: its offset and its length,
/// header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    at: u64,
    len: u32,
}

/// The live records, by where they lie in the file: unfinished submits,
/// the finished jobs' records within retention, recurring jobs and dead
/// letters. File order is the order they were written in.
#[derive(Debug)]
struct Live {
    submits: IdMap<Span>,
    submit_bytes: u64,
    finished: FinishedLog<Span>,
    retention: Retention,
    /// Recurring jobs by name; few (at most `MAX_RECURRING`).
    recurring: BTreeMap<String, Span>,
    /// Dead letters by id; as many as the coordinator keeps (it journals
    /// the ones it evicts).
    dead: IdMap<Span>,
    dead_bytes: u64,
    id_floor: u64,
}

impl Live {
    fn new(retention: Retention) -> Self {
        Live {
            submits: IdMap::default(),
            submit_bytes: 0,
            finished: FinishedLog::default(),
            retention,
            recurring: BTreeMap::new(),
            dead: IdMap::default(),
            dead_bytes: 0,
            id_floor: 0,
        }
    }

    fn apply(&mut self, op: Op, span: Span) {
        match op {
            Op::Submit(id) => self.submit(id, span),
            Op::Complete(id) => self.complete(&id),
            Op::Finished(id, finished_ms) => self.finish(id, finished_ms, span),
            Op::Recurring(name) => {
                self.recurring.insert(name, span);
            }
            Op::Unrecurring(name) => {
                self.recurring.remove(&name);
            }
            Op::Dead(id) => self.dead_letter(id, span),
            Op::Undead(id) => self.undead(&id),
        }
    }

    fn submit(&mut self, id: JobId, span: Span) {
        // A re-run: the earlier run's record is replaced when it finishes.
        self.finished.remove(&id);
        self.submit_bytes += u64::from(span.len);
        if let Some(old) = self.submits.insert(id, span) {
            self.submit_bytes -= u64::from(old.len);
        }
    }

    fn complete(&mut self, id: &JobId) {
        if let Some(old) = self.submits.remove(id) {
            self.submit_bytes -= u64::from(old.len);
        }
    }

    fn finish(&mut self, id: JobId, finished_ms: u64, span: Span) {
        self.complete(&id);
        self.finished
            .insert(id, finished_ms, span.len as usize, span);
    }

    fn dead_letter(&mut self, id: JobId, span: Span) {
        self.dead_bytes += u64::from(span.len);
        if let Some(old) = self.dead.insert(id, span) {
            self.dead_bytes -= u64::from(old.len);
        }
    }

    fn undead(&mut self, id: &JobId) {
        if let Some(old) = self.dead.remove(id) {
            self.dead_bytes -= u64::from(old.len);
        }
    }

    /// Bytes of every live record.
    fn total_bytes(&self) -> u64 {
        let recurring: u64 = self.recurring.values().map(|s| u64::from(s.len)).sum();
        self.submit_bytes + self.finished.bytes() + self.dead_bytes + recurring
    }

    /// Every live record, in file order.
    fn spans(&self) -> Vec<Span> {
        let mut spans: Vec<Span> = self.submits.values().copied().collect();
        spans.extend(self.finished.iter().map(|(_, span)| *span));
        spans.extend(self.recurring.values().copied());
        spans.extend(self.dead.values().copied());
        spans.sort_unstable_by_key(|span| span.at);
        spans
    }

    fn in_file_order<'a>(spans: impl Iterator<Item = &'a Span>) -> Vec<Span> {
        let mut list: Vec<Span> = spans.copied().collect();
        list.sort_unstable_by_key(|span| span.at);
        list
    }

    /// Moves every record to where compaction put it (`moved`: old
    /// offset, new offset; sorted).
    fn relocate(&mut self, moved: &[(u64, u64)]) {
        let find = |span: &mut Span| {
            if let Ok(i) = moved.binary_search_by_key(&span.at, |m| m.0) {
                span.at = moved[i].1;
            }
        };
        self.submits.values_mut().for_each(find);
        self.finished.values_mut().for_each(find);
        self.recurring.values_mut().for_each(find);
        self.dead.values_mut().for_each(find);
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
    /// live records and starts the writer thread, which holds `turn` (see
    /// [`Gate`]) until it exits.
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
        let mut journal = Journal::read_live(&data, &live);
        let (file, len) = compact(dir, &path, &mut live, &mut data.as_slice())?;
        drop(data);
        let (tx, rx) = std_mpsc::channel();
        let (done_tx, done) = oneshot::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            path,
            file,
            len,
            floor_written: live.id_floor,
            compact_at: COMPACT_MIN_BYTES,
            live,
        };
        std::thread::Builder::new()
            .name("job-journal".into())
            .spawn(move || {
                writer.run(rx);
                drop(turn);
                let _ = done_tx.send(());
            })?;
        journal.tx = Some(tx);
        journal.done = Some(done);
        Ok(journal)
    }

    /// What the live records of `data` hold.
    fn read_live(data: &[u8], live: &Live) -> Journal {
        let body = |span: &Span| {
            let (kind, body, _) = read_record(data, usize::try_from(span.at).ok()?)?;
            Some((kind, body))
        };
        let finished = live
            .finished
            .iter()
            .filter_map(|(_, span)| match body(span)? {
                (KIND_FINISHED_JSON, body) => serde_json::from_slice(body.get(8..)?)
                    .ok()
                    .map(Finished::Json),
                (_, body) => {
                    let (id, finished_ms, blob) = finished_stored(body)?;
                    let blob = blob.into();
                    Some(Finished::Stored {
                        id,
                        finished_ms,
                        blob,
                    })
                }
            })
            .collect();
        let unfinished = Live::in_file_order(live.submits.values())
            .iter()
            .filter_map(|span| Job::from_bincode(body(span)?.1).ok())
            .collect();
        let recurring = live
            .recurring
            .values()
            .filter_map(|span| serde_json::from_slice::<RecurringJob>(body(span)?.1).ok())
            .collect();
        let dead = Live::in_file_order(live.dead.values())
            .iter()
            .filter_map(|span| decode_dead_letter(body(span)?.1))
            .collect();
        Journal {
            tx: None,
            done: None,
            unfinished,
            id_floor: live.id_floor,
            finished,
            recurring,
            dead,
        }
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
    /// The file length below which no compaction is tried (raised after
    /// one fails, so that a full disk is not rewritten at every write).
    compact_at: u64,
}

/// The batches of one write, merged.
#[derive(Default)]
struct Group {
    bytes: Vec<u8>,
    ops: Vec<(Op, u32)>,
    acks: Vec<Ack>,
    sync: bool,
    id_floor: u64,
}

impl Group {
    fn add(&mut self, batch: Batch) {
        let Batch {
            records,
            acks,
            id_floor,
        } = batch;
        self.id_floor = self.id_floor.max(id_floor);
        self.sync |= records.sync;
        if self.bytes.is_empty() {
            self.bytes = records.bytes;
        } else {
            self.bytes.extend_from_slice(&records.bytes);
        }
        self.ops.extend(records.ops);
        self.acks.extend(acks);
    }
}

impl Writer {
    fn run(mut self, rx: std_mpsc::Receiver<Batch>) {
        while let Ok(first) = rx.recv() {
            let mut group = Group::default();
            group.add(first);
            for batch in rx.try_iter() {
                group.add(batch);
            }
            self.write_group(group);
        }
        if let Err(err) = self.file.sync_data() {
            tracing::warn!(%err, "journal sync at close failed");
        }
    }

    fn write_group(&mut self, mut group: Group) {
        let floor = self.live.id_floor.max(group.id_floor);
        if floor > self.floor_written {
            encode(KIND_ID_FLOOR, &floor.to_le_bytes(), &mut group.bytes);
        }
        if let Err(err) = self.append(&group.bytes, group.sync) {
            tracing::error!(path = %self.path.display(), %err, "journal write failed");
            fail_acks(group.acks, err.kind());
            return;
        }
        self.live.id_floor = floor;
        self.floor_written = floor;
        let mut at = self.len;
        for (op, len) in group.ops {
            self.live.apply(op, Span { at, len });
            at += u64::from(len);
        }
        self.len += group.bytes.len() as u64;
        for ack in group.acks {
            ack.send();
        }
        self.live.finished.evict(now_ms(), self.live.retention);
        let limit = self.compact_at.max(4 * self.live.total_bytes());
        if self.len > limit {
            if let Err(err) = self.compact() {
                tracing::warn!(path = %self.path.display(), %err, "journal compaction failed");
                self.compact_at = self.len + COMPACT_MIN_BYTES;
            }
        }
    }

    /// Writes `bytes` at the end of the file (and fsyncs if `sync`). On
    /// failure whatever part reached the file is cut off again.
    fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        let written =
            self.file.write_all(bytes).and_then(
                |()| {
                    if sync {
                        self.file.sync_data()
                    } else {
                        Ok(())
                    }
                },
            );
        if written.is_err() {
            if let Err(err) = self.file.set_len(self.len) {
                tracing::error!(%err, "journal: a failed write could not be cut off");
            }
        }
        written
    }

    fn compact(&mut self) -> io::Result<()> {
        let mut source = BufReader::with_capacity(1 << 20, File::open(&self.path)?);
        let (file, len) = compact(&self.dir, &self.path, &mut self.live, &mut source)?;
        self.file = file;
        self.len = len;
        self.compact_at = COMPACT_MIN_BYTES;
        Ok(())
    }
}

/// Rewrites the journal with only the live records (and the id floor),
/// copied from `source` (the file as it is, read from its start), then
/// replaces it atomically: temporary file, fsync, rename, fsync of the
/// directory. Returns the new file, open for appending, and its length;
/// on failure the temporary file is removed and the old one stays.
fn compact(
    dir: &Path,
    path: &Path,
    live: &mut Live,
    source: &mut impl Read,
) -> io::Result<(File, u64)> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let compacted = compact_via(&tmp, dir, path, live, source);
    if compacted.is_err() {
        // A half-written copy would hold on to the room that a full disk
        // lacks: the journal's own appends would fail next.
        let _ = fs::remove_file(&tmp);
    }
    compacted
}

/// [`compact`]'s work, through the temporary file `tmp`.
fn compact_via(
    tmp: &Path,
    dir: &Path,
    path: &Path,
    live: &mut Live,
    source: &mut impl Read,
) -> io::Result<(File, u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
    let mut head = Vec::new();
    encode(KIND_ID_FLOOR, &live.id_floor.to_le_bytes(), &mut head);
    out.write_all(&head)?;
    let mut written = head.len() as u64;
    let mut read = 0;
    let mut moved = Vec::new();
    let mut record = Vec::new();
    for span in live.spans() {
        let gap = span
            .at
            .checked_sub(read)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "journal records overlap"))?;
        io::copy(&mut source.by_ref().take(gap), &mut io::sink())?;
        record.resize(span.len as usize, 0);
        source.read_exact(&mut record)?;
        read = span.at + u64::from(span.len);
        // Bytes that changed on disk since they were written would end
        // every later replay at this record: they are left out.
        if read_record(&record, 0).is_none() {
            tracing::warn!(
                at = span.at,
                "journal: corrupt record dropped at compaction"
            );
            continue;
        }
        out.write_all(&record)?;
        moved.push((span.at, written));
        written += u64::from(span.len);
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    let append = OpenOptions::new().append(true).open(tmp)?;
    fs::rename(tmp, path)?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; not supported everywhere.
        let _ = d.sync_all();
    }
    live.relocate(&moved);
    Ok((append, written))
}

/// Appends one framed record (`body` writes the body after the kind);
/// its framed length, or `None` (nothing appended) if it is over
/// [`MAX_RECORD`].
fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) -> Option<u32> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind);
    body(out);
    let payload = &out[start + HEADER..];
    if payload.len() > MAX_RECORD {
        out.truncate(start);
        return None;
    }
    let len = payload.len() as u32;
    let crc = crc32(0, payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Some(len + HEADER as u32)
}

fn encode(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    frame(out, kind, |out| out.extend_from_slice(body));
}

/// Replays records up to the first torn or corrupt one.
fn replay(data: &[u8], retention: Retention) -> Live {
    let mut live = Live::new(retention);
    let mut at = 0;
    while let Some((kind, body, next)) = read_record(data, at) {
        let span = Span {
            at: at as u64,
            len: (next - at) as u32,
        };
        replay_one(&mut live, kind, body, span);
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

fn replay_one(live: &mut Live, kind: u8, body: &[u8], span: Span) {
    let id = || {
        std::str::from_utf8(body)
            .ok()
            .and_then(|s| JobId::new(s).ok())
    };
    match kind {
        KIND_SUBMIT => match Job::from_bincode(body) {
            Ok(job) => live.submit(job.id, span),
            Err(err) => tracing::warn!(%err, "journal: undecodable job skipped"),
        },
        KIND_COMPLETE => {
            if let Some(id) = id() {
                live.complete(&id);
            }
        }
        KIND_FINISHED | KIND_FINISHED_JSON => {
            let found = if kind == KIND_FINISHED {
                finished_stored(body).map(|(id, ms, _)| (id, ms))
            } else {
                finished_json(body)
            };
            match found {
                Some((id, finished_ms)) => live.finish(id, finished_ms, span),
                None => tracing::warn!("journal: undecodable job record skipped"),
            }
        }
        KIND_RECURRING => match serde_json::from_slice::<RecurringJob>(body) {
            Ok(spec) => {
                live.recurring.insert(spec.name, span);
            }
            Err(err) => tracing::warn!(%err, "journal: undecodable recurring job skipped"),
        },
        KIND_UNRECURRING => {
            if let Ok(name) = std::str::from_utf8(body) {
                live.recurring.remove(name);
            }
        }
        KIND_DEAD => match decode_dead_letter(body) {
            Some(letter) => live.dead_letter(letter.job.id, span),
            None => tracing::warn!("journal: undecodable dead letter skipped"),
        },
        KIND_UNDEAD => {
            if let Some(id) = id() {
                live.undead(&id);
            }
        }
        KIND_ID_FLOOR => {
            if let Ok(bytes) = <[u8; 8]>::try_from(body) {
                live.id_floor = live.id_floor.max(u64::from_le_bytes(bytes));
            }
        }
        _ => tracing::warn!(kind, "journal: unknown record kind skipped"),
    }
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

/// The id and finish time of an old `Finished` body (`finished_ms: u64
/// LE`, then the record's JSON).
fn finished_json(body: &[u8]) -> Option<(JobId, u64)> {
    let (ms, json) = body.split_first_chunk::<8>()?;
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: JobId,
    }
    let IdOnly { id } = serde_json::from_slice(json).ok()?;
    Some((id, u64::from_le_bytes(*ms)))
}

/// The id, finish time and stored record of a [`KIND_FINISHED`] body.
fn finished_stored(body: &[u8]) -> Option<(JobId, u64, &[u8])> {
    let (ms, rest) = body.split_first_chunk::<8>()?;
    let ([version, id_len], rest) = rest.split_first_chunk::<2>()?;
    if *version != BLOB_V1 {
        return None;
    }
    let (id, blob) = rest.split_at_checked(usize::from(*id_len))?;
    let id = JobId::new(std::str::from_utf8(id).ok()?).ok()?;
    Some((id, u64::from_le_bytes(*ms), blob))
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
#[path = "journal_tests.rs"]
mod tests;
