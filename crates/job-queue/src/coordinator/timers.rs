//! The shared deadline sweep: every pending deadline and retry wake-up in
//! one structure, instead of a timer per job.
//!
//! Most timers are armed with one of a few delays (the jobs' timeout,
//! usually the default, or the refusal backoff), and `now` only moves
//! forward: timers armed with the same delay expire in the order they were
//! armed. Each such delay gets a FIFO *lane*: arming is a push at its
//! back, the sweep pops at its front, with no ordered map to keep. A timer
//! cancelled before it fires (the common case: the result came first) is
//! left in its lane and skipped when met; each timer has a slot whose
//! sequence number says whether it is still armed (a generation check),
//! so cancelling costs an array write. Timers with other delays (jittered
//! retry backoffs, speculation, delayed starts), beyond [`MAX_LANES`]
//! distinct delays, or due before the back of their lane (a clock moved
//! back) go to an ordered map, removed eagerly.
//!
//! Bounded by the timers armed: every lane's front is armed (cancelled
//! fronts are popped at once), and a lane holding more cancelled entries
//! than armed ones plus [`SLACK`] is compacted.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::job::JobId;

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The running attempt's timeout.
    Deadline,
    /// The end of a retry backoff.
    Retry,
    /// The running attempt becomes a straggler: time for a speculative
    /// backup.
    Speculate,
}

/// A timer's handle, to cancel it; unique thanks to the sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    at: Instant,
    seq: u64,
    slot: u32,
}

/// Distinct delays with a lane of their own.
const MAX_LANES: usize = 8;
/// Cancelled entries a lane may hold beyond its armed ones before it is
/// compacted.
const SLACK: usize = 1024;
/// A slot not holding an armed timer.
const FREE: u64 = u64::MAX;
/// Where a timer lives: a lane's index, or the ordered map.
const IN_MAP: u8 = u8::MAX;

#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    slot: u32,
    id: JobId,
    kind: TimerKind,
}

#[derive(Debug)]
struct Lane {
    delay: Duration,
    queue: VecDeque<Entry>,
    /// Armed entries in `queue` (the rest were cancelled).
    armed: usize,
}

/// Which timer a slot holds (`seq`, or [`FREE`]) and where it lives.
#[derive(Clone, Copy, Debug)]
struct Slot {
    seq: u64,
    place: u8,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    lanes: Vec<Lane>,
    map: BTreeMap<(Instant, u64), (u32, JobId, TimerKind)>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    seq: u64,
}

impl Timers {
    /// Arms a timer at `now + delay`: in the lane of `delay` (see the
    /// module guide).
    pub(crate) fn insert_after(
        &mut self,
        now: Instant,
        delay: Duration,
        id: JobId,
        kind: TimerKind,
    ) -> TimerKey {
        let at = now + delay;
        match self.lane_for(delay, at) {
            Some(lane) => {
                let key = self.arm(at, lane as u8);
                let lane = &mut self.lanes[lane];
                lane.queue.push_back(Entry {
                    at,
                    seq: key.seq,
                    slot: key.slot,
                    id,
                    kind,
                });
                lane.armed += 1;
                key
            }
            None => self.insert(at, id, kind),
        }
    }

    /// Arms a timer at `at`, in the ordered map.
    pub(crate) fn insert(&mut self, at: Instant, id: JobId, kind: TimerKind) -> TimerKey {
        let key = self.arm(at, IN_MAP);
        self.map.insert((at, key.seq), (key.slot, id, kind));
        key
    }

    /// The lane for timers armed with `delay`, if one exists or can be
    /// made, and a timer at `at` keeps it in order.
    fn lane_for(&mut self, delay: Duration, at: Instant) -> Option<usize> {
        let index = match self.lanes.iter().position(|l| l.delay == delay) {
            Some(index) => index,
            None => {
                // An empty lane is taken over by the new delay.
                if let Some(index) = self.lanes.iter().position(|l| l.queue.is_empty()) {
                    self.lanes[index].delay = delay;
                    index
                } else if self.lanes.len() < MAX_LANES {
                    self.lanes.push(Lane {
                        delay,
                        queue: VecDeque::new(),
                        armed: 0,
                    });
                    self.lanes.len() - 1
                } else {
                    return None;
                }
            }
        };
        let in_order = self.lanes[index].queue.back().is_none_or(|e| e.at <= at);
        in_order.then_some(index)
    }

