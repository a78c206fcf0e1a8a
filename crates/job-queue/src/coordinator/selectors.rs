//! Exact eligibility for kinds whose nodes accept only some jobs: a
//! [`KindSelectors`] table says, per kind, which value of a job a node must
//! accept (for `exec`: the program), and a node says which values it
//! accepts with tags `accept:<kind>:<value>` ([`accept_tag`]).
//!
//! A job of a kind with a selector goes only to a node that carries the
//! tag for the job's value. A job whose value cannot be read (its selector
//! returns `None`, e.g. undecodable data) needs no such tag: any node
//! serving the kind takes it and answers with its own error.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::job::Job;

/// The prefix of the tags with which a node says which jobs of a kind it
/// accepts: `accept:<kind>:<value>`.
pub const ACCEPT_TAG_PREFIX: &str = "accept:";

/// The tag saying a node accepts jobs of `kind` whose selected value is
/// `value` (`accept:<kind>:<value>`).
pub fn accept_tag(kind: &str, value: &str) -> String {
    format!("{ACCEPT_TAG_PREFIX}{kind}:{value}")
}

/// Reads the value a node must accept from a job of one kind.
pub type Selector = Arc<dyn Fn(&Job) -> Option<String> + Send + Sync>;

/// The selectors of a coordinator, by kind (see the module guide and
/// `docs/jobs.md`, "Eligibility").
///
/// ```
/// use job_queue::{accept_tag, Job, KindSelectors};
///
/// let mut selectors = KindSelectors::default();
/// selectors.insert("render", |job: &Job| Some(job.data.clone()));
/// let job = Job::new("render", "4k");
/// assert_eq!(selectors.required_tag(&job), Some(accept_tag("render", "4k")));
/// assert_eq!(selectors.required_tag(&Job::new("echo", "4k")), None);
/// ```
#[derive(Clone, Default)]
pub struct KindSelectors {
    by_kind: FxHashMap<String, Selector>,
}

impl fmt::Debug for KindSelectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<&str> = self.by_kind.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        f.debug_struct("KindSelectors")
            .field("kinds", &kinds)
            .finish()
    }
}

impl KindSelectors {
    /// Sets the selector of `kind` (replacing an earlier one).
    pub fn insert(
        &mut self,
        kind: impl Into<String>,
        selector: impl Fn(&Job) -> Option<String> + Send + Sync + 'static,
    ) {
        self.by_kind.insert(kind.into(), Arc::new(selector));
    }

    /// Whether no kind has a selector.
    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// Whether `kind` has a selector (its jobs' eligibility depends on
    /// their data, not only on kind and tags).
    pub fn has(&self, kind: &str) -> bool {
        !self.by_kind.is_empty() && self.by_kind.contains_key(kind)
    }

    /// The `accept:<kind>:<value>` tag a node must carry to run `job`, if
    /// its kind has a selector and the value can be read.
    pub fn required_tag(&self, job: &Job) -> Option<String> {
        if self.by_kind.is_empty() {
            return None;
        }
        let selector = self.by_kind.get(&job.kind)?;
        selector(job).map(|value| accept_tag(&job.kind, &value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kinds_with_a_selector_need_a_tag() {
        let mut selectors = KindSelectors::default();
        assert!(selectors.is_empty());
        selectors.insert("exec", |job: &Job| {
            job.data.strip_prefix("run ").map(str::to_owned)
        });
        assert_eq!(
            selectors
                .required_tag(&Job::new("exec", "run ls"))
                .as_deref(),
            Some("accept:exec:ls")
        );
        assert_eq!(selectors.required_tag(&Job::new("exec", "garbage")), None);
        assert_eq!(selectors.required_tag(&Job::new("echo", "run ls")), None);
        assert_eq!(
            format!("{selectors:?}"),
            "KindSelectors { kinds: [\"exec\"] }"
        );
    }
}
