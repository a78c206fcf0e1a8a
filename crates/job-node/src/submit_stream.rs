//! `submit --file`: streams a jobs file of any size to one node with a
//! window of unanswered jobs, in bounded memory.
//!
//! A producer task reads the file line by line, gives every job without an
//! id its id (`<prefix>-<n>`, `n` counting the file's jobs from 1, so a
//! rerun with the same prefix names the same jobs), records it in
//! `--ids-out`, and sends it once the window (counted in jobs) has room.
//! Jobs travel in batches (`{"cmd":"submit_batch"}`, `docs/jobs.md`): the
//! producer fills one frame from the window's free room and sends it as
//! soon as the room is used up, the batch is full, or the input pauses, so
//! a trickle is never held back. The caller's task reads the answers: each
//! result or refusal frees one place in the window.
//!
//! With `resume`, the producer first asks the cluster about every chunk of
//! [`MAX_IDS`] ids: finished jobs are reported from their records,
//! unfinished ones are attached to at their owner (their results arrive
//! there, once), and only the unknown ones are submitted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, Semaphore};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::client::{envelope_head, envelope_tail, parse_frame, ClientSender, FrameRef};
use crate::http::JobSubmission;
use crate::remote::{job_reply, reason_text, JobReply, RemoteError, Session, MAX_IDS};
use crate::secret::ClusterSecret;

/// How [`stream_jobs`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Most jobs sent and not yet answered.
    pub window: usize,
    /// Wait for every result (else stop once every job was taken).
    pub wait: bool,
    /// Prefix of the ids given to jobs without one.
    pub prefix: String,
    /// Look the ids up first; submit only the unknown ones.
    pub resume: bool,
    /// Limit for each command's answer and each connection.
    pub timeout: Duration,
    /// TLS settings for `wss://` URLs (the CA the nodes' certificates
    /// chain to).
    pub tls: Option<cluster_router::TlsConfig>,
    /// Keep each result's JSON text in [`Outcome::Result`] (else its
    /// `json` is empty: a caller that only counts, as `bench` does, saves
    /// a copy per job).
    pub result_json: bool,
}

impl StreamOptions {
    /// Waits for every result, a window of 5,000 jobs, ids `<prefix>-<n>`,
    /// a 10 s limit on connections and command answers, no resume.
    pub fn new(prefix: impl Into<String>) -> Self {
        StreamOptions {
            window: 5_000,
            wait: true,
            prefix: prefix.into(),
            resume: false,
            timeout: Duration::from_secs(10),
            tls: None,
            result_json: true,
        }
    }
}

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It was sent (without `wait`, its id is the line to print).
    Sent(String),
    /// Its final result (JobResult JSON).
    Result {
        /// The JSON text (empty without [`StreamOptions::result_json`]).
        json: String,
        /// Whether it succeeded.
        success: bool,
    },
    /// The cluster refused it, or it could not be followed.
    Refused {
        /// The job id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// What the producer tells the answer loop.
enum Event {
    Outcome(Outcome),
    /// This many more results will arrive through `Outcome` events.
    Expect(usize),
    /// Everything is sent; `barrier` is the tag of the final `stats`
    /// request (answered once every submission before it was taken).
    Done {
        barrier: u64,
    },
    Failed(anyhow::Error),
}

/// A batch sent and not yet fully answered.
struct Pending {
    /// The ids of its jobs, in order (refusals name their index).
    ids: Vec<String>,
    /// What was sent, kept (with `wait`) to send it again if the node's
    /// coordinator mailbox was full.
    payload: Option<SentPayload>,
    /// Entries not answered yet.
    left: usize,
}

/// Batches sent and not yet answered, by tag (at most the window's worth
/// of jobs). Tags are this client's own counter, so a fast unkeyed hasher
/// is safe.
type InFlight = Arc<Mutex<rustc_hash::FxHashMap<u64, Pending>>>;

/// A batch to send again: its ids and payload.
type Retry = (Vec<String>, SentPayload);

/// The payload of an envelope that was sent: a handle on the frame's text
/// (no copy) and where in it the payload lies.
#[derive(Debug, Clone)]
struct SentPayload {
    frame: Utf8Bytes,
    payload: std::ops::Range<usize>,
}

impl SentPayload {
    fn text(&self) -> &str {
        self.frame
            .as_str()
            .get(self.payload.clone())
            .unwrap_or_default()
    }
}

/// Most jobs per batch: the coordinator's bound.
const MAX_BATCH: usize = job_queue::MAX_BATCH_JOBS;

/// A batch past this many bytes of jobs is sent (far below the frame limit).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One answer to a batch (`docs/jobs.md`).
#[derive(serde::Deserialize)]
struct BatchAnswer<'a> {
    #[serde(borrow)]
    results: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    refused: Vec<Refusal>,
}

