//! The membership table and its gossip merge rules (sans-IO, clock passed in).
//!
//! Rules, for a gossiped row about node `N`:
//!
//! - A higher incarnation supersedes everything known about a lower one
//!   (a restarted node, or one that refuted a false suspicion).
//! - Within one incarnation, the row with the higher heartbeat carries the
//!   fresher data (URL, tags, load); the status is the stronger of the two
//!   (`Left > Down > Leaving > Up`), with one exception: **a Down rumour is
//!   only accepted when this node's own evidence agrees** (nobody it knows
//!   of heard `N` within `suspect_after`). One node's verdict never
//!   overrides another node's fresh contact. Suspicion is a local opinion:
//!   a gossiped `Suspect` counts as `Up`.
//! - A row about this node that claims a newer incarnation, or calls it
//!   anything but Up in its current incarnation, is refuted: this node moves
//!   to a higher incarnation and pushes its row to every peer at once.
//! - Liveness is local (see [`crate::detector`]): direct contact keeps a
//!   member Up; silence makes it Suspect; Down needs confirmation. A silent
//!   `Leaving` member becomes `Left`.
//! - A member that is Down or Left here but still sends heartbeats is told
//!   its row, so that it refutes (it was only cut off or paused).
//! - Down and Left members are removed after `remove_after`; a tombstone
//!   (node, incarnation) then keeps stale rows from bringing them back, and
//!   a higher incarnation (a restart) is welcome.
//!
//! Every operation returns [`Changes`]: events to publish, links to open or
//! close, and messages to send. The caller (the router) performs them.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;

use crate::addr::NodeId;
use crate::detector::{DetectorTiming, FailureDetector, Verdict};
use crate::member::{Load, Member, MemberEvent, MemberStatus};
use crate::wire::MAX_MEMBERS;

/// How long a tombstone outlives the removal of its member.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
/// How often a reachable member without a link is dialled.
const DIAL_EVERY: Duration = Duration::from_secs(1);
/// How often a Down (or removed Down) member is dialled, to heal partitions.
const DOWN_DIAL_EVERY: Duration = Duration::from_secs(5);
/// Least time between two rows told to the same stale member.
const TELL_EVERY: Duration = Duration::from_secs(1);

/// Timing of the failure detector and of forgetting dead nodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MembershipTiming {
    pub(crate) detector: DetectorTiming,
    /// Witnesses asked per indirect check.
    pub(crate) indirect_checks: usize,
    /// How long a Down member's link keeps being redialled by the transport.
    pub(crate) give_up_after: Duration,
    /// How long a Down or Left member stays in the table.
    pub(crate) remove_after: Duration,
}

/// What the caller must do after a membership operation.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Events to broadcast to subscribers, in order.
    pub(crate) events: Vec<MemberEvent>,
    /// Links to open: (node, URL).
    pub(crate) connect: Vec<(NodeId, String)>,
    /// Members to dial when not linked, each attempt briefly bounded (heals
    /// lost links and partitions).
    pub(crate) heal: Vec<(NodeId, String)>,
    /// Links to close for good (stop redialling).
    pub(crate) disconnect: Vec<NodeId>,
    /// Indirect checks to send: (witness, suspected member).
    pub(crate) checks: Vec<(NodeId, NodeId)>,
    /// Rows to send to the member they describe: it is Down or Left here
    /// but still talks, so it should refute.
    pub(crate) tell: Vec<Member>,
    /// Push this node's table to every reachable peer now (it refuted a
    /// rumour, or confirmed a member Down).
    pub(crate) push_all: bool,
}

impl Changes {
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.connect.is_empty()
            && self.disconnect.is_empty()
            && self.checks.is_empty()
            && self.tell.is_empty()
            && !self.push_all
    }
}

#[derive(Debug)]
struct Entry {
    member: Member,
    status_since: Instant,
    given_up: bool,
    next_dial: Instant,
    told: Option<Instant>,
    /// [`MemberEvent::LinkLost`] events reported for this member.
    link_losses: u64,
}

/// What is left of a removed member.
#[derive(Debug)]
struct Tombstone {
    incarnation: u64,
    status: MemberStatus,
    url: String,
    removed_at: Instant,
    next_dial: Instant,
    told: Option<Instant>,
}

