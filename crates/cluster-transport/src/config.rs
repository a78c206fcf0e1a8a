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

/// Exponential backoff with jitter for redialling a lost link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before redial attempt `attempt` (0-based): `initial * 2^attempt`
    /// capped at `max`, then jittered uniformly into its upper half.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = base / 2;
        let jitter_nanos = rand::random::<u64>() % (half.as_nanos() as u64).max(1);
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// Configuration of a [`Transport`](crate::Transport).
///
/// Default: listen on `127.0.0.1:0`, 16 MiB frames, 1 s heartbeats, 3 misses,
/// 5 s handshake timeout, 8192-envelope outbound queues per link, 1024-envelope
/// outbound queues per client, 100 ms..5 s backoff.
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
    /// Capacity (in envelopes) of each external client's outbound queue. A
    /// client must read its socket: one whose queue is full when
    /// [`Transport::try_send_to_client`](crate::Transport::try_send_to_client)
    /// is called is too slow, and its owner (the router) disconnects it with
    /// [`Transport::close_slow_client`](crate::Transport::close_slow_client).
    pub client_queue: usize,
    /// Redial backoff for lost links.
    pub reconnect: Backoff,
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
            client_queue: 1024,
            reconnect: Backoff::default(),
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
