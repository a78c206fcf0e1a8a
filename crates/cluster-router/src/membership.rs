//! The membership table and its gossip merge rules (sans-IO, clock passed in).
//!
//! Rules, for a gossiped row about node `N`:
//!
//! - A higher incarnation supersedes everything known about a lower one
//!   (a restarted node, or one that refuted a false suspicion).
//! - Within one incarnation, the row with the higher heartbeat carries the
//!   fresher data (URL, tags, load); the status is the stronger of the two
//!   (`Left > Down > Leaving > Up`). Suspicion is a local opinion: a
//!   gossiped `Suspect` counts as `Up`. So `Down` is final for an
//!   incarnation, and `Left` is never turned into `Down`.
//! - A row about this node that claims a newer incarnation, or calls it
//!   anything but Up in its current incarnation, is refuted: this node moves
//!   to a higher incarnation, which then wins everywhere.
//! - Liveness is local: the failure detector watches each member's
//!   heartbeat advance (seen directly or through a third node) and moves
//!   `Up -> Suspect -> Down`; a silent `Leaving` member becomes `Left`.
//!
//! Every operation returns [`Changes`]: events to publish and links to open
//! or close. The caller (the router) performs them.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;

use crate::addr::NodeId;
use crate::detector::{FailureDetector, Verdict};
use crate::member::{Load, Member, MemberEvent, MemberStatus};

/// Timing of the failure detector and of giving up on dead nodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MembershipTiming {
    pub(crate) suspect_after: Duration,
    pub(crate) down_after: Duration,
    /// How long a Down member's link keeps being redialled.
    pub(crate) give_up_after: Duration,
}

/// What the caller must do after a membership operation.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Events to broadcast to subscribers, in order.
    pub(crate) events: Vec<MemberEvent>,
    /// Links to open: (node, URL).
    pub(crate) connect: Vec<(NodeId, String)>,
    /// Links to close for good (stop redialling).
    pub(crate) disconnect: Vec<NodeId>,
}

impl Changes {
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.connect.is_empty() && self.disconnect.is_empty()
    }
}

#[derive(Debug)]
struct Entry {
    member: Member,
    status_since: Instant,
    given_up: bool,
}

/// The membership table of one node (this node included).
#[derive(Debug)]
pub(crate) struct Membership {
    me: NodeId,
    entries: HashMap<NodeId, Entry>,
    detector: FailureDetector,
    give_up_after: Duration,
}

impl Membership {
    /// A table holding only `me` (which should be Up).
    pub(crate) fn new(me: Member, timing: MembershipTiming, now: Instant) -> Self {
        let id = me.node.clone();
        let mut entries = HashMap::new();
        entries.insert(
            id.clone(),
            Entry {
                member: me,
                status_since: now,
                given_up: false,
            },
        );
        Self {
            me: id,
            entries,
            detector: FailureDetector::new(timing.suspect_after, timing.down_after),
            give_up_after: timing.give_up_after,
        }
    }

    fn me_mut(&mut self) -> &mut Member {
        &mut self
            .entries
            .get_mut(&self.me)
            .expect("the table always holds this node")
            .member
    }

    /// This node's own row.
    pub(crate) fn me(&self) -> &Member {
        &self.entries[&self.me].member
    }

    /// The row of `node`.
    pub(crate) fn get(&self, node: &NodeId) -> Option<&Member> {
        self.entries.get(node).map(|e| &e.member)
    }

    /// Every row, sorted by node id.
    pub(crate) fn members(&self) -> Vec<Member> {
        let mut all: Vec<Member> = self.entries.values().map(|e| e.member.clone()).collect();
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }

    /// The Up rows (this node included while it is Up), sorted by node id.
    pub(crate) fn up_members(&self) -> Vec<Member> {
        let mut up: Vec<Member> = self
            .entries
            .values()
            .filter(|e| e.member.status == MemberStatus::Up)
            .map(|e| e.member.clone())
            .collect();
        up.sort_by(|a, b| a.node.cmp(&b.node));
        up
    }

    /// Traffic (any envelope batch) arrived from `node` on its link: a sign
    /// of life as good as a heartbeat for the failure detector, so that a
    /// peer whose gossip is stuck behind a flood on the same link is not
    /// declared Down while its data keeps coming. Only refreshes the
    /// detector: statuses still change through [`Membership::check`] and
    /// gossip (a Suspect member returns to Up when its heartbeat advances),
    /// and a Down member stays Down for its incarnation.
    pub(crate) fn heard_from(&mut self, node: &NodeId, now: Instant) {
        let watched = self.entries.get(node).is_some_and(|e| {
            matches!(
                e.member.status,
                MemberStatus::Up | MemberStatus::Suspect | MemberStatus::Leaving
            )
        });
        if watched && *node != self.me {
            self.detector.progress(node, now);
        }
    }

