//! The ready queue: jobs waiting for a node's window, by priority with
//! aging.
//!
//! One FIFO lane per priority in use. The next job is the front of the
//! lane whose front has the highest *effective* priority: its priority
//! plus one for every `aging` it has waited in the queue (default 1 s), so
//! a job of priority 0 waiting behind a steady stream of priority-5 jobs
//! overtakes them after about 5 s: lower priorities are delayed, never
//! starved. Ties go to the higher base priority; within a lane, oldest
//! first. With one priority in use it is the plain FIFO it replaces.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::job::JobId;

/// Lanes kept when empty (priorities are chosen by submitters: beyond
/// these, an emptied lane is dropped, so their number stays bounded by the
/// jobs waiting).
const KEPT_LANES: usize = 8;

/// One waiting job.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) id: JobId,
    /// What the job asks of a node (see [`class_of`]), so that a pass over
    /// the queue can skip jobs like one it found blocked without looking
    /// the job up; `None` for a job that failed before (it avoids the
    /// nodes it failed on, so it is never skipped as like another).
    pub(crate) class: Option<u64>,
    priority: i32,
    since: Instant,
}

/// A keyed hash of a job's kind and tags: jobs with equal classes fit the
/// same nodes. Keyed with the process's random key (kinds and tags come
/// from clients), so two classes cannot be made to collide on purpose.
pub(crate) fn class_of(kind: &str, tags: &[String]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let mut hasher = KEY.get_or_init(std::hash::RandomState::new).build_hasher();
    kind.hash(&mut hasher);
    tags.hash(&mut hasher);
    hasher.finish()
}

/// See the module guide.
#[derive(Debug)]
pub(crate) struct ReadyQueue {
    lanes: BTreeMap<i32, VecDeque<Ready>>,
    len: usize,
    aging: Duration,
    /// Queued entries per class (entries without a class are `len` minus
    /// the sum): lets a pass stop once every class still queued is one it
    /// found blocked. At most one key per queued entry.
    classes: FxHashMap<u64, usize>,
}

impl ReadyQueue {
    /// An empty queue whose jobs gain one priority level per `aging`
    /// waited (`Duration::ZERO`: no aging).
    pub(crate) fn new(aging: Duration) -> Self {
        ReadyQueue {
            lanes: BTreeMap::new(),
            len: 0,
            aging,
            classes: FxHashMap::default(),
        }
    }

    fn count_in(&mut self, class: Option<u64>) {
        if let Some(class) = class {
            *self.classes.entry(class).or_default() += 1;
        }
        self.len += 1;
    }

    fn count_out(&mut self, class: Option<u64>) {
        if let Some(class) = class {
            if let Some(n) = self.classes.get_mut(&class) {
                *n -= 1;
                if *n == 0 {
                    self.classes.remove(&class);
                }
            }
        }
        self.len -= 1;
    }

    /// Whether a job of `class` is queued.
    pub(crate) fn has_class(&self, class: u64) -> bool {
        self.classes.contains_key(&class)
    }

