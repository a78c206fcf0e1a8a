//! The leader of one limited kind: grants running slots and start tokens
//! to the coordinators (holders) that report demand.
//!
//! Safety rests on three rules:
//! - the slots *promised* to holders never sum above the limit: a share is
//!   raised only out of what is free, and lowered in the books only once
//!   the holder has acknowledged the lower grant (`acked == seq`) and runs
//!   no more than it;
//! - a holder that stops reporting for a lease is dropped (its share comes
//!   back), and the holder itself stops starting jobs when its lease,
//!   counted from when it *sent* its report, runs out (earlier);
//! - a new leader grants nothing for one lease: every share granted by a
//!   predecessor has expired by then, and every reachable holder has told
//!   it what it runs. The same wait follows each node it newly sees live
//!   (a joiner, or the other side of a healed partition, may still use the
//!   grants of another leader until it follows this one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::spec::KindLimit;
use super::wire::{Grant, Report};

/// Most holders a leader keeps (nodes of the membership; a bound for the
/// map fed from the network).
pub(crate) const MAX_HOLDERS: usize = 4096;
/// Largest `used`/`want`/`want_tokens` taken from a report.
const MAX_REPORTED: u32 = 1_000_000;
/// How often the remainder of a share that does not divide evenly moves
/// on to the next holders (turns, so none starves).
const ROTATE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Holder {
    used: u32,
    want: u32,
    want_tokens: u32,
    /// The latest `allowed` sent.
    allowed: u32,
    /// What the books count for this holder: at least `allowed`, and the
    /// higher earlier grant until the holder acknowledged the lower one.
    promised: u32,
    seq: u64,
    acked: u64,
    report_seq: u64,
    /// When the last report arrived.
    heard: Option<Instant>,
    /// A grant is owed (a report to answer, a change to announce).
    owed: bool,
    tokens: u32,
}

/// See the module guide.
#[derive(Debug)]
pub(crate) struct KindLeader {
    limit: KindLimit,
    lease: Duration,
    holders: BTreeMap<String, Holder>,
    /// Nothing is granted before this (one lease after taking over).
    hold_until: Instant,
    bucket: f64,
    refilled: Instant,
    turn: usize,
    rotated: Instant,
    token_turn: usize,
}

impl KindLeader {
    pub(crate) fn new(limit: KindLimit, lease: Duration, now: Instant) -> Self {
        KindLeader {
            limit,
            lease,
            holders: BTreeMap::new(),
            hold_until: now + lease,
            bucket: 0.0,
            refilled: now + lease,
            turn: 0,
            rotated: now,
            token_turn: 0,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: KindLimit) {
        self.limit = limit;
    }

    /// Grants nothing more for one lease from `now` (a node newly seen
    /// live may hold another leader's grants); renewals go on.
    pub(crate) fn hold_off(&mut self, now: Instant) {
        self.hold_until = self.hold_until.max(now + self.lease);
        self.refilled = self.refilled.max(self.hold_until);
        self.bucket = 0.0;
    }

    /// Whether it still waits out its predecessors' leases.
    pub(crate) fn holding_off(&self, now: Instant) -> bool {
        now < self.hold_until
    }

    /// Takes a report from `from` (a member node, checked by the caller).
    pub(crate) fn report(&mut self, from: &str, report: &Report, now: Instant) {
        if !self.holders.contains_key(from) && self.holders.len() >= MAX_HOLDERS {
            tracing::warn!(from, kind = %self.limit.kind, "limits: too many holders, report dropped");
            return;
        }
        let holder = self.holders.entry(from.to_owned()).or_default();
        holder.used = report.used.min(MAX_REPORTED);
        holder.want = report.want.min(MAX_REPORTED).max(holder.used);
        holder.want_tokens = report.want_tokens.min(MAX_REPORTED);
        holder.acked = report.acked;
        holder.report_seq = report.report_seq;
        holder.heard = Some(now);
        holder.owed = true;
        if holder.acked == holder.seq {
            holder.promised = holder.allowed.max(holder.used);
        } else {
            holder.promised = holder.promised.max(holder.used);
        }
    }

    /// Drops holders not heard from for a lease, refills the bucket,
    /// shares out slots and tokens; returns the grants to send.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<(String, Grant)> {
        let lease = self.lease;
        self.holders.retain(|_, h| {
            h.heard
                .is_some_and(|t| now.saturating_duration_since(t) < lease)
        });
        if !self.holding_off(now) {
            if now.saturating_duration_since(self.rotated) >= ROTATE_EVERY {
                self.rotated = now;
                self.turn = self.turn.wrapping_add(1);
            }
            if let Some(running) = self.limit.running {
                self.share_slots(running);
            }
            if let Some(rate) = self.limit.rate {
                self.share_tokens(rate, now);
            }
        }
        self.grants()
    }