    /// Advances this node's heartbeat (once per gossip interval).
    pub(crate) fn beat(&mut self) {
        self.me_mut().heartbeat += 1;
    }

    /// Publishes a new load for this node (gossiped with the next round).
    pub(crate) fn set_load(&mut self, load: Load) {
        self.me_mut().load = load;
    }

    /// Replaces this node's tags; `Updated` when they changed.
    pub(crate) fn set_tags(&mut self, tags: Vec<String>) -> Changes {
        let mut changes = Changes::default();
        let me = self.me_mut();
        if me.tags != tags {
            me.tags = tags;
            me.heartbeat += 1;
            changes.events.push(MemberEvent::Updated(me.clone()));
        }
        changes
    }

    /// Moves this node to `status` (Leaving, Left) and advances its
    /// heartbeat so the change is fresher than any earlier row.
    pub(crate) fn set_my_status(&mut self, status: MemberStatus, now: Instant) -> Changes {
        let mut changes = Changes::default();
        let me = self.me.clone();
        self.me_mut().heartbeat += 1;
        self.transition(&me, status, now, &mut changes);
        changes
    }

    /// Merges a gossiped table.
    pub(crate) fn merge(&mut self, remote: Vec<Member>, now: Instant) -> Changes {
        let mut changes = Changes::default();
        for row in remote {
            self.merge_row(row, now, &mut changes);
        }
        changes
    }

    fn merge_row(&mut self, mut row: Member, now: Instant, changes: &mut Changes) {
        if row.node == self.me {
            self.refute(&row);
            return;
        }
        if row.status == MemberStatus::Suspect {
            row.status = MemberStatus::Up;
        }
        let Some(entry) = self.entries.get_mut(&row.node) else {
            self.insert_new(row, now, changes);
            return;
        };
        let local = &entry.member;
        if row.incarnation > local.incarnation {
            self.supersede(row, now, changes);
        } else if row.incarnation == local.incarnation {
            self.merge_same_incarnation(row, now, changes);
        }
    }

    fn insert_new(&mut self, row: Member, now: Instant, changes: &mut Changes) {
        let node = row.node.clone();
        if row.status.is_reachable() {
            self.detector.progress(&node, now);
            changes.connect.push((node.clone(), row.url.clone()));
            changes.events.push(MemberEvent::for_status(row.clone()));
        }
        self.entries.insert(
            node,
            Entry {
                member: row,
                status_since: now,
                given_up: false,
            },
        );
    }

    fn supersede(&mut self, row: Member, now: Instant, changes: &mut Changes) {
        let node = row.node.clone();
        let entry = self.entries.get_mut(&node).expect("checked by caller");
        let old = std::mem::replace(&mut entry.member, row);
        let new_status = entry.member.status;
        entry.member.status = old.status;
        let url_changed = old.url != entry.member.url;
        let tags_changed = old.tags != entry.member.tags;
        self.detector.progress(&node, now);
        let entry = self.entries.get_mut(&node).expect("present");
        if new_status.is_reachable()
            && (url_changed || !old.status.is_reachable() || entry.given_up)
        {
            entry.given_up = false;
            changes
                .connect
                .push((node.clone(), entry.member.url.clone()));
        }
        if new_status != old.status {
            self.transition(&node, new_status, now, changes);
        } else if tags_changed || url_changed {
            changes
                .events
                .push(MemberEvent::Updated(entry.member.clone()));
        }
    }

    fn merge_same_incarnation(&mut self, row: Member, now: Instant, changes: &mut Changes) {
        let node = row.node.clone();
        let entry = self.entries.get_mut(&node).expect("checked by caller");
        let local_status = entry.member.status;
        let advanced = row.heartbeat > entry.member.heartbeat;
        let mut updated = false;
        if advanced {
            let m = &mut entry.member;
            m.heartbeat = row.heartbeat;
            m.load = row.load;
            if m.tags != row.tags {
                m.tags = row.tags;
                updated = true;
            }
            if m.url != row.url {
                m.url = row.url;
                updated = true;
                if local_status.is_reachable() {
                    changes.connect.push((node.clone(), m.url.clone()));
                }
            }
            self.detector.progress(&node, now);
        }
        let new_status = if row.status.rank() > local_status.rank() {
            row.status
        } else if advanced && local_status == MemberStatus::Suspect {
            MemberStatus::Up
        } else {
            local_status
        };
        if new_status != local_status {
            self.transition(&node, new_status, now, changes);
        } else if updated {
            let m = self.entries[&node].member.clone();
            changes.events.push(MemberEvent::Updated(m));
        }
    }

