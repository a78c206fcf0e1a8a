//! A coordinator's side of one limited kind: the share its leader granted
//! (with the lease's expiry), the start tokens it holds, what it runs, and
//! the jobs waiting for a permit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::spec::KindLimit;
use super::wire::{Grant, Report};
use crate::job::JobId;

/// How long a start token is valid after it arrives: tokens are asked for
/// only by waiting jobs, which use them at once.
pub(crate) const TOKEN_TTL: Duration = Duration::from_millis(250);
/// How long an unanswered report waits before the next one.
const RETRY: Duration = Duration::from_millis(250);
/// Reports whose send time is remembered (the lease counts from it).
const SENT_KEPT: usize = 8;
/// Token batches kept (more are merged into the last one).
const TOKEN_BATCHES: usize = 64;

/// See the module guide.
#[derive(Debug)]
pub(crate) struct KindHolder {
    leader: Option<String>,
    lease: Duration,
    allowed: u32,
    seq: u64,
    expires: Option<Instant>,
    used: u32,
    waiting: VecDeque<JobId>,
    tokens: VecDeque<(u32, Instant)>,
    report_seq: u64,
    sent: VecDeque<(u64, Instant)>,
    in_flight: Option<Instant>,
    last_report: Option<Instant>,
    dirty: bool,
}

impl KindHolder {
    pub(crate) fn new(lease: Duration) -> Self {
        KindHolder {
            leader: None,
            lease,
            allowed: 0,
            seq: 0,
            expires: None,
            used: 0,
            waiting: VecDeque::new(),
            tokens: VecDeque::new(),
            report_seq: 0,
            sent: VecDeque::new(),
            in_flight: None,
            last_report: None,
            dirty: false,
        }
    }

    pub(crate) fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Follows a new leader: whatever the old one granted is given up
    /// (running attempts go on and are reported to the new one).
    pub(crate) fn set_leader(&mut self, leader: Option<String>) {
        if self.leader == leader {
            return;
        }
        self.leader = leader;
        self.allowed = 0;
        self.seq = 0;
        self.expires = None;
        self.tokens.clear();
        self.sent.clear();
        self.in_flight = None;
        self.dirty = true;
    }

    fn tokens_now(&mut self, now: Instant) -> u32 {
        while self.tokens.front().is_some_and(|(_, until)| *until <= now) {
            self.tokens.pop_front();
        }
        // Saturating: the batches' counts come from the leader, another
        // node, and a grant of `u32::MAX` twice must not overflow.
        self.tokens
            .iter()
            .fold(0u32, |sum, (n, _)| sum.saturating_add(*n))
    }

    /// Whether one more attempt may start now.
    pub(crate) fn may_start(&mut self, limit: &KindLimit, now: Instant) -> bool {
        let slot = limit.running.is_none()
            || (self.expires.is_some_and(|t| now < t) && self.used < self.allowed);
        slot && (limit.rate.is_none() || self.tokens_now(now) > 0)
    }

    /// An attempt starts: it takes a slot and a token.
    pub(crate) fn start(&mut self, limit: &KindLimit) {
        self.used += 1;
        self.dirty = true;
        if limit.rate.is_some() {
            if let Some(front) = self.tokens.front_mut() {
                front.0 -= 1;
                if front.0 == 0 {
                    self.tokens.pop_front();
                }
            }
        }
    }

    /// An attempt that started here ended.
    pub(crate) fn finished(&mut self) {
        self.used = self.used.saturating_sub(1);
        self.dirty = true;
    }

    pub(crate) fn park(&mut self, id: JobId) {
        self.waiting.push_back(id);
        self.dirty = true;
    }

    pub(crate) fn unpark(&mut self, id: &JobId) {
        if let Some(at) = self.waiting.iter().position(|w| w == id) {
            self.waiting.remove(at);
            self.dirty = true;
        }
    }

    pub(crate) fn pop_parked(&mut self) -> Option<JobId> {
        self.waiting.pop_front()
    }

    pub(crate) fn take_parked(&mut self) -> Vec<JobId> {
        self.waiting.drain(..).collect()
    }

    pub(crate) fn has_parked(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub(crate) fn parked(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn used(&self) -> u32 {
        self.used
    }

    /// The share last granted (usable while the lease lasts).
    pub(crate) fn share(&self) -> u32 {
        self.allowed
    }

    /// Applies a grant from the leader (the caller checked the sender).
    pub(crate) fn grant(&mut self, grant: &Grant, now: Instant) {
        let lease = Duration::from_millis(grant.lease_ms).min(self.lease);
        if let Some(&(_, sent_at)) = self.sent.iter().find(|(s, _)| *s == grant.report_seq) {
            let until = sent_at + lease;
            self.expires = Some(self.expires.map_or(until, |t| t.max(until)));
        }
        self.allowed = grant.allowed;
        if grant.seq != self.seq {
            self.seq = grant.seq;
            self.dirty = true;
        }
        if grant.tokens > 0 {
            if self.tokens.len() < TOKEN_BATCHES {
                self.tokens.push_back((grant.tokens, now + TOKEN_TTL));
            } else if let Some(last) = self.tokens.back_mut() {
                last.0 = last.0.saturating_add(grant.tokens);
            }
        }
        if grant.report_seq == self.report_seq {
            self.in_flight = None;
        }
    }

    /// The report to send now, if one is due: at once when something
    /// changed (one at a time), else every third of a lease while it holds
    /// or wants anything.
    pub(crate) fn poll(&mut self, limit: &KindLimit, now: Instant) -> Option<Report> {
        self.leader.as_ref()?;
        let active = self.used > 0 || !self.waiting.is_empty() || self.allowed > 0;
        let idle_for =
            |t: Option<Instant>| t.is_none_or(|t| now.saturating_duration_since(t) >= RETRY);
        let changed = self.dirty && idle_for(self.in_flight);
        let renew = active
            && self
                .last_report
                .is_none_or(|t| now.saturating_duration_since(t) >= self.lease / 3);
        if !changed && !renew {
            return None;
        }
        let waiting = u32::try_from(self.waiting.len()).unwrap_or(u32::MAX);
        let want_tokens = if limit.rate.is_some() {
            waiting.saturating_sub(self.tokens_now(now))
        } else {
            0
        };
        self.dirty = false;
        self.report_seq += 1;
        self.in_flight = Some(now);
        self.last_report = Some(now);
        if self.sent.len() >= SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back((self.report_seq, now));
        Some(Report {
            kind: limit.kind.clone(),
            report_seq: self.report_seq,
            acked: self.seq,
            used: self.used,
            want: self.used.saturating_add(waiting),
            want_tokens,
        })
    }
}
