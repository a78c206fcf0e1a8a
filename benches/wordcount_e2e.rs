//! End-to-end word count as users run it: `job-node mapreduce wordcount
//! FILE --output OUT`, timed from process spawn to exit (so process start,
//! cluster start-up, the run, writing the result and shutdown are all
//! included), against a single-threaded word count of the same file in this
//! process (`test_kit::reference_word_count`: read the file, count, sort)
//! in the same run.
//!
//! The corpus is generated with the test-kit generator (seed 42, 20,000
//! words of vocabulary, Zipf 1.0) and written to one file in a temporary
//! directory. Every command's output is checked against the reference
//! (outside the timing). Rounds interleave the baseline and every variant,
//! so they share the machine's load; the figures are medians, with the CPU
//! time (user + system) of the baseline and of each command with its
//! children (`/proc/self/stat`), which moves less with the load than wall
//! time does.
//!
//! Run (the bench drives the release binary, build it first):
//!
//! ```text
//! cargo build --release -p job-node
//! cargo bench -p jobmesh --bench wordcount_e2e
//! ```
//!
//! Environment: `WC_E2E_MB` (corpus size in MB of 10^6 bytes, default 50),
//! `WC_E2E_RUNS` (rounds, default 5), `JOB_NODE_BIN` (the binary, default
//! `target/release/job-node` next to this bench), `WC_E2E_VARIANTS` (extra
//! argument sets separated by `;`, default `;--nodes 3`: the default
//! command, then a local cluster of 3 node processes).

mod support;

use support::{env_usize, median_duration, ms};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use job_queue::mapreduce::Input;
use test_kit::{generate_corpus, reference_word_count, CorpusConfig};

/// How long one command may take before it is killed.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// CPU time (user + system) of this process and of its reaped children,
/// from `/proc/self/stat` (fields 14-17, in clock ticks of 10 ms).
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let field = |i: usize| -> u64 {
        rest.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // utime is field 14 of the line, i.e. index 11 after the name.
    let ticks = |t: u64| Duration::from_millis(t * 10);
    (ticks(field(11) + field(12)), ticks(field(13) + field(14)))
}

/// The `job-node` binary: `$JOB_NODE_BIN`, else the release binary next to
/// this bench (`target/release/deps/<bench>` -> `target/release/job-node`).
fn job_node_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("JOB_NODE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("bench binary in target/<profile>/deps");
    release.join("job-node")
}

/// Runs one command to completion; returns its wall time (spawn to exit),
/// its CPU time and what it wrote to stderr (its summary).
fn run_command(bin: &Path, args: &[String]) -> (Duration, Duration, String) {
    let (_, children_before) = cpu_times();
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
    let stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    // A bench, not a test: poll the exit so a hung command is killed.
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} took over {COMMAND_LIMIT:?}", bin.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = started.elapsed();
    let log = reader.join().unwrap_or_default();
    assert!(status.success(), "{args:?} failed ({status}):\n{log}");
    let (_, children_after) = cpu_times();
    (elapsed, children_after.saturating_sub(children_before), log)
}

/// Parses `word count` lines.
fn parse_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|line| {
            let (word, count) = line.rsplit_once(' ').expect("`word count` line");
            (word.to_owned(), count.parse().expect("count"))
        })
        .collect()
}

fn main() {
    let mb = env_usize("WC_E2E_MB", 50);
    let runs = env_usize("WC_E2E_RUNS", 5).max(1);
    let variants: Vec<Vec<String>> = std::env::var("WC_E2E_VARIANTS")
        .unwrap_or_else(|_| ";--nodes 3".to_owned())
        .split(';')
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .collect();
    let bin = job_node_binary();
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build --release -p job-node` first (or set JOB_NODE_BIN)",
        bin.display()
    );

    let dir = std::env::temp_dir().join(format!("jobmesh-wc-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let corpus = dir.join("corpus.txt");
    let config = CorpusConfig {
        seed: 42,
        bytes: mb * 1_000_000,
        ..CorpusConfig::default()
    };
    std::fs::write(&corpus, generate_corpus(&config)).expect("write corpus");
    let input = || [Input::open(&corpus).expect("open corpus")];
    let reference = reference_word_count(&input());
    let out = dir.join("out.txt");
    let command = |variant: &[String]| -> Vec<String> {
        let mut args: Vec<String> = ["mapreduce", "wordcount"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(corpus.display().to_string());
        args.push("--output".to_owned());
        args.push(out.display().to_string());
        args.extend(variant.iter().cloned());
        args
    };

    println!(
        "word count of {mb} MB ({} distinct words), {runs} rounds, binary {}",
        reference.len(),
        bin.display()
    );
    println!("load average before: {}", load_average());
    let mut baseline = Vec::with_capacity(runs);
    let mut timings: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); variants.len()];
    let mut summaries = vec![String::new(); variants.len()];
    let mut base_cpu = Vec::with_capacity(runs);
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); variants.len()];
    for _ in 0..runs {
        let (own_before, _) = cpu_times();
        let t = Instant::now();
        let counted = reference_word_count(&input());
        baseline.push(t.elapsed());
        base_cpu.push(cpu_times().0.saturating_sub(own_before));
        assert_eq!(counted.len(), reference.len());
        for (i, variant) in variants.iter().enumerate() {
            let (time, cpu_time, log) = run_command(&bin, &command(variant));
            timings[i].push(time);
            cpu[i].push(cpu_time);
            let summary = &mut summaries[i];
            *summary = log;
            let text = std::fs::read_to_string(&out).expect("read output");
            assert!(
                parse_counts(&text) == reference,
                "{variant:?}: output differs from the reference word count"
            );
        }
    }
    println!("load average after: {}", load_average());
    let base = median_duration(baseline.clone());
    let all = |xs: &[Duration]| {
        xs.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{:<52} {:>9} {:>6} {:>10}  wall of each run (ms)",
        "what", "median ms", "MB/s", "CPU ms"
    );
    println!(
        "{:<52} {:>9.0} {:>6.0} {:>10.0}  {}",
        "single-threaded count, in-process (baseline)",
        ms(base),
        mb as f64 / base.as_secs_f64(),
        ms(median_duration(base_cpu)),
        all(&baseline)
    );
    for ((variant, times), cpu) in variants.iter().zip(&timings).zip(cpu) {
        let m = median_duration(times.clone());
        let name = format!("job-node mapreduce wordcount {}", variant.join(" "));
        println!(
            "{:<52} {:>9.0} {:>6.0} {:>10.0}  {}  ({:.2}x the baseline's time)",
            format!("{} (end to end)", name.trim_end()),
            ms(m),
            mb as f64 / m.as_secs_f64(),
            ms(median_duration(cpu)),
            all(times),
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!("(CPU ms: user + system of the process and its children, median)");
    for (variant, summary) in variants.iter().zip(&summaries) {
        println!("\nlast summary of `{}`:\n{summary}", variant.join(" "));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