    fn share_slots(&mut self, running: u32) {
        let wants: Vec<u32> = self.holders.values().map(|h| h.want).collect();
        let targets = fair_shares(running, &wants, self.turn);
        let mut booked: u64 = self.holders.values().map(|h| u64::from(h.promised)).sum();
        for (holder, target) in self.holders.values_mut().zip(targets) {
            let allowed = if target >= holder.allowed {
                // Raise towards the target out of what is free; the books
                // already count `promised` for this holder.
                let free = u64::from(running).saturating_sub(booked);
                let reach = (u64::from(holder.promised) + free).min(u64::from(target));
                holder.allowed.max(reach as u32)
            } else {
                // Lower at once; the books follow once it is acknowledged.
                target
            };
            if allowed != holder.allowed {
                holder.allowed = allowed;
                holder.seq += 1;
                holder.owed = true;
            }
            let promised = holder.promised.max(holder.allowed);
            booked = booked + u64::from(promised) - u64::from(holder.promised);
            holder.promised = promised;
        }
    }

    fn share_tokens(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = self.refilled.max(now);
        let size = f64::from(self.limit.bucket());
        self.bucket = (self.bucket + elapsed * rate).min(size);
        let count = self.holders.len();
        let mut asking = self.holders.values().filter(|h| h.want_tokens > 0).count();
        while self.bucket >= 1.0 && asking > 0 {
            self.token_turn = self.token_turn.wrapping_add(1);
            let at = self.token_turn % count;
            let Some(holder) = self.holders.values_mut().nth(at) else {
                break;
            };
            if holder.want_tokens > 0 {
                holder.want_tokens -= 1;
                holder.tokens += 1;
                holder.owed = true;
                self.bucket -= 1.0;
                if holder.want_tokens == 0 {
                    asking -= 1;
                }
            }
        }
    }

    fn grants(&mut self) -> Vec<(String, Grant)> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for (node, holder) in &mut self.holders {
            if !std::mem::take(&mut holder.owed) {
                continue;
            }
            let grant = Grant {
                kind: self.limit.kind.clone(),
                report_seq: holder.report_seq,
                seq: holder.seq,
                allowed: holder.allowed,
                tokens: std::mem::take(&mut holder.tokens),
                lease_ms,
            };
            out.push((node.clone(), grant));
        }
        out
    }

    /// Slots counted as taken (for status and tests).
    pub(crate) fn booked(&self) -> u32 {
        self.holders
            .values()
            .fold(0u32, |sum, h| sum.saturating_add(h.promised))
    }

    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        self.holders.len()
    }
}

/// Max-min fair shares of `total` among `wants`: each gets an equal share
/// or what it wants if less, and what does not divide evenly goes one each
/// to the demanding holders from position `turn` on (rotating turns).
pub(crate) fn fair_shares(total: u32, wants: &[u32], turn: usize) -> Vec<u32> {
    let mut got = vec![0u32; wants.len()];
    let mut left = total;
    loop {
        let active: Vec<usize> = (0..wants.len()).filter(|&i| got[i] < wants[i]).collect();
        if active.is_empty() || left == 0 {
            return got;
        }
        let share = left / active.len() as u32;
        if share == 0 {
            let start = turn % active.len();
            for k in 0..left as usize {
                got[active[(start + k) % active.len()]] += 1;
            }
            return got;
        }
        for &i in &active {
            let give = share.min(wants[i] - got[i]);
            got[i] += give;
            left -= give;
        }
    }
}
