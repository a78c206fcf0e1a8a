//! Router configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use cluster_transport::{Secret, TransportConfig};

/// Configuration of a [`Router`](crate::Router).
///
/// The defaults suit a LAN cluster: a heartbeat to every linked member every
/// 100 ms, Suspect after 0.8 s of silence, Down after 1.5 s once confirmed
/// (crash detection within 2 s, no false Down for scheduling pauses of up to
/// 1 s), the member table gossiped every second to 3 peers, Down and Left
/// members removed from the table after 30 s. Tests use about 100 ms / 300
/// ms / 600 ms. The failure detector is described in `docs/architecture.md`
/// ("Membership and failure detection").
///
/// ```
/// use std::time::Duration;
/// use cluster_router::RouterConfig;
///
/// let cfg = RouterConfig::new("node-b", "cookie")
///     .seeds(["ws://127.0.0.1:7000"])
///     .tags(["gpu"])
///     .timing(Duration::from_millis(100), Duration::from_millis(300), Duration::from_millis(600));
/// assert_eq!(cfg.seeds.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// This node's logical name (`node-a`): 1..=64 characters of `[A-Za-z0-9_.-]`.
    pub node_name: String,
    /// Address the transport listens on (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// The shared cluster secret (nodes and client tokens derive from it).
    pub secret: Secret,
    /// WebSocket URLs of seed nodes to join through (empty for the first node).
    pub seeds: Vec<String>,
    /// Initial capability tags of this node.
    pub tags: Vec<String>,
    /// Interval between gossip rounds: the member table is pushed to
    /// [`gossip_fanout`](Self::gossip_fanout) random peers (push-pull) and
    /// this node's gossiped heartbeat counter advances.
    pub gossip_interval: Duration,
    /// Peers gossiped to per round.
    pub gossip_fanout: usize,
    /// Interval between two heartbeats to every linked member, and between
    /// two runs of the failure detector. At most a third of
    /// [`suspect_after`](Self::suspect_after).
    pub probe_interval: Duration,
    /// Silence (nothing received from a member on its link) after which it
    /// becomes Suspect: no new work is sent to it, and other members are
    /// asked whether they still hear it (indirect checks).
    pub suspect_after: Duration,
    /// Silence after which a Suspect member becomes Down, provided an
    /// indirect check confirmed it (or no other member can be asked) and no
    /// other member heard it meanwhile. A crashed node is Down within about
    /// `down_after + probe_interval`; a node paused for less than
    /// `down_after - probe_interval` is never Down.
    pub down_after: Duration,
    /// Members asked per indirect check (the witnesses).
    pub indirect_checks: usize,
    /// How long a Down member's link is still redialled by the transport
    /// before it gives up (the membership keeps trying to reach it, more
    /// slowly, until its tombstone expires).
    pub give_up_after: Duration,
    /// How long a Down or Left member stays in the member table before it is
    /// removed ([`MemberEvent::Removed`](crate::MemberEvent::Removed)); a
    /// tombstone then keeps stale gossip from bringing it back.
    pub remove_after: Duration,
    /// Timeout of [`Router::ping`](crate::Router::ping) and of the
    /// acknowledgements [`Router::leave`](crate::Router::leave) waits for.
    pub request_timeout: Duration,
    /// How long [`Router::send`](crate::Router::send) waits for the link to a
    /// member that is known but not connected yet (just learned by gossip).
    pub link_wait: Duration,
    /// Mailbox capacity of the `system` actor.
    pub system_mailbox: usize,
    /// Most envelopes held for one local actor whose mailbox is full
    /// (its overflow queue). A slow actor never delays incoming traffic
    /// for the others; at this bound, further incoming envelopes for it
    /// bounce to their senders as Undeliverable (`mailbox of <actor> on
    /// <node> is full`). Local senders are not bounced: they wait.
    pub backlog_limit: usize,
    /// Most payload bytes held in one local actor's overflow queue (the
    /// other bound of [`RouterConfig::backlog_limit`]).
    pub backlog_bytes: usize,
    /// The rest of the transport settings (its `node_name`, `listen` and
    /// `secret` are taken from the fields above).
    pub transport: TransportConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            node_name: "node".to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            secret: Secret::default(),
            seeds: Vec::new(),
            tags: Vec::new(),
            gossip_interval: Duration::from_secs(1),
            gossip_fanout: 3,
            probe_interval: Duration::from_millis(100),
            suspect_after: Duration::from_millis(800),
            down_after: Duration::from_millis(1500),
            indirect_checks: 3,
            give_up_after: Duration::from_secs(60),
            remove_after: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            link_wait: Duration::from_secs(2),
            system_mailbox: 1024,
            backlog_limit: 16_384,
            backlog_bytes: 64 * 1024 * 1024,
            transport: TransportConfig::default(),
        }
    }
}

