//! Jobs submitted throughout a scenario through `coordinator@n1` by one
//! WebSocket client, with ids it assigns, and every result envelope the
//! client receives counted: so duplicates to the caller and lost jobs are
//! measured where the user would see them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use job_node::{ClientFrame, ClientReceiver};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lab::Lab;
use super::observer::connect;

/// Jobs per submission tick (every [`TICK`]).
const PER_TICK: usize = 3;
/// Interval between submission ticks: 60 jobs per second.
const TICK: Duration = Duration::from_millis(50);

/// What the caller saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Jobs sent to the coordinator.
    pub submitted: usize,
    /// Result envelopes received (duplicates included).
    pub results: usize,
    /// Distinct jobs with a result.
    pub distinct: usize,
    /// Results beyond the first for a job.
    pub duplicates: usize,
    /// Results that are failures (after the coordinator's retries).
    pub failed: usize,
    /// Submissions the coordinator refused (an Error answer).
    pub refused: usize,
    /// Jobs without any answer when the wait ended.
    pub lost: usize,
    /// Longest time from submission to result.
    pub max_latency: Duration,
}

#[derive(Debug, Default)]
struct Books {
    sent_at: HashMap<u64, (String, Instant)>,
    seen: HashMap<String, usize>,
    results: usize,
    failed: usize,
    refused: usize,
    max_latency: Duration,
}

#[derive(Deserialize)]
struct ResultJson {
    id: String,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// A running workload.
#[derive(Debug)]
pub struct Workload {
    books: Arc<Mutex<Books>>,
    stop: watch::Sender<bool>,
    sender: JoinHandle<usize>,
    receiver: JoinHandle<()>,
}

impl Workload {
    /// Connects to n1 and starts submitting jobs (`sleep` 10-100 ms, and
    /// `echo`) with ids `<scenario>-<n>`.
    pub async fn start(lab: &Lab, scenario: &str) -> Workload {
        let client = connect(lab, 1).await;
        let (mut tx, rx) = client.into_split();
        let books = Arc::new(Mutex::new(Books::default()));
        let (stop, mut stopped) = watch::channel(false);
        let receiver = tokio::spawn(receive(rx, books.clone()));
        let scenario = scenario.to_owned();
        let to = format!("coordinator@{}", lab.name(1));
        let sender_books = books.clone();
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            let mut n = 0usize;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return n,
                }
                for _ in 0..PER_TICK {
                    n += 1;
                    let id = format!("{scenario}-{n}");
                    let job = if n % 5 == 0 {
                        format!(r#"{{"id":"{id}","kind":"echo","data":"{id}"}}"#)
                    } else {
                        let ms = 10 + (n * 37) % 91;
                        format!(r#"{{"id":"{id}","kind":"sleep","data":"{ms}"}}"#)
                    };
                    let at = Instant::now();
                    match tx.send(&to, &job).await {
                        Ok(msg) => {
                            sender_books.lock().unwrap().sent_at.insert(msg, (id, at));
                        }
                        Err(err) => panic!("the workload client lost n1: {err}"),
                    }
                }
            }
        });
        Workload {
            books,
            stop,
            sender,
            receiver,
        }
    }

    /// Stops submitting and waits (at most `limit`) until every job has
    /// its answer; then tallies.
    pub async fn finish(self, limit: Duration) -> Tally {
        let _ = self.stop.send(true);
        let submitted = self.sender.await.expect("sender task");
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answered = {
                let b = self.books.lock().unwrap();
                b.seen.len() + b.refused
            };
            if answered >= submitted || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Late duplicates would arrive right behind: give them a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.receiver.abort();
        let b = self.books.lock().unwrap();
        let distinct = b.seen.len();
        Tally {
            submitted,
            results: b.results,
            distinct,
            duplicates: b.seen.values().map(|n| n - 1).sum(),
            failed: b.failed,
            refused: b.refused,
            lost: submitted.saturating_sub(distinct + b.refused),
            max_latency: b.max_latency,
        }
    }
}

async fn receive(mut rx: ClientReceiver, books: Arc<Mutex<Books>>) {
    while let Ok(frame) = rx.recv().await {
        let ClientFrame::Envelope(env) = frame else {
            continue;
        };
        if !env.from.starts_with("coordinator@") {
            continue;
        }
        let mut b = books.lock().unwrap();
        if env.kind != "message" {
            b.refused += 1;
            continue;
        }
        let Ok(result) = serde_json::from_str::<ResultJson>(&env.payload) else {
            continue;
        };
        b.results += 1;
        if result.error.is_some() {
            b.failed += 1;
        }
        if let Some((_, at)) = b.sent_at.get(&env.correlation_id) {
            let latency = at.elapsed();
            b.max_latency = b.max_latency.max(latency);
        }
        *b.seen.entry(result.id).or_default() += 1;
    }
}

/// The coordinator's figures: (retries, late results dropped as duplicates).
pub async fn coordinator_stats(lab: &Lab) -> (u64, u64) {
    #[derive(Deserialize)]
    struct Stats {
        retries: u64,
        late_results: u64,
    }
    let mut client = connect(lab, 1).await;
    let to = format!("coordinator@{}", lab.name(1));
    let id = client.send(&to, r#"{"cmd":"stats"}"#).await.expect("send");
    let reply = tokio::time::timeout(super::LIMIT, async {
        loop {
            if let Ok(ClientFrame::Envelope(env)) = client.recv().await {
                if env.correlation_id == id {
                    return env.payload;
                }
            }
        }
    })
    .await
    .expect("stats in time");
    let stats: Stats = serde_json::from_str(&reply).expect("stats JSON");
    (stats.retries, stats.late_results)
}
