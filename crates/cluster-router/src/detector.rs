//! The failure detector: a sans-IO state machine, the clock is passed in.
//!
//! The scheme is SWIM's (suspicion, indirect checks, refutation by
//! incarnation) with Lifeguard's local health awareness, adapted to a
//! cluster where every pair of nodes keeps a link:
//!
//! - **Direct contact.** Every node sends a heartbeat to every linked member
//!   each probe interval; anything received from a member on its link
//!   counts as contact ([`FailureDetector::heard`]).
//! - **Suspicion.** A member silent for `suspect_after` (or whose link just
//!   dropped) is suspected. While suspected, a few other members (the
//!   *witnesses*) are asked how long they have not heard it; their answers
//!   ([`FailureDetector::witness_report`]) either show it alive elsewhere
//!   (a witness heard it recently on a live link) or confirm the silence.
//! - **Down** needs all of: this node trusts itself (below), nobody has heard
//!   the member for `down_after`, and a witness confirmed the silence, or no
//!   witness can be asked (two-node cluster, or this node is cut off from
//!   everyone), or the silence reached twice `down_after`.
//! - **A node's own pause is not evidence.** [`FailureDetector::tick`] runs
//!   every probe interval; a late tick means this node was not running (a
//!   scheduling pause, SIGSTOP, a suspended VM), and the time it missed is
//!   credited to every member's silence. After such a pause the detector
//!   distrusts itself (no new verdicts) until it hears from some member
//!   again, or for `down_after` when nobody answers.

use std::time::{Duration, Instant, SystemTime};

use std::collections::HashMap;

use crate::addr::NodeId;

/// Thresholds of the failure detector.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DetectorTiming {
    /// Expected interval between two [`FailureDetector::tick`]s (and
    /// between two heartbeats from each member).
    pub(crate) probe_interval: Duration,
    /// Silence after which a member is suspected.
    pub(crate) suspect_after: Duration,
    /// Silence after which a suspected member is Down (once confirmed).
    pub(crate) down_after: Duration,
}

/// What the detector thinks of a node right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Heard recently, or heard again since it was suspected.
    Alive,
    /// Silent for at least `suspect_after` (or suspected after a link drop).
    Suspect,
    /// Silent for `down_after` everywhere this node can ask, and confirmed.
    Down,
}

/// One ongoing suspicion.
#[derive(Clone, Copy, Debug)]
struct Suspicion {
    since: Instant,
    /// A witness asked during this suspicion did not hear the member either.
    confirmed: bool,
    /// When witnesses were last asked.
    asked: Option<Instant>,
}

/// What this node knows about one member's signs of life.
#[derive(Clone, Copy, Debug)]
struct Watch {
    /// Last contact on the member's link (or when watching started).
    direct: Instant,
    /// Whether `direct` is real contact, not just the start of the watch.
    heard: bool,
    /// Latest moment a witness reports having heard the member on a live link.
    indirect: Option<Instant>,
    suspicion: Option<Suspicion>,
}

impl Watch {
    /// The latest sign of life known here (or the start of the watch).
    fn last_seen(&self) -> Instant {
        self.indirect.map_or(self.direct, |i| i.max(self.direct))
    }
}

/// The failure detector of one node.
#[derive(Debug)]
pub(crate) struct FailureDetector {
    timing: DetectorTiming,
    watches: HashMap<NodeId, Watch>,
    /// The previous tick, on both clocks.
    last_tick: Option<(Instant, SystemTime)>,
    /// Since when this node distrusts its own verdicts (it noticed a pause
    /// and has not heard from anyone since).
    distrust: Option<Instant>,
}

impl FailureDetector {
    /// A detector with these thresholds; `down_after` is raised to at least
    /// `suspect_after`.
    pub(crate) fn new(mut timing: DetectorTiming) -> Self {
        timing.down_after = timing.down_after.max(timing.suspect_after);
        Self {
            timing,
            watches: HashMap::new(),
            last_tick: None,
            distrust: None,
        }
    }

    /// Starts watching `node` afresh (a new member, or a new incarnation):
    /// it counts as heard at `now`, which gives it `suspect_after` to show
    /// up on its link.
    pub(crate) fn watch(&mut self, node: &NodeId, now: Instant) {
        self.watches.insert(
            node.clone(),
            Watch {
                direct: now,
                heard: false,
                indirect: None,
                suspicion: None,
            },
        );
    }

