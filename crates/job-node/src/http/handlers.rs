//! The route handlers.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppState, HttpError, JobSubmission, MAX_BATCH};

/// The longest `?timeout=` a waiting submit may ask for, in seconds.
const MAX_WAIT_SECS: f64 = 3600.0;
/// The wait when `?wait=true` comes without `?timeout=`.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitQuery {
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    timeout: Option<f64>,
}

impl SubmitQuery {
    fn wait_for(&self) -> Result<Option<Duration>, HttpError> {
        match (self.wait, self.timeout) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err(HttpError::bad_request("`timeout` needs `wait=true`")),
            (true, None) => Ok(Some(DEFAULT_WAIT)),
            (true, Some(s)) if s.is_finite() && s > 0.0 && s <= MAX_WAIT_SECS => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            (true, Some(_)) => Err(HttpError::bad_request(format!(
                "`timeout` must be more than 0 and at most {MAX_WAIT_SECS} seconds"
            ))),
        }
    }
}

/// `POST /v1/jobs`
pub(crate) async fn submit(
    State(state): State<AppState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query?;
    let wait = query.wait_for()?;
    let Json(body) = body?;
    let (jobs, is_batch) = parse_jobs(body)?;
    let ids = state.api.submit(jobs).await?;
    let Some(timeout) = wait else {
        let body = if is_batch {
            json!({ "ids": ids })
        } else {
            json!({ "id": ids.first() })
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    };
    let views = state.api.wait(&ids, timeout).await?;
    if is_batch {
        return Ok(Json(json!({ "jobs": views })).into_response());
    }
    match views.into_iter().next() {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the submitted job vanished before it could be reported",
        )),
    }
}

/// Reads one job object or a non-empty array of them.
fn parse_jobs(body: Value) -> Result<(Vec<JobSubmission>, bool), HttpError> {
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(HttpError::invalid("empty batch: send at least one job"));
            }
            if items.len() > MAX_BATCH {
                return Err(HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "batch of {} jobs is above the limit of {MAX_BATCH}",
                        items.len()
                    ),
                ));
            }
            let jobs = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| parse_job(item).map_err(|e| prefix(e, &format!("job {i}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((jobs, true))
        }
        Value::Object(_) => Ok((vec![parse_job(body)?], false)),
        _ => Err(HttpError::invalid(
            "expected a job object or an array of job objects",
        )),
    }
}

fn parse_job(item: Value) -> Result<JobSubmission, HttpError> {
    let job: JobSubmission =
        serde_json::from_value(item).map_err(|e| HttpError::invalid(e.to_string()))?;
    if job.kind.is_empty() {
        return Err(HttpError::invalid("`kind` must not be empty"));
    }
    if job.timeout_ms == Some(0) {
        return Err(HttpError::invalid("`timeout_ms` must be at least 1"));
    }
    if job.max_attempts == Some(0) {
        return Err(HttpError::invalid("`max_attempts` must be at least 1"));
    }
    Ok(job)
}

fn prefix(err: HttpError, context: &str) -> HttpError {
    HttpError::new(err.status, format!("{context}: {}", err.message))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
}

/// `GET /v1/jobs?state=dead`
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query?;
    match query.state.as_deref() {
        Some("dead") => {
            let jobs = state.api.dead_letters().await?;
            Ok(Json(json!({ "jobs": jobs })).into_response())
        }
        Some(other) => Err(HttpError::bad_request(format!(
            "unsupported state {other:?}: only `state=dead` can be listed"
        ))),
        None => Err(HttpError::bad_request(
            "missing `state` query parameter: use /v1/jobs?state=dead",
        )),
    }
}

/// `GET /v1/jobs/{id}`
pub(crate) async fn job(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(id) = id?;
    match state.api.job(&id).await? {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(HttpError::not_found(format!("no job with id {id:?}"))),
    }
}

/// `DELETE /v1/jobs/{id}`: cancels the job; answers its state afterwards.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(id) = id?;
    match state.api.cancel(&id).await? {
        Some(job_state) => Ok(Json(json!({ "id": id, "state": job_state })).into_response()),
        None => Err(HttpError::not_found(format!("no job with id {id:?}"))),
    }
}

/// `GET /v1/dead-letters`
pub(crate) async fn dead_letters(State(state): State<AppState>) -> Result<Response, HttpError> {
    let jobs = state.api.dead_letters().await?;
    Ok(Json(json!({ "jobs": jobs })).into_response())
}

/// `POST /v1/dead-letters/{id}/resubmit`
pub(crate) async fn resubmit(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(id) = id?;
    match state.api.resubmit(&id).await? {
        Some(id) => Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response()),
        None => Err(HttpError::not_found(format!(
            "no dead letter with id {id:?}"
        ))),
    }
}

/// `DELETE /v1/dead-letters/{id}`
pub(crate) async fn discard(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(id) = id?;
    if state.api.discard(&id).await? {
        Ok(Json(json!({ "discarded": true })).into_response())
    } else {
        Err(HttpError::not_found(format!(
            "no dead letter with id {id:?}"
        )))
    }
}

/// `POST /v1/recurring`: `{"name","cron","job"}`; answers `201`
/// `{"name","next_ms"}`.
pub(crate) async fn add_recurring(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, HttpError> {
    let Json(spec) = body?;
    let name = spec.get("name").cloned().unwrap_or(Value::Null);
    let next_ms = state.api.add_recurring(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "next_ms": next_ms })),
    )
        .into_response())
}

/// `GET /v1/recurring`
pub(crate) async fn recurring(State(state): State<AppState>) -> Result<Response, HttpError> {
    let list = state.api.recurring().await?;
    Ok(Json(json!({ "recurring": list })).into_response())
}

/// `DELETE /v1/recurring/{name}`
pub(crate) async fn remove_recurring(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(name) = name?;
    if state.api.remove_recurring(&name).await? {
        Ok(Json(json!({ "removed": true })).into_response())
    } else {
        Err(HttpError::not_found(format!(
            "no recurring job named {name:?}"
        )))
    }
}

/// `GET /v1/cluster`
pub(crate) async fn cluster(State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(Json(state.api.cluster().await?).into_response())
}

/// `GET /v1/stats`
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(Json(state.api.stats().await?).into_response())
}

/// `GET /metrics`: refreshes the gauges, then encodes everything, in
/// OpenMetrics when the scraper's `Accept` asks for it (Prometheus does),
/// else in the classic Prometheus text format (`text/plain;
/// version=0.0.4`), which every scraper reads.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.api.cluster().await {
        Ok(cluster) => state.metrics.update_cluster(&cluster),
        Err(err) => tracing::warn!(error = %err, "metrics: cluster view unavailable"),
    }
    match state.api.stats().await {
        Ok(stats) => state.metrics.update_stats(&stats),
        Err(err) => tracing::warn!(error = %err, "metrics: statistics unavailable"),
    }
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(wants_openmetrics);
    let text = state.metrics.encode();
    if openmetrics {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], text).into_response()
    } else {
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        let classic = crate::metrics::classic_text(&text);
        ([(header::CONTENT_TYPE, kind)], classic).into_response()
    }
}

/// Whether an `Accept` value lists OpenMetrics with a quality above 0.
fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// Unknown routes.
pub(crate) async fn no_route(method: Method, uri: Uri) -> HttpError {
    HttpError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Known routes with the wrong method.
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
