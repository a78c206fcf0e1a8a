//! The HTTP API's guard and its HTTPS listener.
//!
//! * **Bearer auth.** With auth on, every request must carry the cluster's
//!   client token as `Authorization: Bearer <token>` (the token WebSocket
//!   clients present; `job-node` derives it from the secret). Auth is always
//!   on when the API listens on a non-loopback address; on loopback it is
//!   off unless `--http-auth`. `/metrics` may stay open (`--metrics-open`)
//!   for scrapers that hold no token. A missing or wrong token is answered
//!   `401` with `WWW-Authenticate: Bearer` and a JSON error.
//! * **Dashboard sessions.** A browser logs in once with the token
//!   (`POST /dashboard/login`) and then presents a session cookie instead
//!   ([`super::session`]); a cookie-authenticated request that is not a
//!   `GET` must also carry the `x-jobmesh-dashboard` header. The page and
//!   its assets are served without authentication (they hold no data).
//! * **HTTPS.** With `--tls-cert`/`--tls-key` the API is served over TLS
//!   with the node's certificate ([`TlsListener`]); TLS handshakes run
//!   concurrently (a bounded number at once) and each must finish within
//!   [`TLS_HANDSHAKE_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::dashboard;
use super::session::{session_of, Sessions};

/// How long an HTTPS client has for its TLS handshake.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most TLS handshakes in progress at once.
const MAX_TLS_HANDSHAKES: usize = 256;

/// Who may use the HTTP API.
#[derive(Clone, Debug)]
pub(crate) struct HttpAuth {
    /// The token every request must present; `None`: auth off.
    token: Option<Arc<str>>,
    /// `/metrics` without the token.
    metrics_open: bool,
    /// The dashboard's sessions.
    sessions: Arc<Sessions>,
    /// Whether session cookies are marked `Secure` (HTTPS).
    secure_cookie: bool,
}

impl HttpAuth {
    /// No authentication (loopback without `--http-auth`).
    pub(crate) fn open() -> Self {
        HttpAuth {
            token: None,
            metrics_open: true,
            sessions: Arc::default(),
            secure_cookie: false,
        }
    }

    /// Requires `token` on every route (`/metrics` too unless `metrics_open`).
    pub(crate) fn bearer(token: String, metrics_open: bool) -> Self {
        HttpAuth {
            token: Some(token.into()),
            metrics_open,
            sessions: Arc::default(),
            secure_cookie: false,
        }
    }

    /// Marks session cookies `Secure` (the API is served over HTTPS).
    pub(crate) fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// Whether `token` is the client token (constant time).
    pub(crate) fn accepts(&self, token: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(token.as_bytes(), t.as_bytes()))
    }

    /// The dashboard's sessions.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Whether session cookies are marked `Secure`.
    pub(crate) fn secure_cookie(&self) -> bool {
        self.secure_cookie
    }

    /// Whether requests need the token.
    pub(crate) fn required(&self) -> bool {
        self.token.is_some()
    }
}

/// Adds the bearer check of `auth` in front of every route of `router`,
/// and the dashboard's login and logout when auth is on.
pub(crate) fn guard(router: axum::Router, auth: HttpAuth) -> axum::Router {
    if !auth.required() {
        return router;
    }
    router
        .merge(dashboard::session_routes(auth.clone()))
        .layer(axum::middleware::from_fn_with_state(auth, check))
}

async fn check(State(auth): State<HttpAuth>, request: Request, next: Next) -> Response {
    let Some(expected) = &auth.token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == dashboard::SESSION_PATH {
        let logged_in =
            session_of(request.headers()).is_some_and(|id| auth.sessions.valid(id, Instant::now()));
        let body = serde_json::json!({ "auth_required": true, "logged_in": logged_in });
        return axum::Json(body).into_response();
    }
    if (auth.metrics_open && path == "/metrics") || dashboard::PUBLIC_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let has_bearer = request.headers().contains_key(header::AUTHORIZATION);
    if !has_bearer {
        if let Some(id) = session_of(request.headers()) {
            if auth.sessions.valid(id, Instant::now()) {
                let safe = matches!(*request.method(), Method::GET | Method::HEAD);
                if !safe && !request.headers().contains_key(dashboard::CSRF_HEADER) {
                    let body = axum::Json(serde_json::json!({
                        "error": "a dashboard session must send the x-jobmesh-dashboard header"
                    }));
                    return (StatusCode::FORBIDDEN, body).into_response();
                }
                return next.run(request).await;
            }
        }
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => {
            unauthorized("invalid bearer token: use the client token of this cluster's secret")
        }
        None => unauthorized("authentication required: send Authorization: Bearer <client token>"),
    }
}

fn unauthorized(why: &'static str) -> Response {
    let body = axum::Json(serde_json::json!({ "error": why }));
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A TCP listener that hands axum only connections whose TLS handshake
/// succeeded.
#[derive(Debug)]
pub(crate) struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and runs TLS handshakes with `acceptor` in the
    /// background (until this listener is dropped).
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener { accepted, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_TLS_HANDSHAKES));
    loop {
        let (tcp, addr) = tokio::select! {
            () = tx.closed() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(err) => {
                    tracing::debug!(%err, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // At the limit, the connection is closed at once.
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            tracing::debug!(%addr, "HTTPS connection refused: too many TLS handshakes");
            continue;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(tls)) => {
                    drop(permit);
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(err)) => tracing::debug!(%addr, %err, "HTTPS TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "HTTPS TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
