//! Dashboard sessions: a browser trades the client token for a session
//! cookie once (`POST /dashboard/login`), then every request carries the
//! cookie instead of an `Authorization` header.
//!
//! A session id is 32 random bytes (hex), kept only as its SHA-256 (a
//! leaked table does not hand out sessions); the table holds at most
//! [`MAX_SESSIONS`], each valid for [`SESSION_TTL`] from login. A full
//! table drops the session closest to expiry. The cookie is `HttpOnly`
//! (no script reads it), `SameSite=Strict` (no other site's page sends it)
//! and `Secure` when the API is served over HTTPS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub(crate) const COOKIE: &str = "jobmesh_session";
/// Sessions held at once.
pub(crate) const MAX_SESSIONS: usize = 1024;
/// How long a session lasts from login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The table of live sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// SHA-256 of the session id -> expiry.
    table: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session; returns its id (the cookie's value).
    pub(crate) fn open(&self, now: Instant) -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let mut table = self.lock();
        table.retain(|_, expiry| *expiry > now);
        if table.len() >= MAX_SESSIONS {
            let oldest = table.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        table.insert(digest(&id), now + SESSION_TTL);
        id
    }

    /// Whether `id` is a live session at `now`.
    pub(crate) fn valid(&self, id: &str, now: Instant) -> bool {
        // Ids are 64 hex characters: anything else is not looked up.
        if id.len() != 64 {
            return false;
        }
        self.lock().get(&digest(id)).is_some_and(|e| *e > now)
    }

    /// Ends the session `id` (logout).
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Sessions held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session id a request's `Cookie` headers carry, if any.
pub(crate) fn session_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value that stores `id` (`secure` over HTTPS).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_are_bounded_and_close() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open(t0);
        assert_eq!(id.len(), 64);
        assert!(sessions.valid(&id, t0));
        assert!(!sessions.valid(&id, t0 + SESSION_TTL));
        assert!(!sessions.valid(&"0".repeat(64), t0));
        assert!(!sessions.valid("short", t0));
        for i in 0..MAX_SESSIONS + 10 {
            sessions.open(t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // The first (closest to expiry) was dropped to make room.
        assert!(!sessions.valid(&id, t0));
        let last = sessions.open(t0 + Duration::from_secs(1));
        sessions.close(&last);
        assert!(!sessions.valid(&last, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("a=1; {COOKIE}=abc ; b=2").parse().unwrap(),
        );
        assert_eq!(session_of(&headers), Some("abc"));
        assert!(set_cookie("x", true).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie("x", true).ends_with("; Secure"));
    }
}