fn may_tell(told: &mut Option<Instant>, now: Instant) -> bool {
    let due = told.is_none_or(|at| now.saturating_duration_since(at) >= TELL_EVERY);
    if due {
        *told = Some(now);
    }
    due
}

/// The membership table of one node (this node included).
#[derive(Debug)]
pub(crate) struct Membership {
    me: NodeId,
    entries: HashMap<NodeId, Entry>,
    tombstones: HashMap<NodeId, Tombstone>,
    detector: FailureDetector,
    timing: MembershipTiming,
}

impl Membership {
    /// A table holding only `me` (which should be Up).
    pub(crate) fn new(me: Member, timing: MembershipTiming, now: Instant) -> Self {
        let id = me.node.clone();
        let mut entries = HashMap::new();
        entries.insert(id.clone(), Self::entry(me, now));
        Self {
            me: id,
            entries,
            tombstones: HashMap::new(),
            detector: FailureDetector::new(timing.detector),
            timing,
        }
    }

    fn entry(member: Member, now: Instant) -> Entry {
        Entry {
            member,
            status_since: now,
            given_up: false,
            next_dial: now,
            told: None,
            link_losses: 0,
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

    /// How many [`MemberEvent::LinkLost`] were reported for `node` since
    /// its row was created (0 for an unknown node).
    pub(crate) fn link_losses(&self, node: &NodeId) -> u64 {
        self.entries.get(node).map_or(0, |e| e.link_losses)
    }

    /// Every row, sorted by node id (removed members are not listed).
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

    /// Whether `node` was removed and its tombstone still stands.
    #[cfg(test)]
    pub(crate) fn is_tombstoned(&self, node: &NodeId) -> bool {
        self.tombstones.contains_key(node)
    }

    /// Traffic (any envelope batch) arrived from `node` on its link: direct
    /// contact for the failure detector. A suspected member heard again is
    /// Up at the next [`Membership::check`]; a Down member stays Down for
    /// its incarnation (its heartbeats make this node tell it so, see
    /// [`Membership::on_heartbeat`]).
    pub(crate) fn heard_from(&mut self, node: &NodeId, now: Instant) {
        if *node != self.me {
            self.detector.heard(node, now);
        }
    }

    /// A heartbeat from `node`, which runs incarnation `incarnation`. If
    /// this node holds it Down or Left (or removed) in that incarnation, it
    /// is told its row so that it refutes.
    pub(crate) fn on_heartbeat(
        &mut self,
        node: &NodeId,
        incarnation: u64,
        now: Instant,
    ) -> Changes {
        let mut changes = Changes::default();
        if *node == self.me {
            return changes;
        }
        self.heard_from(node, now);
        if let Some(e) = self.entries.get_mut(node) {
            let stale = matches!(e.member.status, MemberStatus::Down | MemberStatus::Left);
            if stale && incarnation <= e.member.incarnation && may_tell(&mut e.told, now) {
                changes.tell.push(e.member.clone());
            }
        } else if let Some(t) = self.tombstones.get_mut(node) {
            if incarnation <= t.incarnation && may_tell(&mut t.told, now) {
                changes.tell.push(Member {
                    node: node.clone(),
                    url: t.url.clone(),
                    incarnation: t.incarnation,
                    status: t.status,
                    heartbeat: 0,
                    tags: Vec::new(),
                    load: Load::default(),
                });
            }
        }
        changes
    }

    /// A witness's answer to an indirect check about `target`.
    pub(crate) fn on_check_answer(
        &mut self,
        target: &NodeId,
        linked: bool,
        silence: Duration,
        now: Instant,
    ) {
        self.detector.witness_report(target, now, linked, silence);
    }

    /// How long this node has not heard `target` on its link, for a
    /// witness's answer (`None`: not watched, e.g. Down or unknown).
    pub(crate) fn silence_of(&self, target: &NodeId, now: Instant) -> Option<Duration> {
        self.detector.silence(target, now)
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
            changes.push_all |= self.refute(&row);
            return;
        }
        if row.status == MemberStatus::Suspect {
            row.status = MemberStatus::Up;
        }
        if let Some(t) = self.tombstones.get(&row.node) {
            if row.incarnation <= t.incarnation {
                return;
            }
            self.tombstones.remove(&row.node);
        }
        let Some(entry) = self.entries.get(&row.node) else {
            self.insert_new(row, now, changes);
            return;
        };
        let local = entry.member.incarnation;
        if row.incarnation > local {
            self.supersede(row, now, changes);
        } else if row.incarnation == local {
            self.merge_same_incarnation(row, now, changes);
        }
    }

    fn insert_new(&mut self, row: Member, now: Instant, changes: &mut Changes) {
        if self.entries.len() >= MAX_MEMBERS {
            tracing::warn!(member = %row.node, "member table full: row ignored");
            return;
        }
        let node = row.node.clone();
        let mut row = row;
        if row.status.is_reachable() {
            self.detector.watch(&node, now);
            changes.connect.push((node.clone(), row.url.clone()));
            changes.events.push(MemberEvent::for_status(row.clone()));
        } else {
            // A gone member's last load is no longer true.
            row.load = Load::default();
        }
        self.entries.insert(node, Self::entry(row, now));
    }

    /// A Down rumour about `node` is believed only if nobody this node
    /// knows of heard it within `suspect_after`.
    fn agrees_down(&self, node: &NodeId, now: Instant) -> bool {
        !self.detector.seen_recently(node, now)
    }

    fn supersede(&mut self, mut row: Member, now: Instant, changes: &mut Changes) {
        let node = row.node.clone();
        if row.status == MemberStatus::Down && !self.agrees_down(&node, now) {
            row.status = MemberStatus::Up;
        }
        let entry = self.entries.get_mut(&node).expect("checked by caller");
        let old = std::mem::replace(&mut entry.member, row);
        let new_status = entry.member.status;
        entry.member.status = old.status;
        let url_changed = old.url != entry.member.url;
        let tags_changed = old.tags != entry.member.tags;
        if new_status.is_reachable()
            && (url_changed || !old.status.is_reachable() || entry.given_up)
        {
            entry.given_up = false;
            changes
                .connect
                .push((node.clone(), entry.member.url.clone()));
        }
        if new_status.is_reachable() {
            // A new incarnation is watched afresh.
            self.detector.watch(&node, now);
        } else {
            entry.member.load = Load::default();
        }
        if new_status != old.status {
            self.transition(&node, new_status, now, changes);
        } else if tags_changed || url_changed {
            let m = self.entries[&node].member.clone();
            changes.events.push(MemberEvent::Updated(m));
        }
    }

    fn merge_same_incarnation(&mut self, row: Member, now: Instant, changes: &mut Changes) {
        let node = row.node.clone();
        let accept_down = self.agrees_down(&node, now);
        let entry = self.entries.get_mut(&node).expect("checked by caller");
        let local_status = entry.member.status;
        let mut updated = false;
        if row.heartbeat > entry.member.heartbeat {
            let m = &mut entry.member;
            m.heartbeat = row.heartbeat;
            if local_status.is_reachable() {
                m.load = row.load;
            }
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
        }
        let stronger = row.status.rank() > local_status.rank();
        let new_status = if stronger && (row.status != MemberStatus::Down || accept_down) {
            row.status
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
    /// incarnation so this node's own row wins again. Returns whether it did.
    fn refute(&mut self, row: &Member) -> bool {
        let me = self.me_mut();
        if matches!(me.status, MemberStatus::Leaving | MemberStatus::Left) {
            return false;
        }
        let wrong = row.incarnation > me.incarnation
            || (row.incarnation == me.incarnation
                && (row.status.rank() > 0 || row.heartbeat > me.heartbeat));
        if wrong {
            me.incarnation = me.incarnation.max(row.incarnation) + 1;
            me.heartbeat += 1;
            tracing::info!(node = %me.node, incarnation = me.incarnation, rumour = ?row.status, "refuted a stale view of this node");
        }
        wrong
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
        entry.next_dial = now;
        if !is_me {
            match to {
                MemberStatus::Suspect => self.detector.suspect(node, now),
                MemberStatus::Up => self.detector.clear_suspicion(node),
                MemberStatus::Down | MemberStatus::Left => {
                    // A gone member's last load is no longer true.
                    entry.member.load = Load::default();
                    self.detector.forget(node);
                }
                MemberStatus::Leaving => {}
            }
        }
        if to == MemberStatus::Left && !is_me {
            entry.given_up = true;
            ch.disconnect.push(node.clone());
        }
        if to == MemberStatus::Up && !from.is_reachable() {
            entry.given_up = false;
        }
        ch.events
            .push(MemberEvent::for_status(entry.member.clone()));
    }

    /// Runs the failure detector (every probe interval): suspicions,
    /// indirect checks, Down verdicts, dials of unlinked members, giving up
    /// on and removing gone members, expiring tombstones.
    pub(crate) fn check<R: Rng>(&mut self, now: Instant, rng: &mut R) -> Changes {
        let mut changes = Changes::default();
        let trusted = self.detector.trusted(now);
        let witnesses: Vec<NodeId> = self
            .entries
            .values()
            .filter(|e| e.member.node != self.me && e.member.status == MemberStatus::Up)
            .map(|e| e.member.node.clone())
            .filter(|n| self.detector.is_fresh(n, now))
            .collect();
        let mut nodes: Vec<NodeId> = self
            .entries
            .keys()
            .filter(|n| **n != self.me)
            .cloned()
            .collect();
        nodes.sort_unstable();
        for node in nodes {
            let status = self.entries[&node].member.status;
            match status {
                MemberStatus::Up => {
                    if trusted && self.detector.verdict(&node, now, true) != Verdict::Alive {
                        self.transition(&node, MemberStatus::Suspect, now, &mut changes);
                        self.ask_witnesses(&node, &witnesses, now, rng, &mut changes);
                    }
                }
                MemberStatus::Suspect => {
                    self.check_suspect(&node, &witnesses, trusted, now, rng, &mut changes);
                }
                MemberStatus::Leaving => {
                    let silent = self.detector.silence(&node, now).unwrap_or_default();
                    if silent >= self.timing.detector.down_after {
                        self.transition(&node, MemberStatus::Left, now, &mut changes);
                    }
                }
                MemberStatus::Down | MemberStatus::Left => {
                    self.check_gone(&node, now, &mut changes);
                    continue;
                }
            }
            self.dial_if_due(&node, now, &mut changes);
        }
        self.check_tombstones(now, &mut changes);
        changes
    }

    fn check_suspect<R: Rng>(
        &mut self,
        node: &NodeId,
        witnesses: &[NodeId],
        trusted: bool,
        now: Instant,
        rng: &mut R,
        changes: &mut Changes,
    ) {
        let can_ask = witnesses.iter().any(|w| w != node);
        match self.detector.verdict(node, now, can_ask) {
            Verdict::Alive => self.transition(node, MemberStatus::Up, now, changes),
            Verdict::Down if trusted => {
                tracing::info!(node = %self.me, member = %node, "member confirmed Down");
                self.transition(node, MemberStatus::Down, now, changes);
                changes.push_all = true;
            }
            _ => self.ask_witnesses(node, witnesses, now, rng, changes),
        }
    }

    fn ask_witnesses<R: Rng>(
        &mut self,
        node: &NodeId,
        witnesses: &[NodeId],
        now: Instant,
        rng: &mut R,
        changes: &mut Changes,
    ) {
        if !self.detector.ask_witnesses(node, now) {
            return;
        }
        let others: Vec<&NodeId> = witnesses.iter().filter(|w| *w != node).collect();
        for witness in others.choose_multiple(rng, self.timing.indirect_checks) {
            changes.checks.push(((*witness).clone(), node.clone()));
        }
    }

    fn dial_if_due(&mut self, node: &NodeId, now: Instant, changes: &mut Changes) {
        let entry = self.entries.get_mut(node).expect("present");
        if now >= entry.next_dial {
            let every = if entry.member.status == MemberStatus::Down {
                DOWN_DIAL_EVERY
            } else {
                DIAL_EVERY
            };
            entry.next_dial = now + every;
            changes.heal.push((node.clone(), entry.member.url.clone()));
        }
    }

    /// A Down or Left member: give up redialling, then remove it.
    fn check_gone(&mut self, node: &NodeId, now: Instant, changes: &mut Changes) {
        let entry = self.entries.get_mut(node).expect("present");
        let status = entry.member.status;
        let age = now.saturating_duration_since(entry.status_since);
        if age >= self.timing.remove_after {
            let entry = self.entries.remove(node).expect("present");
            if !entry.given_up {
                changes.disconnect.push(node.clone());
            }
            self.tombstone(entry, now);
            changes.events.push(MemberEvent::Removed(
                self.removed_row(node).expect("just tombstoned"),
            ));
            return;
        }
        if status == MemberStatus::Down {
            if !entry.given_up && age >= self.timing.give_up_after {
                entry.given_up = true;
                changes.disconnect.push(node.clone());
            }
            self.dial_if_due(node, now, changes);
        }
    }

    fn tombstone(&mut self, entry: Entry, now: Instant) {
        if self.tombstones.len() >= MAX_MEMBERS {
            let oldest = self
                .tombstones
                .iter()
                .min_by_key(|(_, t)| t.removed_at)
                .map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                self.tombstones.remove(&oldest);
            }
        }
        let m = entry.member;
        self.tombstones.insert(
            m.node,
            Tombstone {
                incarnation: m.incarnation,
                status: m.status,
                url: m.url,
                removed_at: now,
                next_dial: now + DOWN_DIAL_EVERY,
                told: entry.told,
            },
        );
    }

    /// The last row of a removed member, as its `Removed` event shows it.
    fn removed_row(&self, node: &NodeId) -> Option<Member> {
        self.tombstones.get(node).map(|t| Member {
            node: node.clone(),
            url: t.url.clone(),
            incarnation: t.incarnation,
            status: t.status,
            heartbeat: 0,
            tags: Vec::new(),
            load: Load::default(),
        })
    }

    /// Expires old tombstones; dials removed Down members now and then
    /// (one may have been cut off by a long partition).
    fn check_tombstones(&mut self, now: Instant, changes: &mut Changes) {
        self.tombstones
            .retain(|_, t| now.saturating_duration_since(t.removed_at) < TOMBSTONE_TTL);
        for (node, t) in &mut self.tombstones {
            if t.status == MemberStatus::Down && now >= t.next_dial {
                t.next_dial = now + DOWN_DIAL_EVERY;
                changes.heal.push((node.clone(), t.url.clone()));
            }
        }
    }

    /// The link to `node` dropped: [`MemberEvent::LinkLost`] for a member
    /// that is not Down or Left (what was in the link may be lost), and an
    /// Up member becomes
    /// Suspect at once (before that event),
    /// whether the close was clean or not (an Up node that closes its links
    /// without announcing a leave has stopped abruptly). A Leaving or Left
    /// member is never suspected, a node that is leaving itself suspects
    /// nobody (its peers close their links when they hear it left), and
    /// neither does a node that distrusts its own detector after a pause
    /// (its peers may have closed their links because of it).
    pub(crate) fn link_down(&mut self, node: &NodeId, now: Instant) -> Changes {
        let mut changes = Changes::default();
        let leaving = matches!(self.me().status, MemberStatus::Leaving | MemberStatus::Left);
        if *node != self.me
            && !leaving
            && self.detector.trusted(now)
            && self.get(node).map(|m| m.status) == Some(MemberStatus::Up)
        {
            self.transition(node, MemberStatus::Suspect, now, &mut changes);
        }
        // A Down or Left member's attempts were dealt with already, and
        // nothing may be reported about it after its Left.
        if *node != self.me {
            if let Some(entry) = self
                .entries
                .get_mut(node)
                .filter(|e| e.member.status.is_reachable())
            {
                entry.link_losses += 1;
                changes
                    .events
                    .push(MemberEvent::LinkLost(entry.member.clone()));
            }
        }
        changes
    }

    /// Runs the detector's pause check (every probe interval); see
    /// [`FailureDetector::tick`]. Returns the time credited.
    pub(crate) fn tick(&mut self, now: Instant, wall: std::time::SystemTime) -> Duration {
        self.detector.tick(now, wall)
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
