//! Which link losses the coordinator has acted on, so that one hidden by a
//! lagging membership subscription (events dropped under load) is still
//! acted on at the next table reload.
//!
//! The router counts the [`LinkLost`](cluster_router::MemberEvent::LinkLost)
//! events of each member ([`Router::link_losses`](cluster_router::Router::link_losses)).
//! One `link_lost` of the core covers every loss up to that moment (it
//! sends again every attempt outstanding on that node), so the coordinator
//! only needs to know whether the count grew since it last acted.

use std::collections::HashMap;

use cluster_router::NodeId;

#[derive(Debug, Default)]
pub(super) struct LinkLosses {
    handled: HashMap<NodeId, u64>,
}

impl LinkLosses {
    /// Takes `count` as already handled (losses before this coordinator
    /// had anything in flight).
    pub(super) fn baseline(&mut self, node: &NodeId, count: u64) {
        self.handled.insert(node.clone(), count);
    }

    /// Whether `count`, the router's loss count for `node` now, holds
    /// losses not acted on yet; they count as handled from here. A count
    /// below the last one (the member's row was created anew) is taken as
    /// the new baseline.
    pub(super) fn take_new(&mut self, node: &NodeId, count: u64) -> bool {
        let seen = self.handled.entry(node.clone()).or_insert(0);
        let new = count > *seen;
        *seen = count;
        new
    }

    /// Forgets the nodes `keep` rejects (bounded by the membership table).
    pub(super) fn retain(&mut self, keep: impl Fn(&NodeId) -> bool) {
        self.handled.retain(|node, _| keep(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_is_acted_on_once_whether_seen_as_an_event_or_a_count() {
        let b = NodeId::new("b").unwrap();
        let c = NodeId::new("c").unwrap();
        let mut losses = LinkLosses::default();
        losses.baseline(&b, 3);
        assert!(!losses.take_new(&b, 3), "losses before the start");
        assert!(losses.take_new(&b, 4), "a new loss");
        assert!(
            !losses.take_new(&b, 4),
            "the same loss again (event after reload)"
        );
        assert!(losses.take_new(&b, 6), "two missed losses: one action");
        // A member that joined later starts from zero.
        assert!(!losses.take_new(&c, 0));
        assert!(losses.take_new(&c, 1));
        // A row created anew counts from zero again.
        assert!(!losses.take_new(&b, 0));
        assert!(losses.take_new(&b, 1));
        losses.retain(|n| n == &c);
        assert_eq!(losses.handled.len(), 1);
    }
}
