//! What the client commands print: the jobs file reader, the status table
//! and the progress bar.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::http::{ClusterView, JobSubmission, StatsView};

/// A jobs file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsFileError {
    /// The file could not be read.
    #[error("cannot read jobs file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a job object.
    #[error("{}:{line}: invalid job: {source}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The file has no jobs.
    #[error("jobs file {} has no jobs", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a JSON-lines jobs file: one [`JobSubmission`] object per line,
/// blank lines skipped.
///
/// # Errors
///
/// [`JobsFileError`] naming the file and line.
pub fn read_jobs_file(path: &Path) -> Result<Vec<JobSubmission>, JobsFileError> {
    let file = std::fs::File::open(path).map_err(|source| JobsFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_jobs(std::io::BufReader::new(file), path)
}

fn read_jobs(reader: impl BufRead, path: &Path) -> Result<Vec<JobSubmission>, JobsFileError> {
    let mut jobs = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| JobsFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let job = serde_json::from_str(&line).map_err(|source| JobsFileError::Line {
            path: path.to_owned(),
            line: index + 1,
            source,
        })?;
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(JobsFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(jobs)
}

/// `items` joined with commas, or `-` when there are none.
fn list_or_dash<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let joined = items.collect::<Vec<_>>().join(",");
    if joined.is_empty() {
        "-".to_owned()
    } else {
        joined
    }
}

/// The `status` table: one row per member with its gossip and the
/// coordinator's figures for it.
pub fn render_status(cluster: &ClusterView, stats: &StatsView) -> String {
    let header = [
        "NODE",
        "STATUS",
        "TAGS",
        "KINDS",
        "CPU%",
        "IN-FLIGHT",
        "QUEUE",
        "DONE",
        "FAILED",
        "P50 ms",
        "P99 ms",
    ];
    let mut rows: Vec<[String; 11]> = Vec::new();
    for member in &cluster.members {
        let node_stats = stats.nodes.iter().find(|n| n.node == member.node);
        // User tags cannot contain ':'; `kind:<name>` and the like are the
        // job queue's own advertisements, shown apart.
        let tags = list_or_dash(
            member
                .tags
                .iter()
                .map(String::as_str)
                .filter(|t| !t.contains(':')),
        );
        let kinds = list_or_dash(
            member
                .tags
                .iter()
                .filter_map(|t| t.strip_prefix(job_queue::KIND_TAG_PREFIX)),
        );
        let figure =
            |f: fn(&crate::http::NodeStatsView) -> String| node_stats.map_or("-".to_owned(), f);
        // A Down or Left member's last gossiped load is no longer true.
        let gone = matches!(member.status.as_str(), "down" | "left");
        let load = |text: String| if gone { "-".to_owned() } else { text };
        rows.push([
            member.node.clone(),
            member.status.clone(),
            tags,
            kinds,
            load(format!("{:.0}", member.load.cpu_percent)),
            load(member.load.in_flight.to_string()),
            load(member.load.queue_depth.to_string()),
            figure(|n| n.completed.to_string()),
            figure(|n| n.failed.to_string()),
            figure(|n| format!("{:.2}", n.timing.p50_ms)),
            figure(|n| format!("{:.2}", n.timing.p99_ms)),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    let _ = writeln!(
        out,
        "\n{} members, {} links from {}; jobs: {} submitted, {} succeeded, {} failed, \
         {} retries, {} in progress, {} dead letters",
        cluster.members.len(),
        cluster.links,
        cluster.node,
        stats.submitted,
        stats.succeeded,
        stats.failed,
        stats.retries,
        stats.in_progress,
        stats.dead_letters
    );
    out
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress_bar(total: u64, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{LoadView, MemberView, NodeStatsView, TimingView};
    use crate::test_util::TempDir;

    #[test]
    fn jobs_file_lines() {
        let dir = TempDir::new();
        let path = dir.write(
            "jobs.jsonl",
            "{\"kind\":\"echo\",\"data\":\"a\"}\n\n{\"kind\":\"sha256\",\"data\":{\"input\":\"x\",\"rounds\":2},\"tags\":[\"gpu\"]}\n",
        );
        let jobs = read_jobs_file(&path).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].data, r#"{"input":"x","rounds":2}"#);
        assert_eq!(jobs[1].tags, ["gpu"]);
        let bad = dir.write("bad.jsonl", "{\"kind\":\"echo\"}\n{\"kind\":\n");
        let err = read_jobs_file(&bad).unwrap_err();
        assert!(matches!(err, JobsFileError::Line { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad.jsonl:2"), "{err}");
        let empty = dir.write("empty.jsonl", "\n  \n");
        assert!(matches!(
            read_jobs_file(&empty),
            Err(JobsFileError::Empty { .. })
        ));
        assert!(matches!(
            read_jobs_file(&dir.path().join("none")),
            Err(JobsFileError::Read { .. })
        ));
    }

    #[test]
    fn status_table() {
        let member = |node: &str, tags: Vec<String>| MemberView {
            node: node.into(),
            url: "ws://127.0.0.1:1".into(),
            status: "up".into(),
            tags,
            load: LoadView {
                cpu_percent: 42.4,
                in_flight: 3,
                queue_depth: 7,
            },
        };
        let cluster = ClusterView {
            node: "node-a".into(),
            links: 1,
            members: vec![
                member(
                    "node-a",
                    vec![
                        "gpu".into(),
                        "kind:echo".into(),
                        "ssd".into(),
                        "kind:sleep".into(),
                    ],
                ),
                member("node-bb", vec![]),
                MemberView {
                    status: "down".into(),
                    ..member("node-c", vec!["kind:echo".into()])
                },
            ],
        };
        let stats = StatsView {
            submitted: 10,
            nodes: vec![NodeStatsView {
                node: "node-bb".into(),
                completed: 9,
                failed: 1,
                in_flight: 0,
                latency_ms: 0.3,
                timing: TimingView {
                    p50_ms: 1.25,
                    p99_ms: 8.0,
                    ..TimingView::default()
                },
                kinds: vec![],
            }],
            ..StatsView::default()
        };
        let table = render_status(&cluster, &stats);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("NODE     STATUS  TAGS     KINDS"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("node-a   up      gpu,ssd  echo,sleep  42"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("node-bb  up      -        -           42"),
            "{table}"
        );
        assert!(lines[1].ends_with("-     -       -       -"), "{table}");
        // A Down member's stale load is not shown.
        assert!(
            lines[3].starts_with("node-c   down    -        echo        -     -          -      -"),
            "{table}"
        );
        assert!(lines[2].contains("9     1       1.25    8.00"), "{table}");
        assert!(
            table.contains("3 members, 1 links from node-a; jobs: 10 submitted"),
            "{table}"
        );
    }
}
