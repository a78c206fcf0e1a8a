//! The job and its result: [`JobId`], [`Job`], [`JobResult`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{InvalidJob, ParseJobIdError};
use crate::failure::JobFailure;
use crate::strategy::StrategyKind;

/// The identity of a job: a cheap-to-clone string.
///
/// A valid id is 1..=[`JobId::MAX_LEN`] bytes with no whitespace and no
/// control characters. [`JobId::default()`] is the empty, *unassigned* id: a
/// coordinator replaces it with a generated `<node>-<counter>` id on submit.
/// `Display` and `FromStr` round-trip for every valid id.
///
/// An id carries its hash, computed once when it is made: SipHash keyed
/// with a key drawn at random when the process starts (ids are chosen by
/// clients, so maps keyed by them keep keyed hashing, `docs/architecture.md`),
/// and [`Hash`] writes only that `u64`. A job id is looked up some twenty
/// times on its way through a coordinator; each lookup then costs no
/// SipHash of the string. Equal ids have equal hashes within a process;
/// the hash is never sent anywhere.
#[derive(Clone)]
pub struct JobId {
    id: Arc<str>,
    hash: u64,
}

/// The process-wide random key of [`JobId`] hashes.
fn id_key() -> &'static std::hash::RandomState {
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
}

impl Default for JobId {
    fn default() -> Self {
        JobId::wrap(Arc::from(""))
    }
}

impl PartialEq for JobId {
    fn eq(&self, other: &Self) -> bool {
        // The same allocation (an id cloned from the stored one) is equal
        // without reading the text: in a large table, the stored key's text
        // is a cache miss of its own.
        self.hash == other.hash && (Arc::ptr_eq(&self.id, &other.id) || self.id == other.id)
    }
}

impl Eq for JobId {}

impl PartialOrd for JobId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JobId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::hash::Hash for JobId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of maps keyed by [`JobId`] alone: it passes the id's own
/// keyed hash through instead of hashing it again. Any other input is
/// mixed in (FxHash-style), so a key of another type still works, but
/// without keyed hashing: use it for `JobId` keys only.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher {
    hash: u64,
    written: bool,
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.hash = if self.written {
            (self.hash.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
        } else {
            // The first (for a `JobId`, the only) write: its hash as it is.
            n
        };
        self.written = true;
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`IdHasher`]s.
pub(crate) type BuildIdHasher = std::hash::BuildHasherDefault<IdHasher>;
/// A map keyed by job ids, hashed by their own keyed hash ([`JobId`]).
pub(crate) type IdMap<V> = std::collections::HashMap<JobId, V, BuildIdHasher>;
/// A set of job ids, hashed by their own keyed hash ([`JobId`]).
pub(crate) type IdSet = std::collections::HashSet<JobId, BuildIdHasher>;

impl JobId {
    /// The id's keyed hash (the one its maps use).
    pub(crate) fn keyed_hash(&self) -> u64 {
        self.hash
    }

    /// The longest id accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps an id.
    ///
    /// # Errors
    ///
    /// [`ParseJobIdError`] if the id is empty, too long, or contains
    /// whitespace or control characters.
    pub fn new(id: &str) -> Result<Self, ParseJobIdError> {
        if id.is_empty() {
            return Err(ParseJobIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(ParseJobIdError::TooLong { len: id.len() });
        }
        // Printable ASCII (most ids) passes at once; anything else is
        // checked character by character.
        let printable_ascii = id.bytes().all(|b| (b'!'..=b'~').contains(&b));
        if !printable_ascii {
            if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
                return Err(ParseJobIdError::BadChar { c });
            }
        }
        Ok(JobId::wrap(Arc::from(id)))
    }

    fn wrap(id: Arc<str>) -> Self {
        let hash = std::hash::BuildHasher::hash_one(id_key(), &*id);
        JobId { id, hash }
    }

    /// The id a coordinator on `node` generates for its `counter`-th job.
    pub(crate) fn generated(node: &str, counter: u64) -> Self {
        JobId::wrap(Arc::from(format!("{node}-{counter}")))
    }

    /// The id as a string slice (empty when unassigned).
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether this is the empty id that asks the coordinator to assign one.
    pub fn is_unassigned(&self) -> bool {
        self.id.is_empty()
    }