/// An answer to a batch read only for whether each result succeeded, in
/// one pass (a caller that only counts).
#[derive(serde::Deserialize)]
struct BatchCounts {
    results: Vec<ErrorProbe>,
    #[serde(default)]
    refused: Vec<Refusal>,
}

/// Whether a `JobResult` failed: `error` set (absent or null: success).
#[derive(serde::Deserialize)]
struct ErrorProbe {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Refusal {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    reason: String,
}

/// How long the producer waits before sending again jobs that found the
/// coordinator's mailbox full.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Whether a refusal only says that the coordinator's mailbox was full at
/// that moment (the router bounced the job before anyone saw it): safe to
/// send again.
fn mailbox_full(kind: &str, reason: &str) -> bool {
    kind == "undeliverable" && reason.contains("is full")
}

/// Connects to the node at `url` and streams `jobs` to its coordinator
/// with a window of `opts.window` unanswered jobs, reporting every job's
/// [`Outcome`] to `report` (results only with `opts.wait`). Each id is
/// written to `ids_out` (one per line) before its job is sent; the writer
/// is flushed whenever the window is full and at the end.
///
/// # Errors
///
/// A failed connection, an unreadable job (`jobs` yields an error), a
/// failed write to `ids_out`, a lost connection, or a failed lookup (with
/// `opts.resume`); what was reported stays reported.
pub async fn stream_jobs<I>(
    url: &str,
    secret: &ClusterSecret,
    jobs: I,
    ids_out: Option<Box<dyn Write + Send>>,
    opts: StreamOptions,
    mut report: impl FnMut(Outcome),
) -> anyhow::Result<()>
where
    I: Iterator<Item = anyhow::Result<JobSubmission>> + Send + 'static,
{
    let session = Session::connect_with(url, secret, opts.timeout, opts.tls.as_ref()).await?;
    let connect = Connector {
        url: url.to_owned(),
        secret: secret.clone(),
        tls: opts.tls.clone(),
    };
    let (sender, mut receiver, node) = session.into_parts();
    let window = Arc::new(Semaphore::new(opts.window.max(1)));
    let in_flight: InFlight = Arc::default();
    let (events_tx, mut events) = mpsc::channel(1024);
    let (retry_tx, retries) = mpsc::unbounded_channel();
    // Bounced jobs between their bounce and their resend (then in flight
    // again): the stream is not done while any is on its way back.
    let retrying = Arc::new(AtomicUsize::new(0));
    let producer = Producer {
        retries,
        retrying: Arc::clone(&retrying),
        sender,
        head: envelope_head(&format!("coordinator@{node}")),
        to: format!("coordinator@{node}"),
        window: Arc::clone(&window),
        in_flight: Arc::clone(&in_flight),
        events: events_tx,
        ids_out: ids_out.map(|f| std::io::BufWriter::with_capacity(64 * 1024, f)),
        opts: opts.clone(),
        connect,
        batch: Batch::default(),
    };
    let producing = tokio::spawn(producer.run(jobs));
    let (mut expected, mut barrier, mut barrier_seen) = (0usize, None, false);
    // Answers that matched nothing in flight before the barrier was known.
    let mut early: Vec<u64> = Vec::new();
    loop {
        // `retrying` first: a resend is in `in_flight` before it leaves it.
        let retrying_now = retrying.load(Ordering::SeqCst);
        let unanswered = in_flight.lock().map_or(0, |m| m.len()) + retrying_now;
        if barrier.is_some() {
            let done = if opts.wait {
                unanswered == 0 && expected == 0
            } else {
                barrier_seen
            };
            if done {
                break;
            }
        }
        tokio::select! {
            frame = receiver.recv_text() => {
                let text = frame?;
                let env = match parse_frame(&text, receiver.raw_payloads()).map_err(crate::client::ClientError::Protocol)? {
                    FrameRef::Envelope(env) => env,
                    FrameRef::Error(err) => return Err(RemoteError::Rejected(err).into()),
                };
                if Some(env.correlation_id) == barrier {
                    barrier_seen = true;
                    continue;
                }
                let mut taken = in_flight.lock().ok().and_then(|mut m| m.remove(&env.correlation_id));
                let Some(pending) = taken.as_mut() else {
                    // The barrier's answer can overtake the producer's
                    // `Done` event that names it: remember it (bounded).
                    if barrier.is_none() && early.len() < EARLY_ANSWERS {
                        early.push(env.correlation_id);
                    }
                    continue;
                };
                if env.kind() != "message" {
                    let reason = reason_text(&env.payload);
                    let retry = pending.payload.take().filter(|_| mailbox_full(env.kind(), &reason));
                    if let Some(payload) = retry {
                        // Keeps its places in the window; the producer sends it again.
                        retrying.fetch_add(1, Ordering::SeqCst);
                        let ids = std::mem::take(&mut pending.ids);
                        let _ = retry_tx.send((ids, payload));
                    } else {
                        // The whole batch (the node's answer, not a job's).
                        window.add_permits(pending.left);
                        for id in std::mem::take(&mut pending.ids) {
                            report(Outcome::Refused { id, reason: reason.clone() });
                        }
                    }
                    continue;
                }
                let keep = Keep { results: opts.wait, json: opts.result_json };
                let answered = batch_answer(&env.payload, &pending.ids, keep, &mut report)?;
                window.add_permits(answered.min(pending.left));
                pending.left = pending.left.saturating_sub(answered);
                if pending.left > 0 {
                    if let (Ok(mut m), Some(pending)) = (in_flight.lock(), taken) {
                        m.insert(env.correlation_id, pending);
                    }
                }
            }
            event = events.recv(), if barrier.is_none() || expected > 0 => match event {
                Some(Event::Outcome(outcome)) => {
                    if matches!(outcome, Outcome::Result { .. } | Outcome::Refused { .. }) {
                        expected = expected.saturating_sub(1);
                    }
                    report(outcome);
                }
                Some(Event::Expect(n)) => expected += n,
                Some(Event::Done { barrier: tag }) => {
                    barrier = Some(tag);
                    barrier_seen = early.contains(&tag);
                }
                Some(Event::Failed(err)) => return Err(err),
                None => anyhow::bail!("the submitting task ended early"),
            },
        }
    }
    // The producer is done (it sent `Done`) and only serves retries, which
    // end with this channel.
    drop(retry_tx);
    let _ = producing.await;
    Ok(())
}

/// What [`batch_answer`] reports of results.
#[derive(Debug, Clone, Copy)]
struct Keep {
    /// Report results at all (`wait`).
    results: bool,
    /// With their JSON text.
    json: bool,
}

/// Reports the entries of one answer to a batch of `ids`; returns how many
/// it answers. Without their text, whether each result succeeded is read
/// in the same pass as the answer; with it, each is borrowed from the
/// answer and copied once.
fn batch_answer(
    payload: &str,
    ids: &[String],
    keep: Keep,
    report: &mut impl FnMut(Outcome),
) -> anyhow::Result<usize> {
    let (results, refused) = if keep.results && !keep.json {
        let answer: BatchCounts =
            serde_json::from_str(payload).context("unexpected answer to a batch")?;
        for result in &answer.results {
            let success = result.error.is_none();
            report(Outcome::Result {
                json: String::new(),
                success,
            });
        }
        (answer.results.len(), answer.refused)
    } else {
        let answer: BatchAnswer<'_> =
            serde_json::from_str(payload).context("unexpected answer to a batch")?;
        if keep.results {
            for result in &answer.results {
                let success = crate::remote::succeeded(result.get());
                let json = result.get().to_owned();
                report(Outcome::Result { json, success });
            }
        }
        (answer.results.len(), answer.refused)
    };
    let count = results + refused.len();
    for refusal in refused {
        let id = refusal
            .id
            .or_else(|| refusal.index.and_then(|i| ids.get(i).cloned()))
            .unwrap_or_default();
        report(Outcome::Refused {
            id,
            reason: refusal.reason,
        });
    }
    Ok(count)
}

/// Most answers kept while the barrier is not known yet (only the barrier's
/// own answer is expected among them).
const EARLY_ANSWERS: usize = 64;

/// Opens more sessions (to look ids up, and to attach at a job's owner).
#[derive(Debug, Clone)]
struct Connector {
    /// The node the stream connected to.
    url: String,
    /// The cluster secret.
    secret: ClusterSecret,
    /// TLS settings for `wss://` URLs.
    tls: Option<cluster_router::TlsConfig>,
}

impl Connector {
    async fn session(&self, url: &str, timeout: Duration) -> Result<Session, RemoteError> {
        Session::connect_with(url, &self.secret, timeout, self.tls.as_ref()).await
    }
}

struct Producer {
    sender: ClientSender,
    /// `{"to":"coordinator@<node>","from":"","payload":`: every batch's
    /// envelope starts so.
    head: String,
    retries: mpsc::UnboundedReceiver<Retry>,
    /// Bounced jobs not yet sent again (see `stream_jobs`).
    retrying: Arc<AtomicUsize>,
    to: String,
    window: Arc<Semaphore>,
    in_flight: InFlight,
    events: mpsc::Sender<Event>,
    ids_out: Option<std::io::BufWriter<Box<dyn Write + Send>>>,
    opts: StreamOptions,
    connect: Connector,
    /// The batch being filled.
    batch: Batch,
}

/// Jobs gathered for one `submit_batch` frame, written straight into the
/// frame's text: the envelope's head, `{"cmd":"submit_batch","jobs":[` and
/// the jobs so far (each serialized in place, no string of its own).
#[derive(Default)]
struct Batch {
    ids: Vec<String>,
    json: Vec<u8>,
    /// The size of the last frame: the next one starts with that room.
    last_len: usize,
}

impl Batch {
    fn push(&mut self, head: &str, id: String, job: &JobSubmission) -> anyhow::Result<()> {
        if self.ids.is_empty() {
            self.json = Vec::with_capacity(self.last_len);
            self.json.extend_from_slice(head.as_bytes());
            self.json
                .extend_from_slice(br#"{"cmd":"submit_batch","jobs":["#);
        } else {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, job).context("cannot encode a job")?;
        self.ids.push(id);
        Ok(())
    }

    /// The bytes of jobs so far.
    fn len(&self) -> usize {
        self.json.len()
    }
}

impl Producer {
    async fn run<I>(mut self, jobs: I)
    where
        I: Iterator<Item = anyhow::Result<JobSubmission>>,
    {
        let result = self.produce(jobs).await;
        let event = match result {
            Ok(barrier) => Event::Done { barrier },
            Err(err) => Event::Failed(err),
        };
        let failed = matches!(event, Event::Failed(_));
        let _ = self.events.send(event).await;
        if failed {
            return;
        }
        // Jobs bounced by a full mailbox come back until the answer loop ends.
        while let Some(retry) = self.retries.recv().await {
            if let Err(err) = self.resend(retry).await {
                let _ = self.events.send(Event::Failed(err)).await;
                return;
            }
        }
    }

