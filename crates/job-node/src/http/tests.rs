//! The HTTP layer against a fake backend, over real loopback sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::*;
use crate::metrics::Metrics;
use job_queue::{KindStatsSnapshot, TimingSnapshot};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `echo` jobs at once; kind `fail` goes to the dead letters; kind
/// `overload` is refused; kind `slow` never finishes.
#[derive(Default)]
struct FakeApi {
    jobs: Mutex<HashMap<String, JobView>>,
    next: Mutex<u64>,
}

fn view(id: &str, job: &JobSubmission) -> JobView {
    let mut view = JobView {
        id: id.to_owned(),
        state: JobState::Queued,
        kind: Some(job.kind.clone()),
        attempt: 0,
        result: None,
        error: None,
        worker_node: None,
        elapsed_ms: None,
    };
    match job.kind.as_str() {
        "echo" => {
            view.state = JobState::Succeeded;
            view.attempt = 1;
            view.result = Some(job.data.clone());
            view.worker_node = Some("node-b".into());
            view.elapsed_ms = Some(0.5);
        }
        "fail" => {
            view.state = JobState::Dead;
            view.attempt = 3;
            view.error = Some(FailureView {
                cause: "handler".into(),
                message: "boom".into(),
                retryable: true,
            });
        }
        _ => {}
    }
    view
}

/// The record a view stands for (owner `node-a`).
fn record_of(view: &JobView) -> RecordView {
    let id = job_queue::JobId::new(&view.id).unwrap();
    let node = view.worker_node.clone().unwrap_or_default();
    let elapsed = Duration::from_secs_f64(view.elapsed_ms.unwrap_or(0.0) / 1e3);
    let result = match (&view.result, &view.error) {
        (Some(out), _) => Some(job_queue::JobResult::success(
            id.clone(),
            out.clone(),
            node,
            view.attempt,
            elapsed,
        )),
        (None, Some(e)) => Some(job_queue::JobResult::failure(
            id.clone(),
            job_queue::JobFailure::new(job_queue::FailureCause::Handler, e.message.clone()),
            node,
            view.attempt,
            elapsed,
        )),
        (None, None) => None,
    };
    RecordView {
        id,
        kind: view.kind.clone().unwrap_or_default(),
        owner: "node-a".into(),
        state: view.state,
        attempt: view.attempt,
        max_attempts: 3,
        submitted_ms: 1,
        started_ms: None,
        finished_ms: None,
        attempts: Vec::new(),
        progress: None,
        result,
    }
}

#[async_trait::async_trait]
impl Api for FakeApi {
    async fn submit(&self, jobs: Vec<JobSubmission>) -> Result<Vec<String>, ApiError> {
        if jobs.iter().any(|j| j.kind == "overload") {
            return Err(ApiError::Overloaded);
        }
        if jobs.iter().any(|j| j.kind == "broken") {
            return Err(ApiError::Internal("disk on fire".into()));
        }
        let mut ids = Vec::new();
        for job in jobs {
            let id = job.id.clone().unwrap_or_else(|| {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                format!("node-a-{next}")
            });
            self.jobs
                .lock()
                .unwrap()
                .insert(id.clone(), view(&id, &job));
            ids.push(id);
        }
        Ok(ids)
    }

    async fn wait(&self, ids: &[String], _timeout: Duration) -> Result<Vec<JobView>, ApiError> {
        let jobs = self.jobs.lock().unwrap();
        Ok(ids.iter().filter_map(|id| jobs.get(id).cloned()).collect())
    }

    async fn job(&self, id: &str) -> Result<Option<RecordView>, ApiError> {
        Ok(self.jobs.lock().unwrap().get(id).map(record_of))
    }

    async fn cancel(&self, id: &str) -> Result<Option<JobState>, ApiError> {
        let mut jobs = self.jobs.lock().unwrap();
        let Some(view) = jobs.get_mut(id) else {
            return Ok(None);
        };
        if !view.state.is_final() {
            view.state = JobState::Cancelled;
        }
        Ok(Some(view.state))
    }

    async fn resubmit(&self, id: &str) -> Result<Option<String>, ApiError> {
        let mut jobs = self.jobs.lock().unwrap();
        match jobs.get_mut(id) {
            Some(view) if view.state == JobState::Dead => {
                view.state = JobState::Queued;
                Ok(Some(id.to_owned()))
            }
            _ => Ok(None),
        }
    }

