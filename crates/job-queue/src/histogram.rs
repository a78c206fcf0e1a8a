//! A small fixed-bucket log histogram of durations (HDR-like).
//!
//! Values are microseconds. Values below 8 µs have exact buckets; above,
//! every power of two is split into 8 linear sub-buckets, so a reported
//! quantile is within 6.25 % of the true sample (bucket midpoint). Values
//! above 2^40 µs (about 12.7 days) land in the last bucket. The memory is
//! fixed (~2.5 KiB) whatever the number of samples.

use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const MAX_EXP: u32 = 40;
const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS + 1) as usize * SUB;

/// A log-bucketed histogram of durations with exact count, sum, min and max.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min_us", &self.min_us)
            .field("max_us", &self.max_us)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = (63 - us.leading_zeros()).min(MAX_EXP);
    let mantissa = if exp == MAX_EXP && us >> MAX_EXP > 1 {
        SUB - 1
    } else {
        ((us >> (exp - SUB_BITS)) as usize) & (SUB - 1)
    };
    SUB + (exp - SUB_BITS) as usize * SUB + mantissa
}

fn bucket_midpoint(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = ((index - SUB) / SUB) as u32 + SUB_BITS;
    let mantissa = ((index - SUB) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB as u64 + mantissa) << (exp - SUB_BITS)) + width / 2
}

impl Histogram {
    /// Records one sample.
    pub(crate) fn record(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(us)] += 1;
        self.count += 1;
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// The number of samples.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The exact mean, or zero without samples.
    pub(crate) fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        // A 64-bit division when the sum fits (always, short of 584,000
        // years of samples): the 128-bit one is a slow library call, and
        // placement asks for the mean of every candidate node per job.
        let mean = match u64::try_from(self.sum_us) {
            Ok(sum) => sum / self.count,
            Err(_) => u64::try_from(self.sum_us / u128::from(self.count)).unwrap_or(u64::MAX),
        };
        Duration::from_micros(mean)
    }

    /// The largest sample, or zero without samples.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The `q` quantile (0.0..=1.0), or zero without samples.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let us = bucket_midpoint(index).clamp(self.min_us, self.max_us);
                return Duration::from_micros(us);
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_in_range() {
        let mut last = 0;
        for us in (0..100_000).chain([1 << 39, 1 << 40, u64::MAX]) {
            let b = bucket_of(us);
            assert!(b < BUCKETS);
            assert!(b >= last, "bucket order broken at {us}");
            last = b;
        }
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let within = |got: Duration, want_ms: f64| {
            let got = got.as_secs_f64() * 1e3;
            assert!((got - want_ms).abs() / want_ms < 0.07, "{got} vs {want_ms}");
        };
        within(h.quantile(0.5), 500.0);
        within(h.quantile(0.99), 990.0);
        assert_eq!(h.mean(), Duration::from_micros(500_500));
        assert_eq!(h.max(), Duration::from_millis(1000));
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn single_sample_is_exact() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(12_345));
        assert_eq!(h.quantile(0.5), Duration::from_micros(12_345));
        assert_eq!(Histogram::default().quantile(0.99), Duration::ZERO);
    }
}