    /// Parses a wire id, where the empty string means unassigned.
    pub(crate) fn from_wire(id: &str) -> Result<Self, ParseJobIdError> {
        if id.is_empty() {
            Ok(JobId::default())
        } else {
            JobId::new(id)
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({:?})", &*self.id)
    }
}

impl FromStr for JobId {
    type Err = ParseJobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobId::new(s)
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        JobId::from_wire(&s).map_err(serde::de::Error::custom)
    }
}

/// A unit of work: run handler `kind` on `data` on some eligible node.
///
/// JSON and bincode forms are documented in `docs/jobs.md`; use
/// [`Job::to_json`], [`Job::from_json`], [`Job::to_bincode`] and
/// [`Job::from_bincode`].
///
/// ```
/// use std::time::Duration;
/// use job_queue::Job;
///
/// let job = Job::new("resize", r#"{"w":64}"#)
///     .with_tag("gpu")
///     .with_timeout(Duration::from_secs(5));
/// let back = Job::from_json(&job.to_json()).unwrap();
/// assert_eq!(back, job);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The job's id; [`JobId::default()`] lets the coordinator assign one.
    pub id: JobId,
    /// The handler kind that runs the job (`resize`, `wordcount-map`, ...).
    pub kind: String,
    /// Opaque input, conventionally JSON text.
    pub data: String,
    /// Tags a node must carry to run the job (`gpu`, ...).
    pub tags: Vec<String>,
    /// How long one attempt may take before it is retried elsewhere.
    pub timeout: Duration,
    /// The most attempts made before the job is dead-lettered (>= 1).
    pub max_attempts: u32,
    /// The 1-based number of this attempt (set by the coordinator).
    pub attempt: u32,
    /// A strategy that overrides the coordinator's default for this job.
    pub strategy: Option<StrategyKind>,
    /// Higher runs first among jobs waiting for a node (default 0); a
    /// waiting job gains one level per second, so lower priorities are
    /// delayed, never starved (`docs/jobs.md`, "Priorities and delays").
    pub priority: i32,
    /// Unix time in milliseconds before which the job does not start
    /// (`None`: as soon as a node has room).
    pub not_before: Option<u64>,
    /// Whether a straggling attempt may get a speculative backup on another
    /// node (the submitter says the job is idempotent: running it twice is
    /// harmless). Kinds the coordinator marks idempotent are speculated
    /// without it (`docs/jobs.md`, "Speculative backups").
    pub speculative: bool,
}

impl Job {
    /// The default per-attempt timeout: 30 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default number of attempts: 3.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// The longest kind name accepted, in bytes.
    pub const MAX_KIND_LEN: usize = 64;
    /// The longest per-attempt timeout accepted: one day (the CLI's
    /// `--timeout` cap; HTTP and WebSocket `timeout_ms` are held to it too).
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
    /// The most attempts accepted (the CLI's `--max-attempts` cap).
    pub const MAX_ATTEMPTS: u32 = 100;
    /// The longest `data` accepted, in bytes: 8 MiB, so that a job fits a
    /// 16 MiB frame even when its JSON form escapes much of it.
    pub const MAX_DATA_LEN: usize = 8 * 1024 * 1024;
    /// The most required tags per job.
    pub const MAX_TAGS: usize = 32;
    /// The longest required tag, in bytes (the node tag rule).
    pub const MAX_TAG_LEN: usize = 64;

    /// A job of `kind` with `data`, default timeout and attempts, no tags and
    /// an unassigned id.
    pub fn new(kind: impl Into<String>, data: impl Into<String>) -> Self {
        Job {
            id: JobId::default(),
            kind: kind.into(),
            data: data.into(),
            tags: Vec::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            attempt: 1,
            strategy: None,
            priority: 0,
            not_before: None,
            speculative: false,
        }
    }