    /// Someone holds a wrong or newer view of this node: move to a higher
    /// incarnation so this node's own row wins again.
    fn refute(&mut self, row: &Member) {
        let me = self.me_mut();
        if matches!(me.status, MemberStatus::Leaving | MemberStatus::Left) {
            return;
        }
        let wrong = row.incarnation > me.incarnation
            || (row.incarnation == me.incarnation
                && (row.status.rank() > 0 || row.heartbeat > me.heartbeat));
        if wrong {
            me.incarnation = me.incarnation.max(row.incarnation) + 1;
            me.heartbeat += 1;
        }
    }

    fn transition(&mut self, node: &NodeId, to: MemberStatus, now: Instant, ch: &mut Changes) {
        let is_me = *node == self.me;
        let Some(entry) = self.entries.get_mut(node) else {
            return;
        };
        let from = entry.member.status;
        if from == to {
            return;
        }
        entry.member.status = to;
        entry.status_since = now;
        if to == MemberStatus::Left && !is_me {
            entry.given_up = true;
            ch.disconnect.push(node.clone());
            self.detector.forget(node);
        }
        if to == MemberStatus::Up && !from.is_reachable() {
            entry.given_up = false;
        }
        ch.events
            .push(MemberEvent::for_status(entry.member.clone()));
    }

    /// Runs the failure detector and gives up on long-Down members.
    pub(crate) fn check(&mut self, now: Instant) -> Changes {
        let mut changes = Changes::default();
        let nodes: Vec<NodeId> = self
            .entries
            .keys()
            .filter(|n| **n != self.me)
            .cloned()
            .collect();
        for node in nodes {
            let entry = &self.entries[&node];
            let status = entry.member.status;
            let verdict = self.detector.verdict(&node, now);
            let next = match (status, verdict) {
                (MemberStatus::Up, Verdict::Suspect) => Some(MemberStatus::Suspect),
                (MemberStatus::Up | MemberStatus::Suspect, Verdict::Down) => {
                    Some(MemberStatus::Down)
                }
                (MemberStatus::Leaving, Verdict::Down) => Some(MemberStatus::Left),
                _ => None,
            };
            if let Some(next) = next {
                self.transition(&node, next, now, &mut changes);
            } else if status == MemberStatus::Down
                && !entry.given_up
                && now.saturating_duration_since(entry.status_since) >= self.give_up_after
            {
                self.entries.get_mut(&node).expect("present").given_up = true;
                changes.disconnect.push(node);
            }
        }
        changes
    }

    /// The link to `node` dropped: an Up member becomes Suspect at once,
    /// whether the close was clean or not (an Up node that closes its links
    /// without announcing a leave has stopped abruptly). A Leaving or Left
    /// member is never suspected, and a node that is leaving itself
    /// suspects nobody (its peers close their links when they hear it left).
    pub(crate) fn link_down(&mut self, node: &NodeId, now: Instant) -> Changes {
        let mut changes = Changes::default();
        let leaving = matches!(self.me().status, MemberStatus::Leaving | MemberStatus::Left);
        if *node != self.me
            && !leaving
            && self.get(node).map(|m| m.status) == Some(MemberStatus::Up)
        {
            self.transition(node, MemberStatus::Suspect, now, &mut changes);
        }
        changes
    }

    /// Up to `fanout` random reachable peers (this node excluded).
    pub(crate) fn gossip_targets<R: Rng>(&self, fanout: usize, rng: &mut R) -> Vec<NodeId> {
        let peers: Vec<&NodeId> = self
            .entries
            .values()
            .filter(|e| e.member.node != self.me && e.member.status.is_reachable())
            .map(|e| &e.member.node)
            .collect();
        peers
            .choose_multiple(rng, fanout)
            .map(|n| (*n).clone())
            .collect()
    }

    /// The reachable peers (this node excluded).
    pub(crate) fn reachable_peers(&self) -> Vec<NodeId> {
        self.entries
            .values()
            .filter(|e| e.member.node != self.me && e.member.status.is_reachable())
            .map(|e| e.member.node.clone())
            .collect()
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