    /// Whether every queued entry has a class, and each of them is in
    /// `blocked`: a pass that found those classes blocked has nothing
    /// left to try.
    pub(crate) fn only_classes_in(&self, blocked: &[u64]) -> bool {
        // Checked in this order, each step is bounded by `blocked`.
        self.classes.len() <= blocked.len()
            && self.classes.keys().all(|c| blocked.contains(c))
            && self.classes.values().sum::<usize>() == self.len
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `id` behind the jobs of its priority.
    pub(crate) fn push_back(&mut self, id: JobId, class: Option<u64>, priority: i32, now: Instant) {
        let ready = Ready {
            id,
            class,
            priority,
            since: now,
        };
        self.lanes.entry(priority).or_default().push_back(ready);
        self.count_in(class);
    }

    /// Puts a job taken with [`pop_front`](Self::pop_front) back where it was.
    pub(crate) fn push_front(&mut self, ready: Ready) {
        let class = ready.class;
        self.lanes
            .entry(ready.priority)
            .or_default()
            .push_front(ready);
        self.count_in(class);
    }

    fn effective(&self, ready: &Ready, now: Instant) -> i64 {
        let boost = if self.aging.is_zero() {
            0
        } else {
            let waited = now.saturating_duration_since(ready.since);
            (waited.as_nanos() / self.aging.as_nanos()).min(i64::MAX as u128 / 4) as i64
        };
        i64::from(ready.priority).saturating_add(boost)
    }

    /// Takes the job to place next (see the module guide).
    pub(crate) fn pop_front(&mut self, now: Instant) -> Option<Ready> {
        if self.len == 0 {
            return None;
        }
        let mut fronts = self.lanes.iter().rev().filter(|(_, lane)| !lane.is_empty());
        let priority = match (fronts.next(), fronts.next()) {
            // One lane holds every job (one priority in use): no aging to
            // weigh.
            (Some((&priority, _)), None) => priority,
            _ => {
                let mut best: Option<(i64, i32)> = None;
                // Highest base priority first, so that ties keep it.
                for (priority, lane) in self.lanes.iter().rev() {
                    let Some(front) = lane.front() else { continue };
                    let effective = self.effective(front, now);
                    if best.is_none_or(|(b, _)| effective > b) {
                        best = Some((effective, *priority));
                    }
                }
                best?.1
            }
        };
        let lane = self.lanes.get_mut(&priority)?;
        let ready = lane.pop_front();
        // An emptied lane is kept (with its buffer) while few lanes exist:
        // a queue that empties and fills again with every job, as under a
        // steady load, would otherwise free and allocate a lane per job.
        if lane.is_empty() && self.lanes.len() > KEPT_LANES {
            self.lanes.remove(&priority);
        }
        if let Some(ready) = &ready {
            self.count_out(ready.class);
        }
        ready
    }

    /// Removes the jobs for which `remove` holds; returns their ids, in
    /// queue order per priority (highest first).
    pub(crate) fn take_where(&mut self, mut remove: impl FnMut(&JobId) -> bool) -> Vec<JobId> {
        let mut taken = Vec::new();
        let mut classes = Vec::new();
        for lane in self.lanes.values_mut().rev() {
            lane.retain(|ready| {
                let out = remove(&ready.id);
                if out {
                    taken.push(ready.id.clone());
                    classes.push(ready.class);
                }
                !out
            });
        }
        self.lanes.retain(|_, lane| !lane.is_empty());
        for class in classes {
            self.count_out(class);
        }
        taken
    }

    /// Removes one job, if queued.
    pub(crate) fn remove(&mut self, id: &JobId) {
        let mut found = false;
        self.take_where(|queued| {
            let hit = !found && queued == id;
            found |= hit;
            hit
        });
    }

    /// Empties the queue; ids highest priority first, oldest first.
    pub(crate) fn drain(&mut self) -> Vec<JobId> {
        self.take_where(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ReadyQueue {
        fn push_back_test(&mut self, id: JobId, priority: i32, now: Instant) {
            self.push_back(id, None, priority, now);
        }
    }

    #[test]
    fn classes_tell_kinds_and_tags_apart() {
        let gpu = ["gpu".to_string()];
        assert_eq!(class_of("echo", &[]), class_of("echo", &[]));
        assert_ne!(class_of("echo", &[]), class_of("echo", &gpu));
        assert_ne!(class_of("echo", &[]), class_of("sleep", &[]));
        // Kind and tags are delimited: "ab" + ["c"] is not "a" + ["bc"].
        assert_ne!(
            class_of("ab", &["c".to_string()]),
            class_of("a", &["bc".to_string()])
        );
    }

    fn id(s: &str) -> JobId {
        JobId::new(s).unwrap()
    }

    fn order(q: &mut ReadyQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop_front(now))
            .map(|r| r.id.to_string())
            .collect()
    }

    #[test]
    fn higher_priority_first_then_oldest_first() {
        let now = Instant::now();
        let mut q = ReadyQueue::new(Duration::from_secs(1));
        q.push_back_test(id("low-1"), 0, now);
        q.push_back_test(id("high-1"), 5, now);
        q.push_back_test(id("low-2"), 0, now);
        q.push_back_test(id("neg"), -3, now);
        q.push_back_test(id("high-2"), 5, now);
        assert_eq!(q.len(), 5);
        let taken = q.pop_front(now).unwrap();
        assert_eq!(taken.id.as_str(), "high-1");
        q.push_front(taken);
        assert_eq!(
            order(&mut q, now),
            ["high-1", "high-2", "low-1", "low-2", "neg"]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn waiting_raises_a_job_so_low_priorities_are_not_starved() {
        let start = Instant::now();
        let mut q = ReadyQueue::new(Duration::from_secs(1));
        q.push_back_test(id("old-low"), 0, start);
        let later = start + Duration::from_millis(5_500);
        q.push_back_test(id("new-high"), 5, later);
        // 5.5 s of waiting: 0 + 5 = 5, a tie with the fresh 5: the higher
        // base priority keeps it.
        assert_eq!(q.pop_front(later).unwrap().id.as_str(), "new-high");
        q.push_back_test(id("newer-high"), 5, later);
        let much_later = start + Duration::from_millis(6_100);
        // 6 levels gained: 6 > 5 + 0.
        assert_eq!(q.pop_front(much_later).unwrap().id.as_str(), "old-low");
        // Without aging, never.
        let mut fifo = ReadyQueue::new(Duration::ZERO);
        fifo.push_back_test(id("old-low"), 0, start);
        fifo.push_back_test(id("high"), 1, much_later);
        assert_eq!(fifo.pop_front(much_later).unwrap().id.as_str(), "high");
    }

    #[test]
    fn emptied_lanes_are_kept_only_while_few() {
        let now = Instant::now();
        let mut q = ReadyQueue::new(Duration::ZERO);
        for p in 0..100 {
            q.push_back_test(id(&format!("p{p}")), p, now);
        }
        assert_eq!(order(&mut q, now).len(), 100);
        assert!(q.lanes.len() <= KEPT_LANES, "{} lanes left", q.lanes.len());
        // A kept empty lane is used again, in order.
        q.push_back_test(id("a"), 3, now);
        q.push_back_test(id("b"), 3, now);
        q.push_back_test(id("c"), 7, now);
        assert_eq!(order(&mut q, now), ["c", "a", "b"]);
        assert!(q.is_empty());
    }

    #[test]
    fn remove_and_take_where() {
        let now = Instant::now();
        let mut q = ReadyQueue::new(Duration::from_secs(1));
        for (i, p) in [0, 1, 0, 1].into_iter().enumerate() {
            q.push_back_test(id(&format!("j{i}")), p, now);
        }
        q.remove(&id("j1"));
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_where(|i| i.as_str() == "j2"), [id("j2")]);
        assert_eq!(q.drain(), [id("j3"), id("j0")]);
        assert!(q.is_empty());
    }

    #[test]
    fn knows_when_every_queued_class_is_blocked() {
        let now = Instant::now();
        let mut q = ReadyQueue::new(Duration::ZERO);
        let (echo, gpu) = (
            class_of("echo", &[]),
            class_of("echo", &["gpu".to_string()]),
        );
        for i in 0..3 {
            q.push_back(id(&format!("e{i}")), Some(echo), 0, now);
        }
        q.push_back(id("g"), Some(gpu), 0, now);
        assert!(!q.only_classes_in(&[echo]));
        assert!(q.only_classes_in(&[gpu, echo]));
        // Taken out and put back: still counted.
        let first = q.pop_front(now).unwrap();
        assert_eq!(first.class, Some(echo));
        q.push_front(first);
        assert!(!q.only_classes_in(&[echo]));
        // The other class gone: only blocked ones are left.
        assert_eq!(q.take_where(|i| i.as_str() == "g"), [id("g")]);
        assert!(q.only_classes_in(&[echo]));
        // A job without a class (it failed before) is never passed over.
        q.push_back(id("retry"), None, 0, now);
        assert!(!q.only_classes_in(&[echo]));
        assert_eq!(q.drain().len(), 4);
        assert!(q.classes.is_empty());
        assert!(q.only_classes_in(&[]));
    }
}
