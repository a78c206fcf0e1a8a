//! What `job-node mapreduce` prints: the result lines and the summary.

use std::fmt::Write as _;
use std::time::Duration;

use job_queue::mapreduce::{DriverStats, NodeTasks, PhaseTimings, Posting};

/// The `k` most frequent words, most frequent first, ties by word.
fn top_words(counts: &[(String, u64)], k: usize) -> Vec<(String, u64)> {
    let mut sorted: Vec<&(String, u64)> = counts.iter().collect();
    sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.into_iter().take(k).cloned().collect()
}

/// `word count` lines: every word sorted by word, or with `top` the K most
/// frequent (most frequent first, ties by word).
pub(crate) fn render_word_counts(entries: &[(String, u64)], top: Option<usize>) -> String {
    let mut out = String::with_capacity(entries.len() * 12);
    let top_entries;
    let lines = match top {
        Some(k) => {
            top_entries = top_words(entries, k);
            &top_entries[..]
        }
        None => entries,
    };
    for (word, count) in lines {
        let _ = writeln!(out, "{word} {count}");
    }
    out
}

/// `word file:pos,file:pos,...` lines sorted by word; `file` is the input's
/// name as given on the command line, `pos` the 0-based index of the word
/// among the words of that file.
pub(crate) fn render_index(entries: &[(String, Vec<Posting>)], inputs: &[String]) -> String {
    let mut out = String::new();
    for (word, postings) in entries {
        out.push_str(word);
        let mut sep = ' ';
        for posting in postings {
            let file = inputs
                .get(posting.file as usize)
                .map_or("?", String::as_str);
            let _ = write!(out, "{sep}{file}:{}", posting.position);
            sep = ',';
        }
        out.push('\n');
    }
    out
}

/// Milliseconds with microsecond precision (whole microseconds divided
/// once, so JSON shows no float noise).
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// The end-of-run summary: time per phase, throughput, and what each node
/// ran.
pub(crate) fn render_summary(
    bytes: u64,
    elapsed: Duration,
    stats: &DriverStats,
    timings: &PhaseTimings,
    nodes: &[NodeTasks],
) -> String {
    let mut out = String::new();
    let mb = bytes as f64 / 1e6;
    let _ = writeln!(
        out,
        "{mb:.2} MB in {:.0} ms ({:.1} MB/s): {} map tasks, {} reduce tasks, {} words, {} distinct",
        ms(elapsed),
        mb / elapsed.as_secs_f64().max(1e-9),
        stats.map_tasks,
        stats.reduce_tasks,
        stats.records,
        stats.output_keys
    );
    let _ = writeln!(
        out,
        "phases: plan {:.0} ms, map {:.0} ms, reduce {:.0} ms, merge {:.0} ms; \
         shuffle {} pairs, {:.2} MB; {} tasks re-run",
        ms(timings.plan),
        ms(timings.map),
        ms(timings.reduce),
        ms(timings.merge),
        stats.shuffle_pairs,
        stats.shuffle_bytes as f64 / 1e6,
        stats.recoveries
    );
    let width = nodes.iter().map(|n| n.node.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:>7}  {:>6}  {:>9}",
        "node", "maps", "reduces", "failed", "busy ms"
    );
    for node in nodes {
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>7}  {:>6}  {:>9.0}",
            node.node,
            node.maps,
            node.reduces,
            node.failed,
            ms(node.busy)
        );
    }
    out
}