    /// Sets the priority (higher first; default 0).
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Allows speculative backups of a straggling attempt (the job is
    /// idempotent).
    pub fn with_speculative(mut self, speculative: bool) -> Self {
        self.speculative = speculative;
        self
    }

    /// Makes the job wait until `unix_ms` (Unix time in milliseconds).
    pub fn with_not_before(mut self, unix_ms: u64) -> Self {
        self.not_before = Some(unix_ms);
        self
    }

    /// Makes the job wait `delay` from now.
    pub fn with_delay(self, delay: Duration) -> Self {
        let at = unix_ms_now().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self.with_not_before(at)
    }

    /// Sets the id (instead of letting the coordinator assign one).
    pub fn with_id(mut self, id: JobId) -> Self {
        self.id = id;
        self
    }

    /// Adds a required tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the maximum number of attempts.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Overrides the coordinator's strategy for this job.
    pub fn with_strategy(mut self, strategy: StrategyKind) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Checks the fields a coordinator relies on, and the limits every
    /// interface shares (the one validation of CLI, HTTP, WebSocket and
    /// bincode submissions: each reaches a coordinator, which calls this
    /// before accepting a job). The id's rule is [`JobId`]'s own.
    ///
    /// # Errors
    ///
    /// [`InvalidJob`] naming the first bad field.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        if self.kind.is_empty() || self.kind.len() > Self::MAX_KIND_LEN {
            return Err(InvalidJob::Kind {
                len: self.kind.len(),
            });
        }
        if self.max_attempts == 0 {
            return Err(InvalidJob::ZeroAttempts);
        }
        if self.max_attempts > Self::MAX_ATTEMPTS {
            return Err(InvalidJob::TooManyAttempts {
                got: self.max_attempts,
            });
        }
        if self.timeout.is_zero() {
            return Err(InvalidJob::ZeroTimeout);
        }
        if self.timeout > Self::MAX_TIMEOUT {
            return Err(InvalidJob::TimeoutTooLong {
                ms: self.timeout.as_millis(),
            });
        }
        if self.data.len() > Self::MAX_DATA_LEN {
            return Err(InvalidJob::DataTooLarge {
                len: self.data.len(),
            });
        }
        if self.tags.len() > Self::MAX_TAGS {
            return Err(InvalidJob::TooManyTags {
                count: self.tags.len(),
            });
        }
        let bad_tag = |t: &&String| t.is_empty() || t.len() > Self::MAX_TAG_LEN;
        if let Some(tag) = self.tags.iter().find(bad_tag) {
            return Err(InvalidJob::Tag { tag: tag.clone() });
        }
        Ok(())
    }

    /// A rough count of the heap bytes this job owns (for memory budgets).
    pub fn heap_bytes(&self) -> usize {
        self.id.as_str().len()
            + self.kind.capacity()
            + self.data.capacity()
            + self.tags.capacity() * std::mem::size_of::<String>()
            + self.tags.iter().map(String::capacity).sum::<usize>()
    }
}

/// The outcome of a job: exactly one of `result` and `error` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    /// The job's id.
    pub id: JobId,
    /// The handler's output on success.
    pub result: Option<String>,
    /// Why the job failed, otherwise.
    pub error: Option<JobFailure>,
    /// The node that produced this result (empty if none ran it).
    pub worker_node: String,
    /// The attempt that produced this result (0 if none was made).
    pub attempt: u32,
    /// Processing time on the worker.
    pub elapsed: Duration,
}

impl JobResult {
    /// A successful result.
    pub fn success(
        id: JobId,
        result: impl Into<String>,
        worker_node: impl Into<String>,
        attempt: u32,
        elapsed: Duration,
    ) -> Self {
        JobResult {
            id,
            result: Some(result.into()),
            error: None,
            worker_node: worker_node.into(),
            attempt,
            elapsed,
        }
    }

    /// A failed result.
    pub fn failure(
        id: JobId,
        error: JobFailure,
        worker_node: impl Into<String>,
        attempt: u32,
        elapsed: Duration,
    ) -> Self {
        JobResult {
            id,
            result: None,
            error: Some(error),
            worker_node: worker_node.into(),
            attempt,
            elapsed,
        }
    }

    /// Whether the job succeeded.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && self.result.is_some()
    }

    /// The output or the failure, as a `Result`.
    pub fn outcome(&self) -> Result<&str, &JobFailure> {
        match (&self.result, &self.error) {
            (_, Some(err)) => Err(err),
            (Some(out), None) => Ok(out),
            (None, None) => Ok(""),
        }
    }
}

