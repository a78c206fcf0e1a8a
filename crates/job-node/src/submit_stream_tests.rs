//! `submit --file` against a fake node that speaks the edge contract
//! (`get`, `attach`, submissions, `members`), so that the client side is
//! checked without a real coordinator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

/// How the fake cluster knows job `n` (the number after the last `-`):
/// `n % 3 == 0` finished, `n % 3 == 1` running (attachable), else unknown.
fn known(id: &str) -> Option<&'static str> {
    let n: u64 = id.rsplit('-').next()?.parse().ok()?;
    match n % 3 {
        0 => Some("succeeded"),
        1 => Some("running"),
        _ => None,
    }
}

fn result_of(id: &str) -> Value {
    json!({"id": id, "result": format!("done {id}"), "worker_node": "fake", "attempt": 1, "elapsed_ms": 0.1})
}

/// Jobs submitted to the fake, by id.
type Submitted = Arc<Mutex<HashMap<String, usize>>>;

/// `bounce`: the first submission of every fifth job is bounced as a full
/// coordinator mailbox would be.
async fn fake_cluster(bounce: bool) -> (SocketAddr, Submitted) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let submitted: Submitted = Arc::default();
    let counts = Arc::clone(&submitted);
    tokio::spawn(async move {
        let mut client = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            client += 1;
            tokio::spawn(serve(tcp, client, addr, Arc::clone(&counts), bounce));
        }
    });
    (addr, submitted)
}

async fn serve(
    tcp: tokio::net::TcpStream,
    client: u64,
    addr: SocketAddr,
    counts: Submitted,
    bounce: bool,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let me = format!("client-{client}@fake");
    let hello = json!({"auth": "ok", "client_id": client}).to_string();
    let welcome =
        json!({"to": me, "from": "system@fake", "payload": json!({"welcome": me}).to_string()});
    for frame in [hello, welcome.to_string()] {
        ws.send(Message::Text(frame.into())).await.unwrap();
    }
    while let Some(Ok(Message::Text(text))) = ws.next().await {
        let env: Value = serde_json::from_str(text.as_str()).unwrap();
        let payload = &env["payload"];
        let answers: Vec<Value> = match payload["cmd"].as_str() {
            Some("members") => vec![
                json!({"members": [{"node": "fake", "url": format!("ws://{addr}"),
                "incarnation": 1, "status": "up", "heartbeat": 1, "tags": [],
                "load": {"cpu_percent": 0.0, "in_flight": 0, "queue_depth": 0}}]}),
            ],
            Some("get") => {
                let (mut records, mut unknown) = (Vec::new(), Vec::new());
                for id in payload["ids"].as_array().unwrap() {
                    let id = id.as_str().unwrap();
                    match known(id) {
                        Some("succeeded") => records.push(json!({"id": id, "owner": "fake", "state": "succeeded", "result": result_of(id)})),
                        Some(state) => records.push(json!({"id": id, "owner": "fake", "state": state})),
                        None => unknown.push(id),
                    }
                }
                vec![json!({"records": records, "unknown": unknown})]
            }
            Some("attach") => {
                let ids = payload["ids"].as_array().unwrap();
                let mut answers = vec![json!({"attached": ids, "unknown": []})];
                answers.extend(ids.iter().map(|id| result_of(id.as_str().unwrap())));
                answers
            }
            Some("stats") => vec![json!({})],
            Some("submit_batch") => {
                let jobs = payload["jobs"].as_array().unwrap();
                let ids: Vec<String> = jobs
                    .iter()
                    .map(|job| job["id"].as_str().unwrap().to_owned())
                    .collect();
                let mut first_of_fifth = false;
                {
                    let mut counts = counts.lock().unwrap();
                    for id in &ids {
                        let count = counts.entry(id.clone()).or_default();
                        *count += 1;
                        let n: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
                        first_of_fifth |= *count == 1 && n % 5 == 0;
                    }
                }
                if bounce && first_of_fifth {
                    let why = json!("mailbox of coordinator on fake is full (16384 queued)");
                    let reply = json!({"to": me, "from": env["to"], "payload": why.to_string(),
                        "correlation_id": env["id"], "kind": "undeliverable"});
                    ws.send(Message::Text(reply.to_string().into()))
                        .await
                        .unwrap();
                    continue;
                }
                // Two answers, as two flushes of a coordinator would give.
                let results: Vec<Value> = ids.iter().map(|id| result_of(id)).collect();
                let (head, tail) = results.split_at(results.len() / 2);
                [head, tail]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .map(|part| json!({"results": part, "refused": []}))
                    .collect()
            }
            Some(other) => panic!("unexpected command {other}"),
            None => panic!("a job outside a batch: {payload}"),
        };
        for answer in answers {
            let reply = json!({"to": me, "from": env["to"], "payload": answer.to_string(), "correlation_id": env["id"]});
            ws.send(Message::Text(reply.to_string().into()))
                .await
                .unwrap();
        }
    }
}