    async fn discard(&self, id: &str) -> Result<bool, ApiError> {
        let mut jobs = self.jobs.lock().unwrap();
        let dead = jobs.get(id).is_some_and(|v| v.state == JobState::Dead);
        if dead {
            jobs.remove(id);
        }
        Ok(dead)
    }

    async fn dead_letters(&self) -> Result<Vec<JobView>, ApiError> {
        let jobs = self.jobs.lock().unwrap();
        Ok(jobs
            .values()
            .filter(|v| v.state == JobState::Dead)
            .cloned()
            .collect())
    }

    async fn cluster(&self) -> Result<ClusterView, ApiError> {
        let member = |node: &str, status: &str, in_flight| MemberView {
            node: node.into(),
            url: "ws://127.0.0.1:1".into(),
            status: status.into(),
            tags: vec!["gpu".into()],
            load: LoadView {
                cpu_percent: 12.5,
                in_flight,
                queue_depth: 0,
            },
        };
        Ok(ClusterView {
            node: "node-a".into(),
            links: 2,
            members: vec![
                member("node-a", "up", 1),
                member("node-b", "up", 4),
                member("node-c", "suspect", 0),
            ],
        })
    }

    async fn stats(&self) -> Result<StatsView, ApiError> {
        let dead = self.dead_letters().await?.len() as u64;
        Ok(StatsView {
            submitted: self.jobs.lock().unwrap().len() as u64,
            dead_letters: dead,
            queued: 3,
            refusals: 2,
            ..StatsView::default()
        })
    }

    /// Filters by state, kind and id text; newest (highest id) first.
    async fn search(&self, query: job_queue::JobQuery) -> Result<job_queue::JobPage, ApiError> {
        let jobs = self.jobs.lock().unwrap();
        let mut hits: Vec<RecordView> = jobs
            .values()
            .filter(|v| query.state.is_none_or(|s| s == v.state))
            .filter(|v| {
                query
                    .kind
                    .as_deref()
                    .is_none_or(|k| v.kind.as_deref() == Some(k))
            })
            .filter(|v| query.id.as_deref().is_none_or(|t| v.id.contains(t)))
            .map(record_of)
            .collect();
        hits.sort_by(|a, b| b.id.as_str().cmp(a.id.as_str()));
        let total = hits.len();
        let offset = query.offset.min(total);
        let jobs = hits.into_iter().skip(offset).take(query.limit).collect();
        Ok(job_queue::JobPage {
            total,
            offset,
            jobs,
        })
    }