/// The current Unix time in milliseconds (0 before 1970).
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_carry_one_keyed_hash_and_id_maps_find_them() {
        use std::hash::BuildHasher;
        let made = JobId::new("client-job-1").unwrap();
        let generated = JobId::generated("client-job", 1);
        let decoded: JobId = serde_json::from_str("\"client-job-1\"").unwrap();
        assert_eq!(made, generated);
        assert_eq!(made, decoded);
        // Equal ids hash alike, through any hasher.
        let std_keyed = std::hash::RandomState::new();
        assert_eq!(std_keyed.hash_one(&made), std_keyed.hash_one(&decoded));
        let pass = BuildIdHasher::default();
        assert_eq!(pass.hash_one(&made), made.hash);
        assert_eq!(pass.hash_one(&generated), made.hash);
        // The hash is keyed SipHash of the text, not the text itself.
        assert_eq!(made.hash, id_key().hash_one("client-job-1"));
        let mut map = IdMap::default();
        for n in 0..10_000u64 {
            map.insert(JobId::generated("n", n), n);
        }
        for n in 0..10_000u64 {
            let id = JobId::new(&format!("n-{n}")).unwrap();
            assert_eq!(map.get(&id), Some(&n));
        }
        assert!(!map.contains_key(&JobId::new("n-10000").unwrap()));
        // Ordering is by text, as before.
        assert!(JobId::new("a-2").unwrap() < JobId::new("b-1").unwrap());
    }

    #[test]
    fn job_id_validation() {
        assert!(JobId::new("node-a-1").is_ok());
        assert_eq!(JobId::new(""), Err(ParseJobIdError::Empty));
        assert!(matches!(
            JobId::new("a b"),
            Err(ParseJobIdError::BadChar { c: ' ' })
        ));
        assert!(matches!(
            JobId::new(&"x".repeat(129)),
            Err(ParseJobIdError::TooLong { len: 129 })
        ));
        // Both paths: printable ASCII at once, the rest by character.
        for bad in ["a\tb", "a\u{7f}", "\u{0}", "é\u{a0}", "x\u{2028}", "日本\n"] {
            assert!(
                matches!(JobId::new(bad), Err(ParseJobIdError::BadChar { .. })),
                "{bad:?}"
            );
        }
        for good in [
            "~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
            "é-1",
            "日本-2",
            "\"quoted\"",
        ] {
            assert_eq!(JobId::new(good).unwrap().as_str(), good);
        }
        assert!(JobId::default().is_unassigned());
        assert_eq!(JobId::generated("n1", 7).as_str(), "n1-7");
    }

    #[test]
    fn job_validation() {
        assert!(Job::new("k", "").validate().is_ok());
        let limits = Job::new("k", "x".repeat(Job::MAX_DATA_LEN))
            .with_timeout(Job::MAX_TIMEOUT)
            .with_max_attempts(Job::MAX_ATTEMPTS);
        assert!(limits.validate().is_ok());
        let over = |job: Job| job.validate().unwrap_err().to_string();
        let long = Job::new("k", "").with_timeout(Job::MAX_TIMEOUT + Duration::from_millis(1));
        assert!(over(long).contains("at most 86400 s"));
        let many = Job::new("k", "").with_max_attempts(101);
        assert!(over(many).contains("max_attempts must be at most 100"));
        let big = Job::new("k", "x".repeat(Job::MAX_DATA_LEN + 1));
        assert!(over(big).contains("at most 8388608 bytes"));
        let mut tagged = Job::new("k", "");
        tagged.tags = vec!["t".to_owned(); Job::MAX_TAGS + 1];
        assert!(over(tagged).contains("at most 32 tags"));
        assert_eq!(
            Job::new("", "").validate(),
            Err(InvalidJob::Kind { len: 0 })
        );
        assert_eq!(
            Job::new("k", "").with_max_attempts(0).validate(),
            Err(InvalidJob::ZeroAttempts)
        );
        assert_eq!(
            Job::new("k", "").with_timeout(Duration::ZERO).validate(),
            Err(InvalidJob::ZeroTimeout)
        );
    }

    proptest! {
        #[test]
        fn job_id_display_from_str_round_trip(s in "[!-~]{1,128}") {
            let id: JobId = s.parse().unwrap();
            prop_assert_eq!(id.to_string(), s.clone());
            prop_assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        }
    }
}
