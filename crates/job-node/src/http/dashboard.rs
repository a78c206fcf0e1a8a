//! The web dashboard served at `/` of `--http`: a page of plain HTML, CSS
//! and JavaScript compiled into the binary (`crates/job-node/assets/
//! dashboard/`, no build step), its live feed ([`super::live`]), the
//! paginated job search it pages through (`GET /v1/job-records`), and the
//! login that trades the client token for a session cookie when the API
//! requires authentication ([`super::session`]).
//!
//! Everything else the page does goes through the ordinary API (`POST
//! /v1/jobs`, `DELETE /v1/jobs/{id}`, the dead-letter routes, ...), with
//! the same checks and limits as any client.

use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use job_queue::{JobQuery, JobState};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::security::HttpAuth;
use super::session;
use super::{AppState, HttpError};

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");
const ICON_SVG: &str = include_str!("../../assets/dashboard/icon.svg");

/// Paths served without authentication: the page and its assets (they hold
/// no data; the page asks for a login when the API answers 401).
pub(crate) const PUBLIC_PATHS: [&str; 5] = [
    "/",
    "/dashboard/app.js",
    "/dashboard/app.css",
    "/dashboard/icon.svg",
    "/dashboard/login",
];

/// Where the page asks whether it must log in (always answered: with auth
/// on by the guard, else by [`routes`]).
pub(crate) const SESSION_PATH: &str = "/dashboard/session";

/// The header a cookie-authenticated request that changes something must
/// carry (a cross-site form cannot set it; a cross-site script would need
/// a CORS preflight, which this server never grants).
pub(crate) const CSRF_HEADER: &str = "x-jobmesh-dashboard";

/// The page size when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

/// Cancelled when the server shuts down: live streams end with it.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamsClosing(pub(crate) CancellationToken);

/// The dashboard's routes over the app state.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/dashboard/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        )
        .route(
            SESSION_PATH,
            get(|| async {
                Json(serde_json::json!({ "auth_required": false, "logged_in": true }))
            }),
        )
        .route("/dashboard/events", get(events))
        .route("/v1/job-records", get(search))
}

/// The login and logout routes (only when the API requires the token).
pub(crate) fn session_routes(auth: HttpAuth) -> axum::Router {
    axum::Router::new()
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
        .with_state(auth)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                 form-action 'self'; base-uri 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard/events`: the live feed (Server-Sent Events).
async fn events(
    State(state): State<AppState>,
    closing: Option<Extension<StreamsClosing>>,
) -> Result<Response, HttpError> {
    let closing = closing.map(|Extension(c)| c.0);
    match state.live.stream(closing) {
        Some(sse) => Ok(sse.into_response()),
        None => Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many live dashboard streams on this node (limit {}); close one",
                super::live::MAX_STREAMS
            ),
        )),
    }
}

/// The query string of `GET /v1/job-records` (empty values mean "any").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

impl SearchParams {
    fn query(self) -> Result<JobQuery, HttpError> {
        let given = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let state = match given(self.state) {
            None => None,
            Some(word) => Some(
                serde_json::from_value::<JobState>(serde_json::Value::String(word.clone()))
                    .map_err(|_| {
                        HttpError::bad_request(format!(
                            "unknown state {word:?}: use queued, running, succeeded, failed, dead or cancelled"
                        ))
                    })?,
            ),
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > JobQuery::MAX_LIMIT {
            return Err(HttpError::bad_request(format!(
                "`limit` must be 1..={}",
                JobQuery::MAX_LIMIT
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > JobQuery::MAX_OFFSET {
            return Err(HttpError::bad_request(format!(
                "`offset` must be at most {}",
                JobQuery::MAX_OFFSET
            )));
        }
        Ok(JobQuery {
            id: given(self.id),
            state,
            kind: given(self.kind),
            node: given(self.node),
            offset,
            limit,
        })
    }
}

/// `GET /v1/job-records`: one page of this node's coordinator's records.
async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params?;
    let query = params.query()?;
    let mut page = state.api.search(query.clone()).await?;
    // An id this coordinator does not own may be another's: ask the cluster.
    if page.total == 0 && page.offset == 0 {
        if let Some(id) = &query.id {
            if let Some(record) = state.api.job(id).await? {
                if matches_filters(&query, &record) {
                    page.total = 1;
                    page.jobs.push(record);
                }
            }
        }
    }
    Ok(Json(page).into_response())
}

/// Whether another node's record passes the state, kind and node filters.
fn matches_filters(query: &JobQuery, record: &super::RecordView) -> bool {
    query.state.is_none_or(|s| s == record.state)
        && query.kind.as_deref().is_none_or(|k| k == record.kind)
        && query
            .node
            .as_deref()
            .is_none_or(|n| record.attempts.iter().any(|a| a.node == n))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    token: String,
}

/// `POST /dashboard/login` `{"token": "..."}`: a session cookie for the
/// client token.
async fn login(
    State(auth): State<HttpAuth>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, HttpError> {
    let Json(login) = body?;
    if !auth.accepts(login.token.trim()) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "invalid token: use the client token of this cluster's secret",
        ));
    }
    let id = auth.sessions().open(Instant::now());
    let cookie = session::set_cookie(&id, auth.secure_cookie());
    let mut response = Json(serde_json::json!({ "logged_in": true })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /dashboard/logout`: ends the session.
async fn logout(State(auth): State<HttpAuth>, headers: HeaderMap) -> Response {
    if let Some(id) = session::session_of(&headers) {
        auth.sessions().close(id);
    }
    let mut response = Json(serde_json::json!({ "logged_in": false })).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
