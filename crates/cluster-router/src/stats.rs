//! Router counters.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the router's counters (see [`Router::stats`](crate::Router::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RouterStats {
    /// Envelopes delivered to a local actor's mailbox.
    pub routed_local: u64,
    /// Envelopes handed to a peer node's link.
    pub routed_remote: u64,
    /// Envelopes handed to an external client's socket.
    pub routed_to_clients: u64,
    /// Envelopes received from external clients.
    pub from_clients: u64,
    /// Envelopes that could not be delivered (no such actor, client gone,
    /// full overflow queue, malformed address, unreachable reply target).
    pub dead_letters: u64,
    /// Undeliverable replies sent back to senders.
    pub undeliverable_sent: u64,
    /// Incoming envelopes bounced because their local addressee's overflow
    /// queue was at its bound ([`RouterConfig::backlog_limit`](crate::RouterConfig::backlog_limit)
    /// or `backlog_bytes`); also counted in `dead_letters`.
    pub overflow_bounces: u64,
    /// Replies to [`Router::request`](crate::Router::request) that arrived
    /// after their request timed out.
    pub late_replies: u64,
    /// Gossip rounds started by this node.
    pub gossip_rounds: u64,
    /// Envelopes from external clients refused because their addressee on
    /// this node does not take messages from clients (`_reply`, another
    /// client, an actor not registered client-facing); each is answered
    /// with an Error envelope.
    pub client_refused: u64,
    /// Client frames that were not a valid JSON envelope (answered with
    /// `{"error":"..."}`).
    pub client_malformed: u64,
    /// Client envelopes that set `kind`, `correlation_id` or `format`,
    /// which only the router sets (the values were ignored).
    pub client_fields_ignored: u64,
    /// Envelopes from a node link whose sender names another node (a node
    /// speaks only for itself); dropped.
    pub bad_senders: u64,
    /// Envelopes on `_reply` correlated to a pending request but not from
    /// its addressee; dropped (the request keeps waiting).
    pub forged_answers: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) routed_local: AtomicU64,
    pub(crate) routed_remote: AtomicU64,
    pub(crate) routed_to_clients: AtomicU64,
    pub(crate) from_clients: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) undeliverable_sent: AtomicU64,
    pub(crate) overflow_bounces: AtomicU64,
    pub(crate) late_replies: AtomicU64,
    pub(crate) gossip_rounds: AtomicU64,
    pub(crate) client_refused: AtomicU64,
    pub(crate) client_malformed: AtomicU64,
    pub(crate) client_fields_ignored: AtomicU64,
    pub(crate) bad_senders: AtomicU64,
    pub(crate) forged_answers: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RouterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouterStats {
            routed_local: get(&self.routed_local),
            routed_remote: get(&self.routed_remote),
            routed_to_clients: get(&self.routed_to_clients),
            from_clients: get(&self.from_clients),
            dead_letters: get(&self.dead_letters),
            undeliverable_sent: get(&self.undeliverable_sent),
            overflow_bounces: get(&self.overflow_bounces),
            late_replies: get(&self.late_replies),
            gossip_rounds: get(&self.gossip_rounds),
            client_refused: get(&self.client_refused),
            client_malformed: get(&self.client_malformed),
            client_fields_ignored: get(&self.client_fields_ignored),
            bad_senders: get(&self.bad_senders),
            forged_answers: get(&self.forged_answers),
        }
    }
}