    fn arm(&mut self, at: Instant, place: u8) -> TimerKey {
        let seq = self.seq;
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Slot { seq, place };
                slot
            }
            None => {
                self.slots.push(Slot { seq, place });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 timers armed")
            }
        };
        TimerKey { at, seq, slot }
    }

    /// Whether `key` is still armed.
    fn is_armed(&self, seq: u64, slot: u32) -> bool {
        self.slots.get(slot as usize).is_some_and(|s| s.seq == seq)
    }

    fn release(&mut self, slot: u32) {
        self.slots[slot as usize].seq = FREE;
        self.free.push(slot);
    }

    /// Cancels a timer (a key already fired or cancelled is ignored).
    pub(crate) fn remove(&mut self, key: TimerKey) {
        if !self.is_armed(key.seq, key.slot) {
            return;
        }
        let place = self.slots[key.slot as usize].place;
        self.release(key.slot);
        if place == IN_MAP {
            self.map.remove(&(key.at, key.seq));
            return;
        }
        let lane = usize::from(place);
        self.lanes[lane].armed -= 1;
        self.pop_cancelled_fronts(lane);
        let lane_ref = &self.lanes[lane];
        if lane_ref.queue.len() > 2 * lane_ref.armed + SLACK {
            self.compact(lane);
        }
    }

    /// Drops the cancelled entries at the front of `lane`, so that its
    /// front is always armed.
    fn pop_cancelled_fronts(&mut self, lane: usize) {
        let slots = &self.slots;
        let queue = &mut self.lanes[lane].queue;
        while let Some(front) = queue.front() {
            if slots
                .get(front.slot as usize)
                .is_some_and(|s| s.seq == front.seq)
            {
                break;
            }
            queue.pop_front();
        }
    }

    /// Drops every cancelled entry of `lane`.
    fn compact(&mut self, lane: usize) {
        let slots = &self.slots;
        self.lanes[lane]
            .queue
            .retain(|e| slots.get(e.slot as usize).is_some_and(|s| s.seq == e.seq));
    }

    /// The earliest armed timer: `Some(lane)`, or `None` for the map's
    /// first; with its time.
    fn earliest(&self) -> Option<(Instant, Option<usize>)> {
        let mut best: Option<(Instant, u64, Option<usize>)> =
            self.map.keys().next().map(|&(at, seq)| (at, seq, None));
        for (index, lane) in self.lanes.iter().enumerate() {
            let Some(front) = lane.queue.front() else {
                continue;
            };
            if best.is_none_or(|(at, seq, _)| (front.at, front.seq) < (at, seq)) {
                best = Some((front.at, front.seq, Some(index)));
            }
        }
        best.map(|(at, _, place)| (at, place))
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(JobId, TimerKind)> {
        let (at, place) = self.earliest()?;
        if at > now {
            return None;
        }
        match place {
            None => {
                let (_, (slot, id, kind)) = self.map.pop_first()?;
                self.release(slot);
                Some((id, kind))
            }
            Some(lane) => {
                let entry = self.lanes[lane].queue.pop_front()?;
                self.lanes[lane].armed -= 1;
                self.release(entry.slot);
                self.pop_cancelled_fronts(lane);
                Some((entry.id, entry.kind))
            }
        }
    }

    /// When the earliest timer is due.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.earliest().map(|(at, _)| at)
    }

    /// Timers armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len() + self.lanes.iter().map(|l| l.armed).sum::<usize>()
    }

    /// Entries held, cancelled ones included.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.map.len() + self.lanes.iter().map(|l| l.queue.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> JobId {
        JobId::new(s).unwrap()
    }

    #[test]
    fn pops_in_order_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.insert(t0 + Duration::from_secs(2), id("b"), TimerKind::Retry);
        let a = timers.insert(t0 + Duration::from_secs(1), id("a"), TimerKind::Deadline);
        timers.insert(t0 + Duration::from_secs(1), id("c"), TimerKind::Deadline);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        timers.remove(a);
        assert_eq!(timers.pop_due(t0), None);
        let due = timers.pop_due(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(due, (id("c"), TimerKind::Deadline));
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(5)).unwrap().0,
            id("b")
        );
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn lanes_and_map_merge_in_deadline_then_arming_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        timers.insert_after(t0, ms(30), id("lane30-a"), TimerKind::Deadline);
        timers.insert(t0 + ms(20), id("map20"), TimerKind::Retry);
        timers.insert_after(t0 + ms(5), ms(10), id("lane10"), TimerKind::Retry);
        timers.insert_after(t0, ms(30), id("lane30-b"), TimerKind::Deadline);
        // Same time as lane10's: armed later, so after it.
        timers.insert(t0 + ms(15), id("map15"), TimerKind::Speculate);
        assert_eq!(timers.next(), Some(t0 + ms(15)));
        let order: Vec<String> = std::iter::from_fn(|| timers.pop_due(t0 + ms(100)))
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(order, ["lane10", "map15", "map20", "lane30-a", "lane30-b"]);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn a_clock_moving_back_keeps_the_order() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut timers = Timers::default();
        let delay = Duration::from_secs(1);
        timers.insert_after(t0, delay, id("later"), TimerKind::Deadline);
        // Armed "before" the previous one: due earlier, so not behind it.
        timers.insert_after(
            t0 - Duration::from_millis(500),
            delay,
            id("earlier"),
            TimerKind::Deadline,
        );
        let far = t0 + Duration::from_secs(10);
        assert_eq!(timers.pop_due(far).unwrap().0, id("earlier"));
        assert_eq!(timers.pop_due(far).unwrap().0, id("later"));
    }

    #[test]
    fn many_distinct_delays_overflow_into_the_map_and_free_lanes_are_reused() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut keys = Vec::new();
        for n in 0..(MAX_LANES as u64 * 3) {
            let delay = Duration::from_millis(1000 - n);
            keys.push(timers.insert_after(t0, delay, id(&format!("j{n}")), TimerKind::Retry));
        }
        assert_eq!(timers.lanes.len(), MAX_LANES);
        assert_eq!(timers.map.len(), MAX_LANES * 2);
        // Due in order of their delays, wherever they live.
        let order: Vec<String> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(2)))
            .map(|(id, _)| id.to_string())
            .collect();
        let expected: Vec<String> = (0..(MAX_LANES * 3))
            .rev()
            .map(|n| format!("j{n}"))
            .collect();
        assert_eq!(order, expected);
        // Emptied lanes take new delays.
        timers.insert_after(t0, Duration::from_secs(7), id("x"), TimerKind::Deadline);
        assert_eq!(timers.map.len(), 0);
        assert_eq!(timers.len(), 1);
    }

    /// 100,000 deadlines with one timeout, most cancelled out of order (as
    /// results arrive): what fires is exactly the rest, in arming order,
    /// and the lane never holds more than twice the armed ones plus slack.
    #[test]
    fn a_hundred_thousand_deadlines_with_lazy_cancellation() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let mut timers = Timers::default();
        let mut armed: std::collections::VecDeque<(TimerKey, u64)> = Default::default();
        let mut expected_fired = Vec::new();
        let mut held_max = 0;
        let mut now = t0;
        for n in 0..100_000u64 {
            now += Duration::from_micros(5);
            let key = timers.insert_after(now, timeout, id(&format!("j{n}")), TimerKind::Deadline);
            armed.push_back((key, n));
            // Keep ~5,000 in flight; finish them in a scrambled order,
            // except every 97th job, which never answers.
            if armed.len() > 5_000 {
                let pick = (n.wrapping_mul(2_654_435_761) % armed.len() as u64) as usize;
                let (key, job) = armed.swap_remove_back(pick).unwrap();
                if job % 97 == 0 {
                    expected_fired.push(job);
                } else {
                    timers.remove(key);
                    // A second cancel of the same key is ignored.
                    timers.remove(key);
                }
            }
            held_max = held_max.max(timers.held());
            assert!(
                timers.held() <= 2 * timers.len() + SLACK + 1,
                "{} held, {} armed",
                timers.held(),
                timers.len()
            );
        }
        // 5,000 answered ones in flight, and the ~1,030 that never answer.
        assert!(
            held_max <= 2 * (5_001 + 100_000 / 97 + 1) + SLACK + 1,
            "{held_max}"
        );
        for (_, job) in armed {
            expected_fired.push(job);
        }
        expected_fired.sort_unstable();
        assert_eq!(
            timers.pop_due(now),
            None,
            "nothing is due before its timeout"
        );
        let fired: Vec<u64> = std::iter::from_fn(|| timers.pop_due(now + timeout))
            .map(|(id, kind)| {
                assert_eq!(kind, TimerKind::Deadline);
                id.as_str()[1..].parse().unwrap()
            })
            .collect();
        assert_eq!(fired, expected_fired, "armed ones fire, in arming order");
        assert_eq!((timers.len(), timers.held()), (0, 0));
        // Slots are reused: no more than were armed at once.
        assert!(
            timers.slots.len() <= 5_002 + 100_000 / 97 + 1,
            "{}",
            timers.slots.len()
        );
    }
}
