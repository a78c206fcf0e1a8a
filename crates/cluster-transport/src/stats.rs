//! Counters of the transport.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of the transport's counters (see [`Transport::stats`](crate::Transport::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Data frames received (node batches and client envelopes).
    pub frames_in: u64,
    /// Data frames sent.
    pub frames_out: u64,
    /// Envelopes received.
    pub envelopes_in: u64,
    /// Envelopes sent.
    pub envelopes_out: u64,
    /// Undecodable frames received (answered with an error frame).
    pub malformed_frames: u64,
    /// Error frames received from peers (they rejected a frame of ours).
    pub error_frames_in: u64,
    /// Handshakes refused for a wrong secret, or client tokens refused.
    pub auth_failures: u64,
    /// Handshakes refused for a protocol version mismatch.
    pub version_mismatches: u64,
    /// Handshakes that did not finish in time.
    pub handshake_timeouts: u64,
    /// Connections closed with 1009 because a frame exceeded `max_frame_size`.
    pub oversize_closes: u64,
    /// Node connections currently open (including ones being closed).
    pub links_open: u64,
    /// Duplicate connections dropped by the simultaneous-dial rule.
    pub duplicate_links: u64,
    /// External clients currently connected.
    pub clients_connected: u64,
    /// External clients disconnected (close code 1013) because they read
    /// nothing for `client_idle_limit` while frames waited, or their
    /// outbound queue overflowed.
    pub slow_clients_dropped: u64,
    /// Connections refused because the node was at a limit: too many
    /// unauthenticated connections, or too many clients.
    pub busy_refusals: u64,
    /// Connections whose TLS handshake failed (a plaintext peer on a TLS
    /// listener, an untrusted certificate, ...).
    pub tls_failures: u64,
    /// Unauthenticated connections currently open.
    pub unauthenticated: u64,
    /// Times a client's socket was left unread because its window was
    /// full (flow control at work, not an error).
    pub client_window_waits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) envelopes_in: AtomicU64,
    pub(crate) envelopes_out: AtomicU64,
    pub(crate) malformed_frames: AtomicU64,
    pub(crate) error_frames_in: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) version_mismatches: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) oversize_closes: AtomicU64,
    pub(crate) links_open: AtomicU64,
    pub(crate) duplicate_links: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) slow_clients_dropped: AtomicU64,
    pub(crate) busy_refusals: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
    pub(crate) unauthenticated: AtomicU64,
    pub(crate) client_window_waits: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn drop_one(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TransportStats {
        TransportStats {
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            envelopes_in: self.envelopes_in.load(Relaxed),
            envelopes_out: self.envelopes_out.load(Relaxed),
            malformed_frames: self.malformed_frames.load(Relaxed),
            error_frames_in: self.error_frames_in.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            version_mismatches: self.version_mismatches.load(Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Relaxed),
            oversize_closes: self.oversize_closes.load(Relaxed),
            links_open: self.links_open.load(Relaxed),
            duplicate_links: self.duplicate_links.load(Relaxed),
            clients_connected: self.clients_connected.load(Relaxed),
            slow_clients_dropped: self.slow_clients_dropped.load(Relaxed),
            busy_refusals: self.busy_refusals.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
            unauthenticated: self.unauthenticated.load(Relaxed),
            client_window_waits: self.client_window_waits.load(Relaxed),
        }
    }
}

/// A warning logged at most once per interval, with the number of times it
/// was suppressed in between (for events a flood can trigger).
#[derive(Debug, Default)]
pub(crate) struct RateLimitedLog {
    last: parking_lot::Mutex<Option<std::time::Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    /// `Some(suppressed since the last one)` when this occurrence may be
    /// logged, `None` when it must be counted only.
    pub(crate) fn permit(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut last = self.last.lock();
        if last.is_some_and(|t| now.duration_since(t) < Self::INTERVAL) {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Relaxed))
    }
}