impl RouterConfig {
    /// The defaults with a node name and a cluster secret.
    pub fn new(node_name: impl Into<String>, secret: impl Into<Secret>) -> Self {
        RouterConfig {
            node_name: node_name.into(),
            secret: secret.into(),
            ..Self::default()
        }
    }

    /// Sets the seed URLs.
    pub fn seeds<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the initial tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the gossip interval and the failure detector's thresholds. The
    /// probe interval is lowered to `suspect_after / 3` when it is longer.
    pub fn timing(
        mut self,
        gossip: Duration,
        suspect_after: Duration,
        down_after: Duration,
    ) -> Self {
        self.gossip_interval = gossip;
        self.suspect_after = suspect_after;
        self.down_after = down_after;
        self.probe_interval = self.probe_interval.min(suspect_after / 3);
        self
    }

    /// The transport configuration with this router's name, address and secret.
    pub(crate) fn transport_config(&self) -> TransportConfig {
        TransportConfig {
            node_name: self.node_name.clone(),
            listen: self.listen,
            secret: self.secret.clone(),
            ..self.transport.clone()
        }
    }

    /// Checks the timings.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.gossip_interval.is_zero() {
            return Err("gossip_interval must be positive");
        }
        if self.gossip_fanout == 0 {
            return Err("gossip_fanout must be at least 1");
        }
        if self.probe_interval.is_zero() {
            return Err("probe_interval must be positive");
        }
        if self.suspect_after < self.probe_interval * 3 {
            return Err("suspect_after must be at least 3 probe intervals");
        }
        if self.down_after < self.suspect_after {
            return Err("down_after must not be shorter than suspect_after");
        }
        if self.indirect_checks == 0 {
            return Err("indirect_checks must be at least 1");
        }
        if self.system_mailbox == 0 {
            return Err("system_mailbox must be at least 1");
        }
        if self.backlog_limit == 0 || self.backlog_bytes == 0 {
            return Err("backlog_limit and backlog_bytes must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_explains_bad_timings() {
        assert!(RouterConfig::default().validate().is_ok());
        let ms = Duration::from_millis;
        let bad = RouterConfig {
            suspect_after: ms(200),
            ..RouterConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err("suspect_after must be at least 3 probe intervals")
        );
        // timing() keeps the probe interval in line.
        let ok = RouterConfig::default().timing(ms(100), ms(150), ms(600));
        assert_eq!(ok.probe_interval, ms(50));
        assert!(ok.validate().is_ok());
        let bad = RouterConfig::default().timing(ms(100), ms(300), ms(200));
        assert_eq!(
            bad.validate(),
            Err("down_after must not be shorter than suspect_after")
        );
        let bad = RouterConfig::default().timing(ms(0), ms(300), ms(600));
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_transport_gets_the_routers_identity() {
        let mut cfg = RouterConfig::new("node-q", "s3cret");
        cfg.transport.outbound_queue = 17;
        let t = cfg.transport_config();
        assert_eq!(t.node_name, "node-q");
        assert_eq!(t.secret, Secret::from("s3cret"));
        assert_eq!(t.outbound_queue, 17);
        assert_eq!(t.listen, cfg.listen);
    }
}
