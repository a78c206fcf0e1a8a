//! The ledger line every scenario prints, and the checks every scenario
//! makes on it.

use std::fmt::Write as _;
use std::time::Duration;

use super::workload::Tally;

/// Below the workload's 30 s job timeout with a wide margin: a slower job
/// waited for its timeout instead of being placed again.
const NO_TIMEOUT_WAITED: Duration = Duration::from_secs(20);

/// One scenario's figures.
#[derive(Debug, Default)]
pub struct Ledger {
    pub scenario: String,
    pub tally: Tally,
    /// Attempts the coordinator retried (after a node went Down, a
    /// timeout, ...).
    pub retries: u64,
    /// Late results the coordinator dropped as duplicates.
    pub late_dropped: u64,
    /// From the fault to every other node reporting the victim Down.
    pub detection: Option<Duration>,
    /// From the heal (or resume) to every node reporting every node Up.
    pub converge: Option<Duration>,
    /// (observer, member) pairs reported Down though alive and reachable.
    pub false_downs: Vec<(String, String)>,
    /// Scenario-specific remark.
    pub note: String,
    /// Wall time of the scenario.
    pub took: Duration,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

impl Ledger {
    /// The line, e.g. `faults kill-9: submitted 900, results 900, ...`.
    pub fn line(&self) -> String {
        let t = &self.tally;
        let mut line = format!(
            "faults {}: submitted {}, results {}, duplicates to caller {}, lost {}, \
             failed {}, refused {}, retries {}, late results dropped {}, detection {}, \
             converge after heal {}, false Down {}, slowest job {:.2} s, took {:.1} s",
            self.scenario,
            t.submitted,
            t.results,
            t.duplicates,
            t.lost,
            t.failed,
            t.refused,
            self.retries,
            self.late_dropped,
            secs(self.detection),
            secs(self.converge),
            self.false_downs.len(),
            t.max_latency.as_secs_f64(),
            self.took.as_secs_f64(),
        );
        if !self.note.is_empty() {
            let _ = write!(line, " ({})", self.note);
        }
        line
    }

    /// Prints the line and checks what every scenario must hold: jobs were
    /// submitted throughout, none was lost, none reached the caller twice,
    /// none failed or was refused, none waited for its (30 s) timeout, and
    /// nobody was falsely reported Down.
    pub fn print_and_check(&self) {
        super::say(&self.line());
        let t = &self.tally;
        assert!(t.submitted >= 100, "too few jobs: {}", self.line());
        assert_eq!(t.lost, 0, "lost jobs: {}", self.line());
        assert_eq!(t.duplicates, 0, "duplicates to the caller: {}", self.line());
        assert_eq!(t.failed, 0, "failed jobs: {}", self.line());
        assert_eq!(t.refused, 0, "refused jobs: {}", self.line());
        // Nothing in transit waits for a timeout: a job on a node that
        // went Down, or whose dispatch or result was in a link that broke,
        // is placed again at once (the fault scenarios last 10 s at most).
        assert!(
            t.max_latency < NO_TIMEOUT_WAITED,
            "a job waited about its timeout: {}",
            self.line()
        );
        assert!(
            self.false_downs.is_empty(),
            "false Down verdicts {:?}: {}",
            self.false_downs,
            self.line()
        );
    }
}