    /// Sends again a batch whose coordinator mailbox was full (it keeps its
    /// places in the window), after a short pause.
    async fn resend(&mut self, (ids, sent): Retry) -> anyhow::Result<()> {
        tokio::time::sleep(RETRY_PAUSE).await;
        let mut text = Vec::with_capacity(sent.frame.len());
        text.extend_from_slice(self.head.as_bytes());
        text.extend_from_slice(sent.text().as_bytes());
        // In `in_flight` again before it stops counting as retrying, so the
        // answer loop never sees it in neither.
        let retrying = Arc::clone(&self.retrying);
        self.send_frame(ids, text, move || {
            retrying.fetch_sub(1, Ordering::SeqCst);
        })
        .await
    }

    /// Ends the envelope `text` (head and payload) with the id its send
    /// carries, records the batch `ids` under that id and sends it.
    async fn send_frame(
        &mut self,
        ids: Vec<String>,
        mut text: Vec<u8>,
        tracked: impl FnOnce(),
    ) -> anyhow::Result<()> {
        let payload = self.head.len()..text.len();
        let tag = self.sender.next_message_id();
        envelope_tail(&mut text, tag);
        // Cannot fail: the head, JSON from serde_json and ASCII.
        let text = String::from_utf8(text).context("a batch is not UTF-8")?;
        let frame = Utf8Bytes::from(text);
        self.track(
            ids,
            SentPayload {
                frame: frame.clone(),
                payload,
            },
        );
        tracked();
        self.sender.send_envelope_text(frame).await?;
        Ok(())
    }

