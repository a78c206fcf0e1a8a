//! The HTTP API (`--http ADDR`), served with axum over an [`Api`] backend.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/jobs` | one job or an array; `{"id"}` / `{"ids"}`, or the results with `?wait=true` |
//! | `GET /v1/jobs/{id}` | the job's record (any node's job) |
//! | `DELETE /v1/jobs/{id}` | cancels the job (any node's) |
//! | `GET /v1/jobs?state=dead`, `GET /v1/dead-letters` | the dead-letter list |
//! | `POST /v1/dead-letters/{id}/resubmit` | runs a dead letter again |
//! | `DELETE /v1/dead-letters/{id}` | discards a dead letter |
//! | `GET /v1/cluster` | members, tags, load |
//! | `GET /v1/stats` | the coordinator's per-node statistics |
//! | `GET /metrics` | Prometheus / OpenMetrics text |
//! | `GET /v1/job-records` | a page of this node's job records, searched by id, state, kind, node |
//! | `GET /`, `GET /dashboard/...` | the web dashboard and its live feed ([`dashboard`]) |
//!
//! Every error is a 4xx or 5xx with a JSON body `{"error": "..."}`,
//! including malformed JSON, unknown routes and wrong methods.
//!
//! Authentication (`Authorization: Bearer <client token>`, required on
//! non-loopback addresses) and HTTPS are in [`security`]'s guard and
//! listener, wrapped around the routes by [`serve_node_api`].

mod api;
mod dashboard;
mod error;
mod handlers;
mod live;
mod security;
mod session;

pub(crate) use api::{
    Api, ApiError, FailureView, JobState, JobView, NodeStatsView, RecordView, StatsView,
};
pub use api::{ClusterView, JobSubmission, LoadView, MemberView};
pub(crate) use error::HttpError;
pub(crate) use security::{guard, HttpAuth, TlsListener};

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::metrics::Metrics;

/// The largest request body accepted: 16 MiB.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The most jobs one `POST /v1/jobs` may carry.
pub(crate) const MAX_BATCH: usize = 10_000;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) api: Arc<dyn Api>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) live: Arc<live::LiveHub>,
}

/// The API's routes over `api`, with `metrics` served at `/metrics`.
pub(crate) fn router(api: Arc<dyn Api>, metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route("/v1/jobs", post(handlers::submit).get(handlers::list_jobs))
        .route("/v1/jobs/{id}", get(handlers::job).delete(handlers::cancel))
        .route("/v1/dead-letters", get(handlers::dead_letters))
        .route("/v1/dead-letters/{id}", delete(handlers::discard))
        .route("/v1/dead-letters/{id}/resubmit", post(handlers::resubmit))
        .route(
            "/v1/recurring",
            post(handlers::add_recurring).get(handlers::recurring),
        )
        .route("/v1/recurring/{name}", delete(handlers::remove_recurring))
        .route("/v1/cluster", get(handlers::cluster))
        .route("/v1/stats", get(handlers::stats))
        .route("/metrics", get(handlers::metrics))
        .merge(dashboard::routes())
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState {
            live: live::LiveHub::new(Arc::clone(&api)),
            api,
            metrics,
        })
}

/// Serves `router` on `listener` (a `TcpListener`, or a [`TlsListener`]
/// handing over connections whose TLS handshake succeeded) until
/// `shutdown` resolves, then finishes the requests in progress.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub(crate) async fn serve<L>(
    listener: L,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (router, shutdown) = close_streams_on(router, shutdown);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Ends the dashboard's live streams when `shutdown` resolves (a graceful
/// shutdown waits for open responses, and a stream never ends by itself).
fn close_streams_on(
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (axum::Router, impl Future<Output = ()> + Send + 'static) {
    let closing = dashboard::StreamsClosing::default();
    let token = closing.0.clone();
    let router = router.layer(axum::Extension(closing));
    (router, async move {
        shutdown.await;
        token.cancel();
    })
}

#[cfg(test)]
mod tests;