    /// Stops watching `node` (Down, Left, or removed).
    pub(crate) fn forget(&mut self, node: &NodeId) {
        self.watches.remove(node);
    }

    /// Something arrived from `node` on its link. Hearing from anyone also
    /// ends this node's distrust of itself after a pause.
    pub(crate) fn heard(&mut self, node: &NodeId, now: Instant) {
        if let Some(w) = self.watches.get_mut(node) {
            w.direct = w.direct.max(now);
            w.heard = true;
            self.distrust = None;
        }
    }

    /// How long `node` has been silent on its link, if it is watched.
    pub(crate) fn silence(&self, node: &NodeId, now: Instant) -> Option<Duration> {
        self.watches
            .get(node)
            .map(|w| now.saturating_duration_since(w.direct))
    }

    /// Whether `node` was heard directly within `suspect_after` (a member
    /// that can serve as a witness).
    pub(crate) fn is_fresh(&self, node: &NodeId, now: Instant) -> bool {
        let fresh = |at: Instant| now.saturating_duration_since(at) < self.timing.suspect_after;
        self.watches
            .get(node)
            .is_some_and(|w| w.heard && fresh(w.direct))
    }

    /// Whether anyone (this node or a witness) heard `node` within
    /// `suspect_after`: evidence that a Down rumour about it is false. The
    /// start of a watch is no evidence, and an unwatched node has none.
    pub(crate) fn seen_recently(&self, node: &NodeId, now: Instant) -> bool {
        let fresh = |at: Instant| now.saturating_duration_since(at) < self.timing.suspect_after;
        self.watches
            .get(node)
            .is_some_and(|w| (w.heard && fresh(w.direct)) || w.indirect.is_some_and(fresh))
    }

    /// Starts a suspicion of `node` (no-op when one is running).
    pub(crate) fn suspect(&mut self, node: &NodeId, now: Instant) {
        if let Some(w) = self.watches.get_mut(node) {
            w.suspicion.get_or_insert(Suspicion {
                since: now,
                confirmed: false,
                asked: None,
            });
        }
    }

    /// Ends the suspicion of `node` (it is Up again).
    pub(crate) fn clear_suspicion(&mut self, node: &NodeId) {
        if let Some(w) = self.watches.get_mut(node) {
            w.suspicion = None;
            w.indirect = None;
        }
    }

    /// Whether the witnesses should be asked about suspected `node` now
    /// (first time, or again every three probe intervals); records the ask.
    pub(crate) fn ask_witnesses(&mut self, node: &NodeId, now: Instant) -> bool {
        let every = self.timing.probe_interval * 3;
        let Some(s) = self
            .watches
            .get_mut(node)
            .and_then(|w| w.suspicion.as_mut())
        else {
            return false;
        };
        let due = s
            .asked
            .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if due {
            s.asked = Some(now);
        }
        due
    }

    /// A witness answered about `node`: it has a live link to it (`linked`)
    /// and last heard it `silence` ago. Alive there (linked, heard within
    /// `suspect_after`) refreshes the evidence; otherwise the answer
    /// confirms the suspicion.
    pub(crate) fn witness_report(
        &mut self,
        node: &NodeId,
        now: Instant,
        linked: bool,
        silence: Duration,
    ) {
        let suspect_after = self.timing.suspect_after;
        let Some(w) = self.watches.get_mut(node) else {
            return;
        };
        if linked && silence < suspect_after {
            let seen = now.checked_sub(silence).unwrap_or(now);
            w.indirect = Some(w.indirect.map_or(seen, |i| i.max(seen)));
        } else if let Some(s) = w.suspicion.as_mut() {
            s.confirmed = true;
        }
    }

    /// The verdict on `node` at `now`; `can_ask` says whether any witness
    /// could be asked about it. An unwatched node is [`Verdict::Alive`].
    pub(crate) fn verdict(&self, node: &NodeId, now: Instant, can_ask: bool) -> Verdict {
        let t = self.timing;
        let Some(w) = self.watches.get(node) else {
            return Verdict::Alive;
        };
        let Some(s) = w.suspicion else {
            let silent = now.saturating_duration_since(w.direct);
            return if silent >= t.suspect_after {
                Verdict::Suspect
            } else {
                Verdict::Alive
            };
        };
        if w.direct > s.since {
            return Verdict::Alive;
        }
        let silent = now.saturating_duration_since(w.last_seen());
        let confirmed = s.confirmed || !can_ask || silent >= t.down_after * 2;
        if silent >= t.down_after && confirmed {
            Verdict::Down
        } else {
            Verdict::Suspect
        }
    }

