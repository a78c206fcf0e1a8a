use std::time::Duration;

use super::*;
use crate::failure::{FailureCause, JobFailure};
use crate::job::JobResult;
use crate::record::JobState;

const WIDE: Retention = Retention {
    age: Duration::from_secs(3600),
    bytes: u64::MAX,
};
const STEP: Duration = Duration::from_secs(30);

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
}

fn job(id: &str) -> Job {
    Job::new("echo", id).with_id(JobId::new(id).unwrap())
}

fn id(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

/// A fresh data directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jq-journal-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// A finished job's record as `Records` stores it (finished at `at`),
/// `failed` with a panic or succeeded.
fn stored(records: &mut Records, name: &str, at: u64, failed: bool) -> Vec<u8> {
    records.submitted(&job(name), at.saturating_sub(5));
    records.attempt_started(&id(name), 1, &"n2".into(), at.saturating_sub(4));
    let result = if failed {
        let failure = JobFailure::new(FailureCause::Panic, format!("{name} \"broke\""));
        JobResult::failure(id(name), failure, "n2", 1, Duration::from_micros(70))
    } else {
        JobResult::success(id(name), "out\n", "n2", 1, Duration::from_micros(70))
    };
    assert!(records.finish(&result, at).is_some());
    records.finished_blob(&id(name)).unwrap().to_vec()
}

/// A record as JSON, the way builds before the stored kind journaled it.
fn record_json(name: &str, finished_ms: u64) -> Vec<u8> {
    let result = JobResult::success(id(name), "out", "n2", 1, Duration::ZERO);
    let record = JobRecord {
        id: id(name),
        kind: "echo".into(),
        owner: "n1".into(),
        state: JobState::Succeeded,
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

/// Hands `batch` to the writer and waits until it is on disk.
async fn write_durably(journal: &Journal, mut batch: Batch) {
    let (tx, rx) = oneshot::channel();
    batch.acks.push(Ack::Durable(tx));
    journal.write(batch);
    let written = tokio::time::timeout(STEP, rx).await.unwrap().unwrap();
    assert_eq!(written, Ok(()));
}

fn finished_ids(journal: &Journal) -> Vec<String> {
    journal
        .finished
        .iter()
        .map(|f| match f {
            Finished::Json(record) => record.id.to_string(),
            Finished::Stored { id, .. } => id.to_string(),
        })
        .collect()
}

fn unfinished_ids(journal: &Journal) -> Vec<String> {
    journal
        .unfinished
        .iter()
        .map(|j| j.id.to_string())
        .collect()
}

#[test]
fn replay_keeps_unfinished_jobs_in_order_and_drops_a_torn_tail() {
    let mut data = Vec::new();
    for name in ["j-1", "j-2", "j-3"] {
        encode(KIND_SUBMIT, &job(name).to_bincode(), &mut data);
    }
    encode(KIND_COMPLETE, b"j-2", &mut data);
    encode(KIND_ID_FLOOR, &7u64.to_le_bytes(), &mut data);
    let whole = data.len();
    encode(KIND_SUBMIT, &job("j-4").to_bincode(), &mut data);
    data.truncate(data.len() - 3);
    let live = replay(&data, WIDE);
    let journal = Journal::read_live(&data, &live);
    assert_eq!(unfinished_ids(&journal), ["j-1", "j-3"]);
    assert_eq!(live.id_floor, 7);
    // A flipped bit ends the replay at that record.
    let mut corrupt = data[..whole].to_vec();
    corrupt[HEADER + 2] ^= 1;
    assert!(replay(&corrupt, WIDE).submits.is_empty());
}

#[tokio::test]
async fn a_reopened_journal_resumes_unfinished_jobs_and_compacts() {
    let dir = temp_dir("reopen");
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    assert!(journal.unfinished.is_empty());
    let (reply, acked) = oneshot::channel();
    let (_tx, rx) = oneshot::channel();
    let mut batch = Batch {
        id_floor: 12,
        ..Batch::default()
    };
    for name in ["a-1", "a-2"] {
        batch.records.submit(&job(name));
    }
    batch.records.push(Record::Complete(id("a-1")));
    batch.acks.push(Ack::One(reply, Ok((id("a-2"), rx))));
    journal.write(batch);
    let acked = tokio::time::timeout(STEP, acked).await.unwrap().unwrap();
    assert!(acked.is_ok());
    journal.close().await;
    let mut again = Journal::open(&dir, WIDE, None).unwrap();
    assert_eq!(unfinished_ids(&again), ["a-2"]);
    assert_eq!(again.id_floor, 12);
    // A job that made no attempt yet is journaled as attempt 1.
    assert_eq!(again.unfinished[0].attempt, 1);
    again.close().await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn finished_records_survive_a_reopen_within_retention_and_reruns_replace_them() {
    let dir = temp_dir("rec");
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    let now = now_ms();
    let mut records = Records::new("n1".into(), WIDE);
    let mut batch = Batch::default();
    for (name, at) in [("old-1", now - 7_200_000), ("new-1", now), ("again-1", now)] {
        batch.records.submit(&job(name));
        let blob = stored(&mut records, name, at, name == "new-1");
        batch.records.finished(&id(name), at, &blob);
    }
    // A re-run of again-1: submitted anew, not finished yet.
    batch.records.submit(&job("again-1"));
    write_durably(&journal, batch).await;
    journal.close().await;
    // Kept for an hour: the two-hour-old record is gone at reopen.
    let mut again = Journal::open(&dir, WIDE, None).unwrap();
    assert_eq!(finished_ids(&again), ["new-1"]);
    assert_eq!(unfinished_ids(&again), ["again-1"]);
    // The record reads back as it was kept, failure and all.
    let mut restored = Records::new("n1".into(), WIDE);
    for finished in std::mem::take(&mut again.finished) {
        finished.restore(&mut restored, now);
    }
    let record = restored.finished(&id("new-1")).unwrap();
    assert_eq!(Some(record.clone()), records.finished(&id("new-1")));
    assert_eq!(record.state, JobState::Dead);
    again.close().await;
    // A byte budget below one record keeps none.
    let tiny = Retention {
        age: Duration::from_secs(3600),
        bytes: 1,
    };
    let mut last = Journal::open(&dir, tiny, None).unwrap();
    assert!(last.finished.is_empty());
    last.close().await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_journal_with_json_records_of_an_older_build_opens_and_takes_new_ones() {
    let dir = temp_dir("old");
    fs::create_dir_all(&dir).unwrap();
    let now = now_ms();
    // The old form: JSON records, a completed submission, a live one.
    let mut data = Vec::new();
    for name in ["old-1", "old-2", "old-3"] {
        encode(KIND_SUBMIT, &job(name).to_bincode(), &mut data);
    }
    for name in ["old-1", "old-2"] {
        let mut body = now.to_le_bytes().to_vec();
        body.extend_from_slice(&record_json(name, now));
        encode(KIND_FINISHED_JSON, &body, &mut data);
    }
    fs::write(dir.join(FILE_NAME), &data).unwrap();

    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    assert_eq!(finished_ids(&journal), ["old-1", "old-2"]);
    assert_eq!(unfinished_ids(&journal), ["old-3"]);
    let mut records = Records::new("n1".into(), WIDE);
    let mut batch = Batch::default();
    let blob = stored(&mut records, "old-3", now, false);
    batch.records.finished(&id("old-3"), now, &blob);
    batch.records.submit(&job("new-1"));
    write_durably(&journal, batch).await;
    journal.close().await;

    // Both kinds, in the order they were written, through two reopens
    // (the first compacts the mixed file).
    for _ in 0..2 {
        let mut again = Journal::open(&dir, WIDE, None).unwrap();
        assert_eq!(finished_ids(&again), ["old-1", "old-2", "old-3"]);
        assert_eq!(unfinished_ids(&again), ["new-1"]);
        let mut restored = Records::new("n1".into(), WIDE);
        for finished in std::mem::take(&mut again.finished) {
            finished.restore(&mut restored, now);
        }
        let old: JobRecord = serde_json::from_slice(&record_json("old-2", now)).unwrap();
        assert_eq!(restored.finished(&id("old-2")), Some(old));
        assert_eq!(
            restored.finished(&id("old-3")),
            records.finished(&id("old-3"))
        );
        again.close().await;
    }
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_torn_finished_record_leaves_its_job_unfinished() {
    let dir = temp_dir("torn");
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    let now = now_ms();
    let mut records = Records::new("n1".into(), WIDE);
    let mut batch = Batch::default();
    for name in ["t-1", "t-2"] {
        batch.records.submit(&job(name));
    }
    for name in ["t-1", "t-2"] {
        let blob = stored(&mut records, name, now, false);
        batch.records.finished(&id(name), now, &blob);
    }
    write_durably(&journal, batch).await;
    journal.close().await;
    let path = dir.join(FILE_NAME);
    let data = fs::read(&path).unwrap();
    fs::write(&path, &data[..data.len() - 5]).unwrap();
    let mut again = Journal::open(&dir, WIDE, None).unwrap();
    assert_eq!(finished_ids(&again), ["t-1"]);
    assert_eq!(unfinished_ids(&again), ["t-2"]);
    again.close().await;
    let _ = fs::remove_dir_all(&dir);
}

/// Tens of thousands of jobs through the writer: the file is compacted
/// while it runs (from its own bytes, the writer keeps no copies), and a
/// reopen finds the unfinished jobs in order and the newest finished
/// records the byte budget keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_writing_keeps_every_live_record_in_order() {
    const JOBS: usize = 40_000;
    let dir = temp_dir("compact");
    let budget = Retention {
        age: Duration::from_secs(3600),
        bytes: 512 << 10,
    };
    let mut journal = Journal::open(&dir, budget, None).unwrap();
    let now = now_ms();
    let mut records = Records::new("n1".into(), WIDE);
    let name = |i: usize| format!("c-{i}");
    let mut written = 0;
    let mut batch = Batch::default();
    for i in 0..JOBS {
        let mut submitted = job(&name(i));
        submitted.data = format!("{i:0>64}");
        batch.records.submit(&submitted);
        // One job in a thousand stays unfinished.
        if i % 1000 != 7 {
            let blob = stored(&mut records, &name(i), now, i % 10 == 3);
            batch.records.finished(&id(&name(i)), now, &blob);
        }
        if batch.records.ops.len() >= 500 || i + 1 == JOBS {
            written += batch.records.bytes.len();
            write_durably(&journal, std::mem::take(&mut batch)).await;
        }
    }
    journal.close().await;
    let len = fs::metadata(dir.join(FILE_NAME)).unwrap().len();
    assert!(
        written > 2 * COMPACT_MIN_BYTES as usize && len < COMPACT_MIN_BYTES + (256 << 10),
        "{written} bytes written, file of {len}: no compaction while writing"
    );

    let mut again = Journal::open(&dir, budget, None).unwrap();
    let unfinished: Vec<String> = (0..JOBS).filter(|i| i % 1000 == 7).map(name).collect();
    assert_eq!(unfinished_ids(&again), unfinished);
    assert_eq!(again.unfinished[3].data, format!("{:0>64}", 3007));
    // The newest finished records, oldest first, within the byte budget.
    let finished = finished_ids(&again);
    assert!(finished.len() > 1000, "{} kept", finished.len());
    let newest: Vec<String> = (0..JOBS)
        .filter(|i| i % 1000 != 7)
        .map(name)
        .skip(JOBS - JOBS / 1000 - finished.len())
        .collect();
    assert_eq!(finished, newest);
    let mut restored = Records::new("n1".into(), WIDE);
    for finished in std::mem::take(&mut again.finished) {
        finished.restore(&mut restored, now);
    }
    for i in [JOBS - 1, JOBS - 7, JOBS - 17] {
        let job_id = id(&name(i));
        assert_eq!(restored.finished(&job_id), records.finished(&job_id));
    }
    again.close().await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dead_letters_survive_reopens_and_compaction_until_removed() {
    let dir = temp_dir("dead");
    let letter = |name: &str| DeadLetter {
        job: job(name),
        failures: vec![AttemptFailure {
            attempt: 1,
            node: Some("n2".into()),
            failure: JobFailure::new(FailureCause::Panic, format!("{name} broke")),
        }],
    };
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    let mut batch = Batch::default();
    for name in ["d-1", "d-2", "d-3"] {
        batch.records.submit(&job(name));
        batch.records.push(Record::Complete(id(name)));
        let body = encode_dead_letter(&letter(name));
        batch.records.push(Record::Dead(id(name), body));
    }
    batch.records.push(Record::Undead(id("d-2")));
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
    batch.records.push(Record::Undead(id("d-1")));
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

/// A small tmpfs mounted for one test (needs root, like the network
/// namespace tests); unmounted and removed when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` (the test is skipped, with a note) where mounting is not
    /// allowed.
    fn mount(name: &str, size: &str) -> Option<SmallDisk> {
        let dir = temp_dir(name);
        fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            let _ = fs::remove_dir_all(&dir);
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `batch` and returns what its durable acknowledgement says.
async fn write_outcome(journal: &Journal, mut batch: Batch) -> Result<(), io::ErrorKind> {
    let (tx, rx) = oneshot::channel();
    batch.acks.push(Ack::Durable(tx));
    journal.write(batch);
    tokio::time::timeout(STEP, rx).await.unwrap().unwrap()
}

/// A full disk: the write that does not fit is refused (its submitters
/// get the error), the part of it that reached the file is cut off, and
/// once there is room again the journal takes writes and replays all of
/// them (a torn record left in the middle would end the replay there).
#[tokio::test]
async fn a_full_disk_refuses_the_write_cuts_it_off_and_the_journal_goes_on() {
    let Some(disk) = SmallDisk::mount("disk-full", "512k") else {
        return;
    };
    // A filler takes most of the room; deleting it frees the disk later.
    let filler = disk.0.join("filler");
    fs::write(&filler, vec![0u8; 256 * 1024]).unwrap();
    let dir = disk.0.join("data");
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    let data = "x".repeat(4000);
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        let mut batch = Batch::default();
        let names: Vec<String> = (0..4).map(|i| format!("f-{n}-{i}")).collect();
        for name in &names {
            let job = Job::new("echo", data.clone()).with_id(id(name));
            batch.records.submit(&job);
        }
        match write_outcome(&journal, batch).await {
            Ok(()) => acked.extend(names),
            Err(kind) => {
                refused = Some((kind, names));
                break;
            }
        }
    }
    let (kind, lost) = refused.expect("a 512 KB disk never filled up");
    assert_eq!(kind, io::ErrorKind::StorageFull);
    assert!(acked.len() >= 4, "the first writes fit");
    // Room again: the journal goes on where the last good record ended.
    fs::remove_file(&filler).unwrap();
    let mut batch = Batch::default();
    for name in ["after-1", "after-2"] {
        batch.records.submit(&job(name));
    }
    assert_eq!(write_outcome(&journal, batch).await, Ok(()));
    journal.close().await;
    let mut again = Journal::open(&dir, WIDE, None).unwrap();
    let mut expected = acked.clone();
    expected.extend(["after-1".to_owned(), "after-2".to_owned()]);
    assert_eq!(unfinished_ids(&again), expected);
    for name in &lost {
        assert!(!unfinished_ids(&again).contains(name), "{name} was refused");
    }
    again.close().await;
}

/// Submits and completes `n` jobs of `data` in one durable write (bytes
/// that compaction drops).
async fn churn(journal: &Journal, tag: &str, n: usize, data: &str) {
    let mut batch = Batch::default();
    for i in 0..n {
        let job = Job::new("echo", data.to_owned()).with_id(id(&format!("{tag}-{i}")));
        batch.records.submit(&job);
        batch.records.push(Record::Complete(job.id.clone()));
    }
    assert_eq!(write_outcome(journal, batch).await, Ok(()), "{tag}");
}

/// A compaction that fails for want of room leaves the journal as it was
/// and takes its half-written copy away (else the journal's own appends
/// would fail next); with room again, the retry compacts, and a reopen
/// finds every unfinished job.
#[tokio::test]
async fn a_compaction_without_room_is_retried_later_and_leaves_no_copy_behind() {
    let Some(disk) = SmallDisk::mount("compact-no-room", "16m") else {
        return;
    };
    let dir = disk.0.join("data");
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let size = || fs::metadata(&path).unwrap().len();
    let mut journal = Journal::open(&dir, WIDE, None).unwrap();
    let data = "x".repeat(4000);
    // 1.2 MB of unfinished jobs: compaction starts past 4x that.
    let mut live = Vec::new();
    for n in 0..10 {
        let mut batch = Batch::default();
        for i in 0..30 {
            let job = Job::new("echo", data.clone()).with_id(id(&format!("live-{n}-{i}")));
            live.push(job.id.to_string());
            batch.records.submit(&job);
        }
        assert_eq!(write_outcome(&journal, batch).await, Ok(()));
    }
    let threshold = 4 * size();
    // 11 MB of the 16 MiB taken: too little room for the copy.
    let filler = disk.0.join("filler");
    fs::write(&filler, vec![0u8; 11_000_000]).unwrap();
    let mut round = 0;
    while size() <= threshold + 100_000 {
        churn(&journal, &format!("a{round}"), 8, &data).await;
        round += 1;
        assert!(round < 400, "the journal never reached its threshold");
    }
    assert!(size() > threshold, "a compaction succeeded without room");
    assert!(!tmp.exists(), "the failed compaction left its copy behind");
    // Room again: the retry (4 MiB later) compacts down to the live jobs.
    fs::remove_file(&filler).unwrap();
    let mut round = 0;
    while size() > threshold / 2 {
        churn(&journal, &format!("b{round}"), 8, &data).await;
        round += 1;
        assert!(round < 400, "the compaction was never retried");
    }
    assert!(!tmp.exists());
    journal.close().await;
    let mut again = Journal::open(&dir, WIDE, None).unwrap();
    assert_eq!(unfinished_ids(&again), live);
    again.close().await;
}
