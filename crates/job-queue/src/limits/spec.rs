//! What a user configures: [`KindLimit`] (`kind=sleep,running=2,rate=50`),
//! its gossiped tag form, and the effective limit when nodes disagree.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::job::Job;

/// Prefix of the tag a coordinator advertises for each limit it holds:
/// `limit:<kind>:<running>:<rate>:<burst>` (`-` for a part not set).
pub const LIMIT_TAG_PREFIX: &str = "limit:";

/// The highest `running` or `burst` accepted.
const MAX_COUNT: u32 = 1_000_000;
/// The highest `rate` (starts per second) accepted.
const MAX_RATE: f64 = 1_000_000.0;

/// A cluster-wide limit on one job kind: at most `running` attempts of it
/// running at once across the cluster, and at most `rate` starts per
/// second (a token bucket holding at most `burst` starts).
#[derive(Clone, Debug, PartialEq)]
pub struct KindLimit {
    /// The job kind.
    pub kind: String,
    /// Most attempts running at once, cluster-wide.
    pub running: Option<u32>,
    /// Most starts per second, cluster-wide.
    pub rate: Option<f64>,
    /// Most starts at once after an idle spell (the bucket's size; default
    /// a tenth of a second's worth of `rate`, at least 1).
    pub burst: Option<u32>,
}

/// Why a limit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseLimitError {
    /// A part is not `key=value`, or the key is unknown.
    #[error("{part:?} is not one of kind=NAME, running=N, rate=R, burst=B")]
    Part {
        /// The part.
        part: String,
    },
    /// A value is out of range or not a number.
    #[error("{key}={value:?} is not valid: {reason}")]
    Value {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// No `kind=`.
    #[error("a limit needs kind=NAME")]
    NoKind,
    /// Neither `running=` nor `rate=`.
    #[error("a limit needs running=N or rate=R (or both)")]
    NoLimit,
}

impl KindLimit {
    /// Checks the ranges (what [`FromStr`] enforces, for limits built in
    /// code).
    ///
    /// # Errors
    ///
    /// [`ParseLimitError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ParseLimitError> {
        let bad = |key, value: String, reason| ParseLimitError::Value { key, value, reason };
        if self.kind.is_empty() || self.kind.len() > Job::MAX_KIND_LEN {
            let reason = "1 to 64 bytes";
            return Err(bad("kind", self.kind.clone(), reason));
        }
        if self.running.is_none() && self.rate.is_none() {
            return Err(ParseLimitError::NoLimit);
        }
        if let Some(n) = self.running.filter(|n| !(1..=MAX_COUNT).contains(n)) {
            return Err(bad("running", n.to_string(), "1 to 1000000"));
        }
        if let Some(r) = self
            .rate
            .filter(|r| !(r.is_finite() && *r > 0.0 && *r <= MAX_RATE))
        {
            return Err(bad("rate", r.to_string(), "above 0, at most 1000000"));
        }
        if let Some(b) = self.burst.filter(|b| !(1..=MAX_COUNT).contains(b)) {
            return Err(bad("burst", b.to_string(), "1 to 1000000"));
        }
        Ok(())
    }

    /// The bucket's size: `burst`, else a tenth of a second's worth of
    /// `rate` (at least 1).
    pub fn bucket(&self) -> u32 {
        self.burst.unwrap_or_else(|| {
            let tenth = self.rate.unwrap_or(0.0) / 10.0;
            (tenth.ceil() as u32).clamp(1, MAX_COUNT)
        })
    }

    /// The tag advertising this limit (see [`LIMIT_TAG_PREFIX`]).
    pub fn tag(&self) -> String {
        fn part<T: fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "-".to_owned(), |v| v.to_string())
        }
        format!(
            "{LIMIT_TAG_PREFIX}{}:{}:{}:{}",
            self.kind,
            part(self.running),
            part(self.rate),
            part(self.burst)
        )
    }

    /// Reads a tag made by [`tag`](Self::tag); `None` for anything else
    /// (another node's tag is untrusted input: checked like a flag).
    pub fn from_tag(tag: &str) -> Option<KindLimit> {
        let rest = tag.strip_prefix(LIMIT_TAG_PREFIX)?;
        let mut parts = rest.rsplitn(4, ':');
        let burst = parts.next()?;
        let rate = parts.next()?;
        let running = parts.next()?;
        let kind = parts.next()?;
        fn opt<T: FromStr>(text: &str) -> Option<Option<T>> {
            match text {
                "-" => Some(None),
                other => other.parse().ok().map(Some),
            }
        }
        let limit = KindLimit {
            kind: kind.to_owned(),
            running: opt(running)?,
            rate: opt(rate)?,
            burst: opt(burst)?,
        };
        limit.validate().ok().map(|()| limit)
    }

    /// The stricter of two limits on the same kind: each part the smaller
    /// of those set (a part set on either side is set).
    pub fn stricter(&self, other: &KindLimit) -> KindLimit {
        fn min<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if b < a { b } else { a }),
                (a, b) => a.or(b),
            }
        }
        KindLimit {
            kind: self.kind.clone(),
            running: min(self.running, other.running),
            rate: min(self.rate, other.rate),
            burst: min(self.burst, other.burst),
        }
    }
}