    /// Called every probe interval with both clocks. A tick later than two
    /// intervals means this node was not running: the time it missed is
    /// credited to every member (it is not their silence), and the detector
    /// distrusts itself until it hears from a member. A wall clock that
    /// jumped ahead of the monotonic one (a suspended machine) also makes
    /// it distrust itself. Returns the time credited.
    pub(crate) fn tick(&mut self, now: Instant, wall: SystemTime) -> Duration {
        let interval = self.timing.probe_interval;
        let previous = self.last_tick.replace((now, wall));
        let Some((last, last_wall)) = previous else {
            return Duration::ZERO;
        };
        let gap = now.saturating_duration_since(last);
        let wall_gap = wall.duration_since(last_wall).unwrap_or(Duration::ZERO);
        if wall_gap > gap + interval * 2 {
            self.distrust = Some(now);
        }
        if gap <= interval * 2 {
            return Duration::ZERO;
        }
        let credit = gap - interval;
        for w in self.watches.values_mut() {
            w.direct = (w.direct + credit).min(now);
            w.indirect = w.indirect.map(|i| (i + credit).min(now));
            if let Some(s) = w.suspicion.as_mut() {
                s.since = (s.since + credit).min(now);
            }
        }
        self.distrust = Some(now);
        credit
    }

    /// Whether this node trusts its own verdicts: it has not noticed a
    /// pause, or has heard from a member since, or `down_after` has passed.
    pub(crate) fn trusted(&self, now: Instant) -> bool {
        self.distrust
            .is_none_or(|since| now.saturating_duration_since(since) >= self.timing.down_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn detector() -> FailureDetector {
        FailureDetector::new(DetectorTiming {
            probe_interval: ms(100),
            suspect_after: ms(300),
            down_after: ms(600),
        })
    }

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn silence_is_suspect_then_down_once_confirmed() {
        let t0 = Instant::now();
        let mut d = detector();
        let b = n("b");
        assert_eq!(d.verdict(&b, t0, true), Verdict::Alive, "unwatched");
        d.watch(&b, t0);
        assert_eq!(d.verdict(&b, t0 + ms(299), true), Verdict::Alive);
        assert_eq!(d.verdict(&b, t0 + ms(300), true), Verdict::Suspect);
        d.suspect(&b, t0 + ms(300));
        assert!(d.ask_witnesses(&b, t0 + ms(300)));
        assert!(!d.ask_witnesses(&b, t0 + ms(399)), "asked again too soon");
        // Unconfirmed: not Down at down_after while witnesses can be asked.
        assert_eq!(d.verdict(&b, t0 + ms(700), true), Verdict::Suspect);
        // Nobody to ask: this node's own evidence suffices.
        assert_eq!(d.verdict(&b, t0 + ms(700), false), Verdict::Down);
        // A witness that does not hear it either confirms.
        d.witness_report(&b, t0 + ms(700), true, ms(650));
        assert_eq!(d.verdict(&b, t0 + ms(700), true), Verdict::Down);
    }

    #[test]
    fn without_confirmation_down_waits_for_twice_down_after() {
        let t0 = Instant::now();
        let mut d = detector();
        let b = n("b");
        d.watch(&b, t0);
        d.suspect(&b, t0 + ms(300));
        assert_eq!(d.verdict(&b, t0 + ms(1199), true), Verdict::Suspect);
        assert_eq!(d.verdict(&b, t0 + ms(1200), true), Verdict::Down);
    }

    #[test]
    fn a_witness_that_hears_it_keeps_it_from_down() {
        let t0 = Instant::now();
        let mut d = detector();
        let b = n("b");
        d.watch(&b, t0);
        d.suspect(&b, t0 + ms(300));
        // Witness heard it 50 ms before t0+900 on a live link.
        d.witness_report(&b, t0 + ms(900), true, ms(50));
        assert!(d.seen_recently(&b, t0 + ms(900)));
        assert!(!d.is_fresh(&b, t0 + ms(900)), "not heard here");
        assert!(!d.seen_recently(&b, t0 + ms(1_200)));
        assert_eq!(d.verdict(&b, t0 + ms(1000), false), Verdict::Suspect);
        // Six hundred ms after the witness last heard it: Down.
        assert_eq!(d.verdict(&b, t0 + ms(1450), false), Verdict::Down);
        // A witness without a link confirms instead of refreshing.
        let c = n("c");
        d.watch(&c, t0);
        d.suspect(&c, t0);
        d.witness_report(&c, t0 + ms(10), false, ms(5));
        assert_eq!(d.verdict(&c, t0 + ms(600), true), Verdict::Down);
    }

    #[test]
    fn only_real_contact_is_evidence() {
        let t0 = Instant::now();
        let mut d = detector();
        let b = n("b");
        d.watch(&b, t0);
        assert!(
            !d.is_fresh(&b, t0) && !d.seen_recently(&b, t0),
            "a watch is no evidence"
        );
        d.heard(&b, t0 + ms(10));
        assert!(d.is_fresh(&b, t0 + ms(309)) && d.seen_recently(&b, t0 + ms(309)));
        assert!(!d.is_fresh(&b, t0 + ms(310)) && !d.seen_recently(&b, t0 + ms(310)));
    }

    #[test]
    fn contact_after_the_suspicion_began_clears_it() {
        let t0 = Instant::now();
        let mut d = detector();
        let b = n("b");
        d.watch(&b, t0);
        // A link drop: suspected at once, though recently heard.
        d.suspect(&b, t0 + ms(50));
        assert_eq!(d.verdict(&b, t0 + ms(60), true), Verdict::Suspect);
        d.heard(&b, t0 + ms(40));
        assert_eq!(d.verdict(&b, t0 + ms(60), true), Verdict::Suspect);
        d.heard(&b, t0 + ms(70));
        assert_eq!(d.verdict(&b, t0 + ms(80), true), Verdict::Alive);
        d.clear_suspicion(&b);
        assert_eq!(d.verdict(&b, t0 + ms(300), true), Verdict::Alive);
        d.forget(&b);
        assert_eq!(d.silence(&b, t0), None);
    }

    #[test]
    fn a_late_tick_credits_the_pause_and_distrusts_until_heard() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut d = detector();
        let (b, c) = (n("b"), n("c"));
        d.watch(&b, t0);
        d.watch(&c, t0);
        assert_eq!(d.tick(t0, w0), Duration::ZERO);
        assert_eq!(d.tick(t0 + ms(100), w0 + ms(100)), Duration::ZERO);
        assert_eq!(d.tick(t0 + ms(290), w0 + ms(290)), Duration::ZERO);
        assert!(d.trusted(t0 + ms(290)));
        // Paused for ten seconds: nobody's silence counts the pause.
        let resumed = t0 + ms(10_290);
        let credit = d.tick(resumed, w0 + ms(10_290));
        assert_eq!(credit, ms(9_900));
        assert!(!d.trusted(resumed));
        assert_eq!(d.silence(&b, resumed), Some(ms(390)));
        assert_eq!(d.verdict(&b, resumed, true), Verdict::Suspect);
        // Hearing from anyone restores trust.
        d.heard(&c, resumed + ms(5));
        assert!(d.trusted(resumed + ms(5)));
        // So does time, when nobody answers.
        d.tick(resumed + ms(2_000), w0 + ms(12_290));
        assert!(!d.trusted(resumed + ms(2_000)));
        assert!(d.trusted(resumed + ms(2_600)));
    }

    #[test]
    fn a_wall_clock_jump_distrusts_without_credit() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut d = detector();
        d.tick(t0, w0);
        assert_eq!(d.tick(t0 + ms(100), w0 + ms(60_000)), Duration::ZERO);
        assert!(!d.trusted(t0 + ms(100)));
        // A wall clock stepped back is ignored.
        let mut d = detector();
        d.tick(t0, w0 + ms(60_000));
        d.tick(t0 + ms(100), w0);
        assert!(d.trusted(t0 + ms(100)));
    }

    #[test]
    fn a_pause_never_turns_credit_into_contact() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut d = detector();
        let b = n("b");
        d.watch(&b, t0);
        d.tick(t0, w0);
        d.suspect(&b, t0 + ms(300));
        d.tick(t0 + ms(300), w0 + ms(300));
        // Paused 1 s while suspecting: the suspicion is not cleared by the
        // credited silence.
        d.tick(t0 + ms(1_300), w0 + ms(1_300));
        assert_eq!(d.verdict(&b, t0 + ms(1_300), true), Verdict::Suspect);
    }
}