fn jobs(n: usize) -> impl Iterator<Item = anyhow::Result<JobSubmission>> + Send + 'static {
    (0..n).map(|_| Ok(JobSubmission::new("echo", "x")))
}

async fn run(resume: bool, n: usize, window: usize) -> (Vec<Outcome>, Submitted) {
    run_with(resume, n, window, false).await
}

async fn run_with(
    resume: bool,
    n: usize,
    window: usize,
    bounce: bool,
) -> (Vec<Outcome>, Submitted) {
    let (addr, submitted) = fake_cluster(bounce).await;
    let url = format!("ws://{addr}");
    let secret = ClusterSecret::development();
    let opts = StreamOptions {
        window,
        resume,
        timeout: LIMIT,
        ..StreamOptions::new("t")
    };
    let mut outcomes = Vec::new();
    tokio::time::timeout(
        LIMIT * 3,
        stream_jobs(&url, &secret, jobs(n), None, opts, |o| outcomes.push(o)),
    )
    .await
    .expect("in time")
    .expect("streamed");
    (outcomes, submitted)
}

fn result_ids(outcomes: &[Outcome]) -> Vec<String> {
    let mut ids: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Result {
                json,
                success: true,
            } => serde_json::from_str::<Value>(json).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            other => panic!("unexpected outcome {other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn ids_are_assigned_in_order_and_every_job_is_answered_through_a_small_window() {
    let (outcomes, submitted) = run(false, 2_500, 7).await;
    let ids = result_ids(&outcomes);
    let mut expected: Vec<String> = (1..=2_500).map(|n| format!("t-{n}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(submitted.lock().unwrap().len(), 2_500);
}

#[tokio::test]
async fn resume_submits_only_unknown_ids_and_collects_every_result_once() {
    // 2,500 jobs: three chunks of `get`, attach for the running ones.
    let (outcomes, submitted) = run(true, 2_500, 100).await;
    let ids = result_ids(&outcomes);
    let mut expected: Vec<String> = (1..=2_500).map(|n| format!("t-{n}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "one result per job, none twice");
    let submitted = submitted.lock().unwrap();
    assert!(
        submitted.values().all(|&n| n == 1),
        "nothing submitted twice"
    );
    let mut sent: Vec<&String> = submitted.keys().collect();
    sent.sort();
    let mut unknown: Vec<String> = (1..=2_500)
        .map(|n| format!("t-{n}"))
        .filter(|id| known(id).is_none())
        .collect();
    unknown.sort();
    assert_eq!(
        sent,
        unknown.iter().collect::<Vec<_>>(),
        "only the unknown ids are submitted"
    );
}

#[tokio::test]
async fn batches_bounced_by_a_full_mailbox_are_sent_again_and_answered_once() {
    // A window of 10: at times every place is held by a bounced batch.
    let (outcomes, submitted) = run_with(false, 1_000, 10, true).await;
    let ids = result_ids(&outcomes);
    assert_eq!(ids.len(), 1_000, "every job answered once");
    let submitted = submitted.lock().unwrap();
    let mut again = 0;
    for (id, count) in submitted.iter() {
        let n: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
        if n % 5 == 0 {
            assert_eq!(*count, 2, "{id} was bounced once, then sent again");
        }
        assert!(*count <= 2, "{id}");
        again += usize::from(*count == 2);
    }
    assert!(again >= 200, "every fifth job was sent again");
}

#[tokio::test]
async fn a_window_larger_than_a_batch_answers_every_job() {
    let (addr, submitted) = fake_cluster(false).await;
    let url = format!("ws://{addr}");
    let opts = StreamOptions {
        window: 20_000,
        timeout: LIMIT,
        ..StreamOptions::new("big")
    };
    let mut outcomes = Vec::new();
    tokio::time::timeout(
        LIMIT * 3,
        stream_jobs(
            &url,
            &ClusterSecret::development(),
            jobs(10_000),
            None,
            opts,
            |o| {
                outcomes.push(o);
            },
        ),
    )
    .await
    .expect("in time")
    .expect("streamed");
    assert_eq!(result_ids(&outcomes).len(), 10_000);
    assert_eq!(submitted.lock().unwrap().len(), 10_000);
}

#[test]
fn a_batch_answer_reports_success_with_or_without_the_text() {
    let ok = result_of("b-1").to_string();
    let failed =
        json!({"id": "b-2", "result": null, "error": {"cause": "handler", "message": "no"},
        "worker_node": "fake", "attempt": 1, "elapsed_ms": 0.1})
        .to_string();
    let payload =
        format!(r#"{{"results":[{ok},{failed}],"refused":[{{"index":2,"reason":"bad"}}]}}"#);
    let ids = ["b-1".to_owned(), "b-2".to_owned(), "b-3".to_owned()];
    for json in [true, false] {
        let mut outcomes = Vec::new();
        let keep = Keep {
            results: true,
            json,
        };
        let answered = batch_answer(&payload, &ids, keep, &mut |o| outcomes.push(o)).unwrap();
        assert_eq!(answered, 3);
        let text = |t: &str| if json { t.to_owned() } else { String::new() };
        assert_eq!(
            outcomes,
            [
                Outcome::Result {
                    json: text(&ok),
                    success: true
                },
                Outcome::Result {
                    json: text(&failed),
                    success: false
                },
                Outcome::Refused {
                    id: "b-3".into(),
                    reason: "bad".into()
                },
            ]
        );
    }
    let mut outcomes = Vec::new();
    let keep = Keep {
        results: false,
        json: true,
    };
    assert_eq!(
        batch_answer(&payload, &ids, keep, &mut |o| outcomes.push(o)).unwrap(),
        3
    );
    assert_eq!(outcomes.len(), 1, "only the refusal without wait");
    assert!(batch_answer("[1]", &ids, keep, &mut |_| {}).is_err());
}

#[tokio::test]
async fn counting_only_streams_tens_of_thousands_of_jobs_without_their_text() {
    let (addr, submitted) = fake_cluster(false).await;
    let url = format!("ws://{addr}");
    let opts = StreamOptions {
        window: 5_000,
        timeout: LIMIT,
        result_json: false,
        ..StreamOptions::new("count")
    };
    let (mut succeeded, mut other) = (0usize, 0usize);
    tokio::time::timeout(
        LIMIT * 6,
        stream_jobs(
            &url,
            &ClusterSecret::development(),
            jobs(30_000),
            None,
            opts,
            |o| match o {
                Outcome::Result {
                    json,
                    success: true,
                } if json.is_empty() => succeeded += 1,
                _ => other += 1,
            },
        ),
    )
    .await
    .expect("in time")
    .expect("streamed");
    assert_eq!((succeeded, other), (30_000, 0));
    let submitted = submitted.lock().unwrap();
    assert_eq!(submitted.len(), 30_000);
    assert!(submitted.values().all(|&n| n == 1), "each job sent once");
}