impl FromStr for KindLimit {
    type Err = ParseLimitError;

    /// Parses `kind=sleep,running=2,rate=50,burst=5` (any order; `running`
    /// or `rate` or both).
    fn from_str(text: &str) -> Result<Self, ParseLimitError> {
        let mut limit = KindLimit {
            kind: String::new(),
            running: None,
            rate: None,
            burst: None,
        };
        let mut kind = None;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let refused = || ParseLimitError::Part { part: part.into() };
            let (key, value) = part.split_once('=').ok_or_else(refused)?;
            let number = |key, reason| ParseLimitError::Value {
                key,
                value: value.to_owned(),
                reason,
            };
            match key.trim() {
                "kind" => kind = Some(value.trim().to_owned()),
                "running" => {
                    let n = value
                        .trim()
                        .parse()
                        .map_err(|_| number("running", "a whole number"))?;
                    limit.running = Some(n);
                }
                "rate" => {
                    let r = value
                        .trim()
                        .parse()
                        .map_err(|_| number("rate", "a number"))?;
                    limit.rate = Some(r);
                }
                "burst" => {
                    let b = value
                        .trim()
                        .parse()
                        .map_err(|_| number("burst", "a whole number"))?;
                    limit.burst = Some(b);
                }
                _ => return Err(refused()),
            }
        }
        limit.kind = kind.ok_or(ParseLimitError::NoKind)?;
        limit.validate()?;
        Ok(limit)
    }
}

impl fmt::Display for KindLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kind={}", self.kind)?;
        if let Some(n) = self.running {
            write!(f, ",running={n}")?;
        }
        if let Some(r) = self.rate {
            write!(f, ",rate={r}")?;
        }
        if let Some(b) = self.burst {
            write!(f, ",burst={b}")?;
        }
        Ok(())
    }
}

/// Settings of the cluster-wide limits of a coordinator.
///
/// A [`CoordinatorCore`](crate::CoordinatorCore) with limits needs its
/// [`tick`](crate::CoordinatorCore::tick) called often (the
/// [`Coordinator`](crate::Coordinator) ticks every 20 ms): leases are
/// renewed and tokens handed out on the tick, not at a wakeup time.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    /// The limits this node holds (and advertises); every node should hold
    /// the same (where they differ, the stricter wins, see `docs/jobs.md`).
    pub kinds: Vec<KindLimit>,
    /// How long a share granted by a kind's leader is valid without a
    /// renewal (renewed every third of it), and how long a new leader
    /// waits before it grants anything (default 2 s).
    pub lease: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            kinds: Vec::new(),
            lease: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_tags_round_trip() {
        let limit: KindLimit = "kind=sleep, running=2,rate=50".parse().unwrap();
        assert_eq!(limit.running, Some(2));
        assert_eq!(limit.rate, Some(50.0));
        assert_eq!(limit.bucket(), 5);
        assert_eq!(limit.to_string().parse::<KindLimit>().unwrap(), limit);
        assert_eq!(limit.tag(), "limit:sleep:2:50:-");
        assert_eq!(KindLimit::from_tag(&limit.tag()), Some(limit));
        let colon: KindLimit = "kind=a:b,rate=0.5,burst=3".parse().unwrap();
        assert_eq!(KindLimit::from_tag(&colon.tag()), Some(colon));
    }

    #[test]
    fn refuses_what_makes_no_sense() {
        for bad in [
            "running=2",
            "kind=x",
            "kind=x,running=0",
            "kind=x,rate=-1",
            "kind=x,rate=inf",
            "kind=x,rate=NaN",
            "kind=x,running=2,color=red",
            "kind=x,running",
            "kind=x,running=2,burst=0",
        ] {
            assert!(bad.parse::<KindLimit>().is_err(), "{bad}");
        }
        for bad in [
            "limit:x:0:-:-",
            "limit:x:-:-:-",
            "limit:x:2:-",
            "kind:x",
            "limit::2:-:-",
        ] {
            assert_eq!(KindLimit::from_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_stricter_limit_wins() {
        let a: KindLimit = "kind=k,running=4,rate=10".parse().unwrap();
        let b: KindLimit = "kind=k,running=2,burst=7".parse().unwrap();
        let s = a.stricter(&b);
        assert_eq!((s.running, s.rate, s.burst), (Some(2), Some(10.0), Some(7)));
    }
}
