//! Per-node figures of a run: which node ran which tasks, for how long.

use std::time::Duration;

use crate::job::JobResult;

/// What one node did for a run: final task results by kind, and the time
/// their attempts ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeTasks {
    /// The node.
    pub node: String,
    /// Map tasks it finished (including runs whose output was later lost).
    pub maps: u32,
    /// Reduce tasks it finished.
    pub reduces: u32,
    /// Tasks whose final attempt on it failed.
    pub failed: u32,
    /// The summed run time of those final attempts.
    pub busy: Duration,
}

/// The kind of a task job, from the id the driver gave it
/// (`<job>.m<split>.g<n>` or `<job>.r<partition>.g<n>`).
fn task_kind(id: &str) -> Option<char> {
    let mut parts = id.rsplit('.');
    let generation = parts.next()?;
    let task = parts.next()?;
    if !generation.starts_with('g') {
        return None;
    }
    let kind = task.chars().next()?;
    let number = &task[1..];
    let numeric = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    (numeric && matches!(kind, 'm' | 'r')).then_some(kind)
}

/// Counts `result` for its node in `nodes` (kept sorted by node).
pub(crate) fn record_result(nodes: &mut Vec<NodeTasks>, result: &JobResult) {
    let node = if result.worker_node.is_empty() {
        "(none)"
    } else {
        result.worker_node.as_str()
    };
    let at = match nodes.binary_search_by(|n| n.node.as_str().cmp(node)) {
        Ok(at) => at,
        Err(at) => {
            nodes.insert(
                at,
                NodeTasks {
                    node: node.to_owned(),
                    ..NodeTasks::default()
                },
            );
            at
        }
    };
    let entry = &mut nodes[at];
    entry.busy += result.elapsed;
    if !result.is_success() {
        entry.failed += 1;
        return;
    }
    match task_kind(result.id.as_str()) {
        Some('m') => entry.maps += 1,
        Some(_) => entry.reduces += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FailureCause, JobFailure};
    use crate::job::JobId;

    #[test]
    fn results_are_counted_per_node_and_kind() {
        let ok = |id: &str, node: &str| {
            JobResult::success(
                JobId::new(id).unwrap(),
                "{}",
                node,
                1,
                Duration::from_millis(5),
            )
        };
        let mut nodes = Vec::new();
        record_result(&mut nodes, &ok("j.m0.g1", "b"));
        record_result(&mut nodes, &ok("j.r3.g9", "a"));
        record_result(&mut nodes, &ok("j.m1.g2", "b"));
        record_result(&mut nodes, &ok("weird", "a"));
        let failure = JobFailure::new(FailureCause::Handler, "x");
        let failed = JobResult::failure(
            JobId::new("j.r1.g4").unwrap(),
            failure,
            "a",
            3,
            Duration::ZERO,
        );
        record_result(&mut nodes, &failed);
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (
                nodes[0].node.as_str(),
                nodes[0].maps,
                nodes[0].reduces,
                nodes[0].failed
            ),
            ("a", 0, 1, 1)
        );
        assert_eq!(
            (nodes[1].maps, nodes[1].busy),
            (2, Duration::from_millis(10))
        );
        assert_eq!(task_kind("x.m.g1"), None);
        assert_eq!(task_kind("mr-1.m12.g3"), Some('m'));
    }
}