    /// Every succeeded job, as finished now.
    async fn finished_between(
        &self,
        _after_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<job_queue::FinishedSample>, ApiError> {
        let jobs = self.jobs.lock().unwrap();
        Ok(jobs
            .values()
            .filter(|v| v.state == JobState::Succeeded)
            .take(limit)
            .map(|v| job_queue::FinishedSample {
                kind: v.kind.clone().unwrap_or_default(),
                node: v.worker_node.clone().unwrap_or_default(),
                finished_ms: until_ms,
                elapsed_ms: v.elapsed_ms.unwrap_or(0.0),
                succeeded: true,
            })
            .collect())
    }
}

struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let metrics = Arc::new(Metrics::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::new(FakeApi::default()), metrics.clone());
        let task = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        timeout(LIMIT, request(self.addr, method, path, body))
            .await
            .expect("HTTP request hung")
    }

    /// `GET /metrics` with `accept` as the `Accept` header (none if empty).
    async fn get_metrics(&self, accept: &str) -> Reply {
        let extra = if accept.is_empty() {
            String::new()
        } else {
            format!("Accept: {accept}\r\n")
        };
        timeout(
            LIMIT,
            request_with(self.addr, "GET", "/metrics", &extra, None),
        )
        .await
        .expect("HTTP request hung")
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(LIMIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// Asserts a JSON error answer and returns its message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        let message = body["error"]
            .as_str()
            .expect("error body has `error`")
            .to_owned();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert!(!message.is_empty());
        message
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Reply {
    request_with(addr, method, path, "", body).await
}

/// [`request`] with `extra` header lines (each ending in `\r\n`).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (headers, body) = raw.split_once("\r\n\r\n").expect("no header end");
    let status = headers[9..12].parse().unwrap();
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers: headers.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

#[path = "dashboard_tests.rs"]
mod dashboard;

#[tokio::test]
async fn submit_one_and_batch() {
    let server = Server::start().await;
    let reply = server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"echo","data":"hi"}"#))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let reply = server.call("GET", &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["state"], "succeeded");
    assert_eq!(reply.json()["owner"], "node-a");
    assert_eq!(reply.json()["result"]["result"], "hi");

    let batch = json!([
        {"kind": "echo", "data": {"structured": [1, 2]}},
        {"kind": "slow", "id": "mine-1", "tags": ["gpu"], "timeout_ms": 500, "max_attempts": 2},
    ]);
    let reply = server
        .call("POST", "/v1/jobs", Some(&batch.to_string()))
        .await;
    assert_eq!(reply.status, 202);
    let ids = reply.json()["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], "mine-1");
    let first = server
        .call(
            "GET",
            &format!("/v1/jobs/{}", ids[0].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        first.json()["result"]["result"],
        r#"{"structured":[1,2]}"#,
        "non-string data becomes JSON text"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn submit_and_wait() {
    let server = Server::start().await;
    let reply = server
        .call(
            "POST",
            "/v1/jobs?wait=true",
            Some(r#"{"kind":"echo","data":"x"}"#),
        )
        .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(
        (body["state"].as_str(), body["result"].as_str()),
        (Some("succeeded"), Some("x"))
    );
    assert_eq!(body["worker_node"], "node-b");
    let batch = r#"[{"kind":"echo","data":"a"},{"kind":"fail"},{"kind":"slow"}]"#;
    let reply = server
        .call("POST", "/v1/jobs?wait=true&timeout=0.5", Some(batch))
        .await;
    assert_eq!(reply.status, 200);
    let states: Vec<_> = reply.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["succeeded", "dead", "queued"]);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let server = Server::start().await;
    let cases: &[(&str, u16, &str)] = &[
        ("{not json", 400, "parse"),
        (r#"{"data":"no kind"}"#, 422, "kind"),
        (r#"{"kind":"echo","bogus":1}"#, 422, "bogus"),
        (r#"{"kind":""}"#, 422, "kind"),
        (r#"{"kind":"echo","timeout_ms":0}"#, 422, "timeout_ms"),
        (r#"{"kind":"echo","max_attempts":0}"#, 422, "max_attempts"),
        (
            r#"{"kind":"echo","tags":"gpu"}"#,
            422,
            "expected a sequence",
        ),
        ("[]", 422, "empty batch"),
        ("42", 422, "expected a job object"),
        (r#"[{"kind":"echo"},{"kynd":"echo"}]"#, 422, "job 1"),
    ];
    for (body, status, needle) in cases {
        let reply = server.call("POST", "/v1/jobs", Some(body)).await;
        let message = reply.error(*status);
        assert!(message.contains(needle), "{body}: {message}");
    }
    let reply = server
        .call("POST", "/v1/jobs?wait=maybe", Some(r#"{"kind":"echo"}"#))
        .await;
    reply.error(400);
    let reply = server
        .call("POST", "/v1/jobs?timeout=5", Some(r#"{"kind":"echo"}"#))
        .await;
    assert!(reply.error(400).contains("wait=true"));
    let reply = server
        .call(
            "POST",
            "/v1/jobs?wait=true&timeout=-1",
            Some(r#"{"kind":"echo"}"#),
        )
        .await;
    reply.error(400);
    // A megabyte of field name, query parameter or job is quoted briefly.
    let long = "x".repeat(1 << 20);
    for (path, body, status) in [
        (
            "/v1/jobs".to_owned(),
            format!(r#"{{"kind":"echo","{long}":1}}"#),
            422,
        ),
        (
            "/v1/jobs".to_owned(),
            format!(r#"{{"kind":"echo"{long}}}"#),
            400,
        ),
        (
            // (A megabyte of URL is refused by the HTTP layer: 431.)
            format!("/v1/jobs?wait={}", &long[..4000]),
            r#"{"kind":"echo"}"#.to_owned(),
            400,
        ),
    ] {
        let message = server.call("POST", &path, Some(&body)).await.error(status);
        assert!(
            message.len() <= cluster_router::MAX_ERROR_TEXT,
            "{} bytes: {}",
            message.len(),
            &message[..200]
        );
    }
    let too_many = serde_json::to_string(&vec![json!({"kind": "echo"}); MAX_BATCH + 1]).unwrap();
    server
        .call("POST", "/v1/jobs", Some(&too_many))
        .await
        .error(413);
    server.shutdown().await;
}

#[tokio::test]
async fn missing_content_type_is_a_json_error() {
    let server = Server::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let raw =
        "POST /v1/jobs HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut reply = String::new();
    timeout(LIMIT, stream.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 415"), "{reply}");
    assert!(reply.contains(r#"{"error":"#), "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn backend_errors_map_to_statuses() {
    let server = Server::start().await;
    let reply = server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"overload"}"#))
        .await;
    assert!(reply.error(429).contains("overloaded"));
    let reply = server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"broken"}"#))
        .await;
    assert!(reply.error(500).contains("disk on fire"));
    server.shutdown().await;
}

#[tokio::test]
async fn lookups_and_listing() {
    let server = Server::start().await;
    let reply = server.call("GET", "/v1/jobs/unknown-7", None).await;
    assert!(reply.error(404).contains("unknown-7"));
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"fail","id":"bad-1"}"#))
        .await;
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"echo"}"#))
        .await;
    let reply = server.call("GET", "/v1/jobs?state=dead", None).await;
    assert_eq!(reply.status, 200);
    let jobs = reply.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], "bad-1");
    assert_eq!(jobs[0]["error"]["cause"], "handler");
    assert!(server
        .call("GET", "/v1/jobs", None)
        .await
        .error(400)
        .contains("state=dead"));
    server
        .call("GET", "/v1/jobs?state=running", None)
        .await
        .error(400);
    server
        .call("GET", "/v1/jobs?state=dead&x=1", None)
        .await
        .error(400);

    let cluster = server.call("GET", "/v1/cluster", None).await.json();
    assert_eq!(cluster["members"].as_array().unwrap().len(), 3);
    assert_eq!(cluster["members"][1]["load"]["in_flight"], 4);
    let stats = server.call("GET", "/v1/stats", None).await.json();
    assert_eq!(stats["submitted"], 2);
    assert_eq!(stats["dead_letters"], 1);
    assert_eq!(
        (stats["queued"].as_u64(), stats["refusals"].as_u64()),
        (Some(3), Some(2))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_and_dead_letters_over_http() {
    let server = Server::start().await;
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"slow","id":"s-1"}"#))
        .await;
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"fail","id":"bad-1"}"#))
        .await;
    let reply = server.call("DELETE", "/v1/jobs/s-1", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "cancelled");
    let reply = server.call("DELETE", "/v1/jobs/bad-1", None).await;
    assert_eq!(reply.json()["state"], "dead", "a final job stays as it was");
    server
        .call("DELETE", "/v1/jobs/nope", None)
        .await
        .error(404);
    let list = server.call("GET", "/v1/dead-letters", None).await.json();
    assert_eq!(list["jobs"][0]["id"], "bad-1");
    let reply = server
        .call("POST", "/v1/dead-letters/bad-1/resubmit", None)
        .await;
    assert_eq!(
        (reply.status, reply.json()["id"].clone()),
        (202, json!("bad-1"))
    );
    server
        .call("POST", "/v1/dead-letters/bad-1/resubmit", None)
        .await
        .error(404);
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"fail","id":"bad-2"}"#))
        .await;
    let reply = server.call("DELETE", "/v1/dead-letters/bad-2", None).await;
    assert_eq!(reply.json()["discarded"], true);
    server
        .call("DELETE", "/v1/dead-letters/bad-2", None)
        .await
        .error(404);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let server = Server::start().await;
    assert!(server
        .call("GET", "/nope", None)
        .await
        .error(404)
        .contains("/nope"));
    assert!(server
        .call("DELETE", "/v1/jobs", None)
        .await
        .error(405)
        .contains("DELETE"));
    server
        .call("POST", "/v1/cluster", Some("{}"))
        .await
        .error(405);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_text_parses() {
    let server = Server::start().await;
    server
        .metrics
        .observe_attempt("sha256", "node-b", Duration::from_millis(3));
    server
        .metrics
        .observe_attempt("sha256", "node-b", Duration::from_millis(40));
    let stats = |submitted, completed| StatsView {
        submitted,
        retries: 2,
        refusals: submitted,
        nodes: vec![NodeStatsView {
            node: "node-b".into(),
            completed,
            failed: 1,
            in_flight: 0,
            latency_ms: 0.0,
            timing: TimingSnapshot::default(),
            kinds: vec![KindStatsSnapshot {
                kind: "sha256".into(),
                completed,
                failed: 1,
                timing: TimingSnapshot::default(),
            }],
        }],
        ..StatsView::default()
    };
    // Counters follow the statistics by their growth...
    server.metrics.update_stats(&stats(5, 3));
    server.metrics.update_stats(&stats(7, 4));
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"fail"}"#))
        .await;
    let reply = server.get_metrics(OPENMETRICS_ACCEPT).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .headers
        .to_ascii_lowercase()
        .contains("content-type: application/openmetrics-text"));
    let samples =
        prometheus_text::check(&reply.body).unwrap_or_else(|e| panic!("{e}\n{}", reply.body));
    let get = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .unwrap_or_else(|| panic!("no sample {name}{{{labels}}} in\n{}", reply.body))
            .value
    };
    // ...and do not go down when a (restarted) coordinator reports less.
    assert_eq!(get("jobmesh_jobs_submitted_total", ""), 7.0);
    assert_eq!(
        get(
            "jobmesh_jobs_completed_total",
            r#"kind="sha256",node="node-b""#
        ),
        4.0
    );
    assert_eq!(
        get(
            "jobmesh_jobs_failed_total",
            r#"kind="sha256",node="node-b""#
        ),
        1.0
    );
    assert_eq!(get("jobmesh_jobs_retried_total", ""), 2.0);
    assert_eq!(get("jobmesh_dispatches_refused_total", ""), 7.0);
    // Gauges show the latest statistics (the backend's, read at the scrape).
    assert_eq!(get("jobmesh_jobs_queued", ""), 3.0);
    assert_eq!(
        get(
            "jobmesh_job_duration_seconds_count",
            r#"kind="sha256",node="node-b""#
        ),
        2.0
    );
    assert_eq!(get("jobmesh_links", ""), 2.0);
    assert_eq!(get("jobmesh_members", r#"status="up""#), 2.0);
    assert_eq!(get("jobmesh_node_in_flight", r#"node="node-b""#), 4.0);
    assert_eq!(get("jobmesh_dead_letters", ""), 1.0);
    server.shutdown().await;
}

/// What Prometheus 2.x/3.x sends when it scrapes.
const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn metrics_format_follows_accept_and_parses_with_a_real_parser() {
    use openmetrics_parser::{
        openmetrics::parse_openmetrics, prometheus::parse_prometheus, MetricNumber,
        OpenMetricsType, OpenMetricsValue, PrometheusType, PrometheusValue,
    };
    let server = Server::start().await;
    server
        .metrics
        .observe_attempt("sha256", "node-b", Duration::from_millis(3));
    // Every family gets a sample: openmetrics-parser 0.4 refuses a family
    // without samples, which the specification allows.
    server.metrics.update_stats(&StatsView {
        submitted: 9,
        nodes: vec![NodeStatsView {
            node: "node-b".into(),
            completed: 4,
            failed: 1,
            in_flight: 0,
            latency_ms: 0.0,
            timing: TimingSnapshot::default(),
            kinds: vec![KindStatsSnapshot {
                kind: "sha256".into(),
                completed: 4,
                failed: 1,
                timing: TimingSnapshot::default(),
            }],
        }],
        ..StatsView::default()
    });
    let number = |n: &MetricNumber| n.as_f64();
    let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Classic text by default and for a scraper that asks for it.
    for accept in [
        "",
        "text/plain;version=0.0.4",
        "*/*",
        "application/openmetrics-text;q=0",
    ] {
        let reply = server.get_metrics(accept).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{accept}: {}",
            reply.headers
        );
        let parsed = parse_prometheus(&reply.body)
            .unwrap_or_else(|e| panic!("{accept}: {e:?}\n{}", reply.body));
        let submitted = &parsed.families["jobmesh_jobs_submitted_total"];
        assert_eq!(
            submitted.family_type,
            PrometheusType::Counter,
            "{}",
            reply.body
        );
        let histogram = &parsed.families["jobmesh_job_duration_seconds"];
        assert_eq!(histogram.family_type, PrometheusType::Histogram);
        match &histogram
            .get_sample_by_label_values(&labels(&["sha256", "node-b"]))
            .expect("sha256 sample")
            .value
        {
            PrometheusValue::Histogram(h) => assert_eq!(h.count, Some(1)),
            other => panic!("not a histogram: {other:?}"),
        }
        // No family is left untyped (the symptom of OpenMetrics counters read
        // by a classic parser).
        for (name, family) in &parsed.families {
            assert_ne!(
                family.family_type,
                PrometheusType::Unknown,
                "{name} untyped"
            );
        }
        assert!(!reply.body.contains("# EOF"), "{}", reply.body);
    }

    // OpenMetrics for Prometheus' own Accept.
    let reply = server.get_metrics(OPENMETRICS_ACCEPT).await;
    assert!(reply
        .headers
        .to_ascii_lowercase()
        .contains("content-type: application/openmetrics-text; version=1.0.0"));
    let parsed = parse_openmetrics(&reply.body).unwrap_or_else(|e| panic!("{e:?}\n{}", reply.body));
    let submitted = &parsed.families["jobmesh_jobs_submitted"];
    assert_eq!(submitted.family_type, OpenMetricsType::Counter);
    match &submitted.iter_samples().next().expect("one sample").value {
        OpenMetricsValue::Counter(c) => assert_eq!(number(&c.value), 9.0),
        other => panic!("not a counter: {other:?}"),
    }
    server.shutdown().await;
}

#[test]
fn line_checker_rejects_bad_text() {
    let good = "# TYPE a counter\n# HELP a help\na_total 1\n# EOF\n";
    assert!(prometheus_text::check(good).is_ok());
    for bad in [
        "# TYPE a counter\na_total 1\n",          // no EOF
        "# TYPE a counter\na_total one\n# EOF\n", // bad value
        "b 1\n# EOF\n",                           // undeclared family
        "# TYPE a gauge\na{x=\"1\" 1\n# EOF\n",   // broken labels
        "# TYPE a gauge\na{x=1} 1\n# EOF\n",      // unquoted label
        "# TYPE 9a gauge\n9a 1\n# EOF\n",         // bad name
        "# TYPE a wobble\na 1\n# EOF\n",          // bad type
        "# TYPE a gauge\n# EOF\na 1\n",           // after EOF
    ] {
        assert!(prometheus_text::check(bad).is_err(), "accepted: {bad:?}");
    }
}

/// A small checker of the Prometheus / OpenMetrics text format.
mod prometheus_text {
    use std::collections::HashSet;

    pub(super) struct Sample {
        pub(super) name: String,
        pub(super) labels: String,
        pub(super) value: f64,
    }

    const TYPES: [&str; 8] = [
        "counter",
        "gauge",
        "histogram",
        "summary",
        "unknown",
        "info",
        "stateset",
        "gaugehistogram",
    ];
    const SUFFIXES: [&str; 6] = ["", "_total", "_bucket", "_count", "_sum", "_created"];

    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    pub(super) fn check(text: &str) -> Result<Vec<Sample>, String> {
        let mut families = HashSet::new();
        let mut samples = Vec::new();
        let mut eof = false;
        for (n, line) in text.lines().enumerate() {
            let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
            if eof {
                return Err(err("content after # EOF"));
            }
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (keyword, name, arg) = (parts.next(), parts.next(), parts.next());
                let name = name
                    .filter(|n| valid_name(n))
                    .ok_or_else(|| err("bad metric name"))?;
                match (keyword, arg) {
                    (Some("TYPE"), Some(t)) if TYPES.contains(&t) => {
                        families.insert(name.to_owned());
                    }
                    (Some("HELP" | "UNIT"), _) => {}
                    _ => return Err(err("bad descriptor")),
                }
            } else {
                let sample = parse_sample(line).map_err(|e| err(&e))?;
                let declared = SUFFIXES.iter().any(|suffix| {
                    sample
                        .name
                        .strip_suffix(suffix)
                        .is_some_and(|base| families.contains(base))
                });
                if !declared {
                    return Err(err("sample of an undeclared family"));
                }
                samples.push(sample);
            }
        }
        if !eof {
            return Err("missing # EOF".into());
        }
        Ok(samples)
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err("bad sample name".into());
        }
        let mut rest = &line[name_end..];
        let mut labels = String::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}').ok_or("unclosed labels")?;
            labels = inner[..close].to_owned();
            check_labels(&labels)?;
            rest = &inner[close + 1..];
        }
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or("no space before value")?
            .split(' ');
        let value = fields.next().ok_or("no value")?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<f64>().map_err(|_| "bad timestamp")?;
        }
        if fields.next().is_some() {
            return Err("trailing fields".into());
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    fn check_labels(labels: &str) -> Result<(), String> {
        let mut rest = labels;
        while !rest.is_empty() {
            let eq = rest.find('=').ok_or("label without =")?;
            if !valid_name(&rest[..eq]) {
                return Err("bad label name".into());
            }
            let value = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("unquoted label value")?;
            let mut escaped = false;
            let end = value
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .ok_or("unterminated label value")?
                .0;
            rest = &value[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        Ok(())
    }
}
