//! Configuration: the node's name, the cluster secret, limits and timings.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The shared cluster secret (Erlang-cookie style).
///
/// It is used as an HMAC key only and never crosses the wire. `Debug` prints
/// `Secret(<redacted>)`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the given key bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Secret(key.into())
    }

    /// Whether the secret is empty (no secret configured).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

/// Capped exponential backoff with equal jitter: the one backoff of the
/// workspace, used for redialling lost links here and for retrying failed
/// jobs in `job-queue` (re-exported there and by `cluster-router`).
///
/// Retry `n` (counted from 0) waits `d = min(base * factor^n, max)`,
/// jittered uniformly into `d/2 ..= d` so that many retries started
/// together do not stay in step.
///
/// ```
/// use std::time::Duration;
/// use cluster_transport::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
/// assert_eq!(backoff.ceiling(30), Duration::from_secs(5));
/// let d = backoff.delay(1);
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay of the first retry, before jitter.
    pub base: Duration,
    /// The growth per retry (values below 1.0, and non-finite ones, count
    /// as 1.0).
    pub factor: f64,
    /// The ceiling, before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// A doubling backoff from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            factor: 2.0,
            max,
        }
    }

    /// The un-jittered delay of retry `retry` (0-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.min(64) as i32;
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let secs = self.base.as_secs_f64() * factor.powi(exp);
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// The jittered delay of retry `retry` (0-based), from the thread's
    /// random generator.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, &mut rand::thread_rng())
    }

    /// [`delay`](Self::delay) with the given random generator (seeded ones
    /// make retries reproducible in tests).
    pub fn delay_with(&self, retry: u32, rng: &mut impl rand::Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.gen_range(0..=spread))
    }
}

/// Configuration of a [`Transport`](crate::Transport).
///
/// Default: listen on `127.0.0.1:0` without TLS, 16 MiB frames (64 KiB
/// before authentication), at most 256 unauthenticated connections and
/// 10,000 clients at once, 1 s heartbeats, 3 misses, 5 s handshake timeout,
/// 8192-envelope outbound queues per link, a window of 10,000 unanswered
/// frames per client plus 1024 frames of room for other frames, 30 s client
/// idle limit, 100 ms..5 s backoff.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's logical name (unique in the cluster).
    pub node_name: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Shared cluster secret.
    pub secret: Secret,
    /// Largest accepted WebSocket frame/message payload in bytes.
    pub max_frame_size: usize,
    /// Interval between heartbeats on a node link.
    pub heartbeat_interval: Duration,
    /// A link that hears nothing for this many intervals is reported down.
    pub heartbeat_misses: u32,
    /// A handshake (WebSocket upgrade plus authentication) must finish within this.
    pub handshake_timeout: Duration,
    /// Capacity (in envelopes) of each link's outbound queue.
    pub outbound_queue: usize,
    /// Flow control of external clients: a client's socket is read only
    /// while fewer than this many of its frames are unanswered (read, and
    /// no answer written back to its socket yet; see
    /// [`Transport::try_answer_client`](crate::Transport::try_answer_client)).
    /// A client that sends without reading is simply not read further; it
    /// is never disconnected for it.
    pub client_window: usize,
    /// Room (in frames) in each client's outbound queue beyond its window,
    /// for frames that answer nothing (the welcome, notices) or answer a
    /// frame again. A queue full when
    /// [`Transport::try_send_to_client`](crate::Transport::try_send_to_client)
    /// is called belongs to a client that stopped reading, and its owner
    /// (the router) disconnects it with
    /// [`Transport::close_slow_client`](crate::Transport::close_slow_client).
    pub client_queue: usize,
    /// A client that reads nothing for this long while frames wait for it
    /// is disconnected with close code 1013.
    pub client_idle_limit: Duration,
    /// Redial backoff for lost links.
    pub reconnect: Backoff,
    /// TLS: with a certificate, the listener serves only TLS (`wss://`);
    /// with CA certificates, `wss://` URLs can be dialled. `None`: plain
    /// `ws://` only.
    pub tls: Option<crate::TlsConfig>,
    /// Largest WebSocket frame accepted from a peer that has not
    /// authenticated yet; a larger one closes the connection with 1009.
    pub max_preauth_frame: usize,
    /// Most connections at once that have not authenticated yet (TLS and
    /// WebSocket upgrade, node handshake, client auth frame). Further ones
    /// are answered `503` (plain listeners) or closed (TLS listeners),
    /// counted in [`TransportStats::busy_refusals`](crate::TransportStats::busy_refusals)
    /// and logged at most once a second.
    pub max_unauthenticated: usize,
    /// Most authenticated external clients at once. A client beyond it is
    /// refused after authenticating (an error frame, then close code 1013),
    /// counted in [`TransportStats::busy_refusals`](crate::TransportStats::busy_refusals).
    pub max_clients: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            node_name: "node".to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            secret: Secret::default(),
            max_frame_size: 16 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_misses: 3,
            handshake_timeout: Duration::from_secs(5),
            outbound_queue: 8192,
            client_window: 10_000,
            client_queue: 1024,
            client_idle_limit: Duration::from_secs(30),
            reconnect: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            tls: None,
            max_preauth_frame: 64 * 1024,
            max_unauthenticated: 256,
            max_clients: 10_000,
        }
    }
}

impl TransportConfig {
    /// A default configuration with the given node name and secret.
    pub fn new(node_name: impl Into<String>, secret: impl Into<Secret>) -> Self {
        TransportConfig {
            node_name: node_name.into(),
            secret: secret.into(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(2), Duration::from_millis(400));
        assert_eq!(b.ceiling(29), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        for retry in 0..10 {
            let d = b.delay_with(retry, &mut rng);
            let c = b.ceiling(retry);
            assert!(d >= c / 2 && d <= c, "{d:?} outside {c:?}");
            let d = b.delay(retry);
            assert!(d >= c / 2 && d <= c, "{d:?} outside {c:?}");
        }
    }

    #[test]
    fn odd_factors_do_not_shrink_or_overflow() {
        let flat = Backoff {
            factor: 0.5,
            ..Backoff::default()
        };
        assert_eq!(flat.ceiling(5), Duration::from_millis(100));
        let nan = Backoff {
            factor: f64::NAN,
            ..Backoff::default()
        };
        assert_eq!(nan.ceiling(5), Duration::from_millis(100));
        let huge = Backoff {
            factor: f64::MAX,
            ..Backoff::default()
        };
        assert_eq!(huge.ceiling(64), Duration::from_secs(10));
        let zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.delay(3), Duration::ZERO);
    }

    #[test]
    fn transport_default_redials_from_100_ms_to_5_s() {
        let reconnect = TransportConfig::default().reconnect;
        assert_eq!(reconnect.ceiling(0), Duration::from_millis(100));
        assert_eq!(reconnect.ceiling(10), Duration::from_secs(5));
    }
}