    /// Records the batch under the message id its next send will carry.
    fn track(&mut self, ids: Vec<String>, payload: SentPayload) {
        let tag = self.sender.next_message_id();
        let kept = self.opts.wait.then_some(payload);
        let left = ids.len();
        if let Ok(mut m) = self.in_flight.lock() {
            m.insert(
                tag,
                Pending {
                    ids,
                    payload: kept,
                    left,
                },
            );
        }
    }

    /// Sends the jobs gathered so far as one `submit_batch` frame.
    async fn send_batch(&mut self) -> anyhow::Result<()> {
        if self.batch.ids.is_empty() {
            return Ok(());
        }
        self.batch.json.extend_from_slice(b"]}");
        let text = std::mem::take(&mut self.batch.json);
        self.batch.last_len = text.len() + 32;
        let ids = std::mem::take(&mut self.batch.ids);
        let sent = (!self.opts.wait).then(|| ids.clone());
        self.send_frame(ids, text, || {}).await?;
        for id in sent.into_iter().flatten() {
            self.event(Event::Outcome(Outcome::Sent(id))).await?;
        }
        Ok(())
    }

    async fn produce<I>(&mut self, jobs: I) -> anyhow::Result<u64>
    where
        I: Iterator<Item = anyhow::Result<JobSubmission>>,
    {
        let mut lookup = None;
        if self.opts.resume {
            let url = self.connect.url.clone();
            lookup = Some(self.connect.session(&url, self.opts.timeout).await?);
        }
        let mut chunk = Vec::with_capacity(if self.opts.resume { MAX_IDS } else { 1 });
        for (n, job) in jobs.enumerate() {
            let mut job = job?;
            if job.id.as_deref().is_none_or(str::is_empty) {
                // Sized once (`format!` grew it, copying, per job).
                let prefix = &self.opts.prefix;
                let mut id = String::with_capacity(prefix.len() + 21);
                let _ = write!(id, "{prefix}-{}", n + 1);
                job.id = Some(id);
            }
            chunk.push(job);
            if chunk.len() == chunk.capacity() {
                self.flush_chunk(&mut chunk, lookup.as_mut()).await?;
            }
        }
        self.flush_chunk(&mut chunk, lookup.as_mut()).await?;
        self.send_batch().await?;
        self.flush_ids()?;
        // Barrier: the coordinator answers in order, so once this is
        // answered every submission before it was taken or refused.
        Ok(self.sender.send(&self.to, r#"{"cmd":"stats"}"#).await?)
    }

    async fn flush_chunk(
        &mut self,
        chunk: &mut Vec<JobSubmission>,
        lookup: Option<&mut Session>,
    ) -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let Some(lookup) = lookup else {
            for job in chunk.drain(..) {
                self.send(job).await?;
            }
            return Ok(());
        };
        // What was gathered leaves before the lookup waits.
        self.send_batch().await?;
        let ids: Vec<String> = chunk.iter().filter_map(|j| j.id.clone()).collect();
        let found = lookup.get(&ids, self.opts.timeout).await?;
        let unknown: std::collections::HashSet<String> = found.unknown.into_iter().collect();
        let mut unfinished: HashMap<String, Vec<String>> = HashMap::new();
        for record in found.records {
            let id = record["id"].as_str().unwrap_or_default().to_owned();
            match record.get("result").filter(|r| !r.is_null()) {
                Some(result) => {
                    let success = result.get("error").is_none_or(serde_json::Value::is_null);
                    let json = result.to_string();
                    self.event(Event::Expect(1)).await?;
                    self.event(Event::Outcome(Outcome::Result { json, success }))
                        .await?;
                }
                None => {
                    let owner = record["owner"].as_str().unwrap_or_default().to_owned();
                    unfinished.entry(owner).or_default().push(id);
                }
            }
        }
        for (owner, ids) in unfinished {
            self.attach(lookup, owner, ids).await?;
        }
        for job in chunk.drain(..) {
            if job.id.as_ref().is_some_and(|id| unknown.contains(id)) {
                self.send(job).await?;
            }
        }
        Ok(())
    }

    /// Follows `ids` at their owner from a task of their own: their results
    /// arrive as `Outcome` events.
    async fn attach(
        &mut self,
        lookup: &mut Session,
        owner: String,
        ids: Vec<String>,
    ) -> anyhow::Result<()> {
        let cluster = lookup.cluster(self.opts.timeout).await?;
        let url = cluster
            .members
            .iter()
            .find(|m| m.node == owner)
            .map(|m| m.url.clone())
            .with_context(|| format!("owner {owner} of {} jobs is not a member", ids.len()))?;
        self.event(Event::Expect(ids.len())).await?;
        let (connect, events, timeout) =
            (self.connect.clone(), self.events.clone(), self.opts.timeout);
        tokio::spawn(async move {
            let outcome = follow(&connect, &url, &ids, timeout, &events).await;
            if let Err(err) = outcome {
                let _ = events.send(Event::Failed(err)).await;
            }
        });
        Ok(())
    }

    /// Adds one job to the batch once the window has room for it; the
    /// batch leaves when it is full or the window's room is used up (the
    /// producer is about to wait).
    async fn send(&mut self, job: JobSubmission) -> anyhow::Result<()> {
        let id = job.id.clone().unwrap_or_default();
        if self.window.available_permits() == 0 {
            // About to wait: what was gathered leaves, and what was sent
            // is made visible first.
            self.send_batch().await?;
            self.flush_ids()?;
        }
        // Waits for room in the window, sending bounced batches again
        // meanwhile (they hold their places: were they left waiting, the
        // window could be all theirs).
        let window = Arc::clone(&self.window);
        loop {
            let retry = tokio::select! {
                biased;
                Some(retry) = self.retries.recv() => retry,
                permit = window.acquire() => {
                    permit.context("window closed")?.forget();
                    break;
                }
            };
            self.resend(retry).await?;
        }
        if let Some(out) = &mut self.ids_out {
            writeln!(out, "{id}").context("cannot write --ids-out")?;
        }
        self.batch.push(&self.head, id, &job)?;
        if self.batch.ids.len() >= MAX_BATCH
            || self.batch.len() >= MAX_BATCH_BYTES
            || self.window.available_permits() == 0
        {
            self.send_batch().await?;
        }
        Ok(())
    }

    fn flush_ids(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.ids_out {
            out.flush().context("cannot write --ids-out")?;
        }
        Ok(())
    }

    async fn event(&mut self, event: Event) -> anyhow::Result<()> {
        self.events
            .send(event)
            .await
            .map_err(|_| anyhow::anyhow!("the answer loop ended"))
    }
}

/// Attaches to `ids` at `url` and forwards each result.
async fn follow(
    connect: &Connector,
    url: &str,
    ids: &[String],
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    let mut session = connect.session(url, timeout).await?;
    let (tag, attached) = session.attach(ids, timeout).await?;
    for id in attached.unknown {
        let reason = format!("its owner {} no longer knows it", session.node());
        let _ = events
            .send(Event::Outcome(Outcome::Refused { id, reason }))
            .await;
    }
    for _ in 0..attached.attached.len() {
        let env = session.answer_to(tag, None).await?;
        let outcome = match job_reply(&env) {
            JobReply::Result { json, success } => Outcome::Result { json, success },
            JobReply::Refused(reason) => Outcome::Refused {
                id: String::new(),
                reason,
            },
        };
        let _ = events.send(Event::Outcome(outcome)).await;
    }
    Ok(())
}

#[cfg(test)]
#[path = "submit_stream_tests.rs"]
mod tests;
