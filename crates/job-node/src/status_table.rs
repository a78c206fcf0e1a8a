//! The table `job-node status` (and the demo) prints: one row per member.

use std::fmt::Write as _;

use crate::http::{ClusterView, NodeStatsView, StatsView};

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
pub(crate) fn render_status(cluster: &ClusterView, stats: &StatsView) -> String {
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
        let figure = |f: fn(&NodeStatsView) -> String| node_stats.map_or("-".to_owned(), f);
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
         {} retries, {} in progress, {} dead letters, {} speculative backups ({} won)",
        cluster.members.len(),
        cluster.links,
        cluster.node,
        stats.submitted,
        stats.succeeded,
        stats.failed,
        stats.retries,
        stats.in_progress,
        stats.dead_letters,
        stats.speculative_started,
        stats.speculative_won
    );
    for limit in &stats.limits {
        let mut bounds = Vec::new();
        if let Some(n) = limit.running {
            bounds.push(format!("at most {n} running"));
        }
        if let Some(r) = limit.rate {
            bounds.push(format!("{r} starts/s"));
        }
        let _ = writeln!(
            out,
            "limit {}: {} cluster-wide, leader {}; here {} running, {} waiting for the limit",
            limit.kind,
            bounds.join(", "),
            limit.leader.as_deref().unwrap_or("-"),
            limit.running_here,
            limit.waiting_here
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{LoadView, MemberView};
    use job_queue::TimingSnapshot;

    #[test]
    fn status_shows_the_limits() {
        let cluster = ClusterView {
            node: "node-a".into(),
            links: 0,
            members: vec![],
        };
        let stats = StatsView {
            waiting_for_limit: 4,
            limits: vec![job_queue::LimitSnapshot {
                kind: "sleep".into(),
                running: Some(2),
                rate: Some(50.0),
                leader: Some("node-a".into()),
                running_here: 1,
                allowed_here: 1,
                waiting_here: 4,
                granted_total: Some(2),
            }],
            ..StatsView::default()
        };
        let table = render_status(&cluster, &stats);
        assert!(
            table.ends_with(
                "limit sleep: at most 2 running, 50 starts/s cluster-wide, leader node-a; \
                 here 1 running, 4 waiting for the limit\n"
            ),
            "{table}"
        );
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
                timing: TimingSnapshot {
                    p50_ms: 1.25,
                    p99_ms: 8.0,
                    ..TimingSnapshot::default()
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
