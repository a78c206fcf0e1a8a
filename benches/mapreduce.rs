//! Map-shuffle-reduce word count of a generated corpus (100 MB by default)
//! on a 3-node cluster, against a single-threaded word count of the same
//! data in the same run.
//!
//! The cluster is three routers in this process, linked over loopback
//! WebSockets, each with a worker pool serving `mr.map` / `mr.reduce` and a
//! `partitions` actor; `node-0` also runs the coordinator and the driver,
//! so the inputs are staged there and the other nodes fetch their splits
//! through the router, as they would between machines.
//!
//! The corpus is written to files in a temporary directory and dropped from
//! memory; the cluster reads the files on demand ([`Input::open`]), as the
//! CLI does. Memory across all nodes is the process's peak RSS (`VmHWM`,
//! reset through `/proc/self/clear_refs` before each run) minus its RSS
//! before the cluster started. The single-threaded baseline runs after the
//! cluster, on the files read into memory.
//!
//! Run: `cargo bench -p jobmesh --bench mapreduce`. Environment:
//! `MR_BENCH_MB` (corpus size, default 100), `MR_BENCH_RUNS` (default 3),
//! `MR_BENCH_SPLITS` (default 24), `MR_BENCH_REDUCERS` (default 4),
//! `MR_BENCH_WORKERS` (worker loops per node, default 1),
//! `MR_BENCH_CHUNK_KB` (fetch chunk, default 4096).

mod support;

use support::{env_usize, median_duration, ms};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::mapreduce::{
    plan_splits, ClusterMapReduce, Input, MapInput, MapReduce, MapReduceNode, MapReduceNodeConfig,
    MapReduceRegistry, PhaseTimings, RunOptions, WordCount,
};
use job_queue::{Coordinator, CoordinatorOptions, HandlerRegistry, WorkerPool, WorkerPoolConfig};
use test_kit::{generate_inputs, reference_word_count, CorpusConfig};

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// A `kB` field of `/proc/self/status` in MB (0 where unavailable).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb * 1024.0 / 1e6)
}

/// The word-count map function alone, on one thread: the per-worker
/// ceiling of the map phase.
fn map_alone(inputs: &[Input], bytes: usize, splits: usize) {
    let t = Instant::now();
    let mut pairs = 0;
    for split in &plan_splits(inputs, splits).expect("splits") {
        let input = &inputs[split.file as usize];
        let text = input.range(split.start, split.end).expect("split");
        pairs += WordCount.map(&MapInput { split, text: &text }).pairs.len();
    }
    let time = t.elapsed();
    std::hint::black_box(pairs);
    println!(
        "  map function alone, 1 thread: {:>8.1} ms  {:>7.1} MB/s",
        ms(time),
        mb_per_s(bytes, time)
    );
}

struct BenchNode {
    router: Router,
    pool: WorkerPool,
    mapreduce: MapReduceNode,
}

/// Resets the peak RSS (`VmHWM`) to the current RSS (Linux >= 4.0);
/// returns whether it could.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The corpus files, removed when dropped.
struct CorpusDir(PathBuf);

impl Drop for CorpusDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generates the corpus, writes it to files and drops it from memory;
/// returns the files opened for reading on demand, and their total size.
fn write_corpus(mb: usize) -> (CorpusDir, Vec<Input>, usize) {
    let config = CorpusConfig {
        seed: 2026,
        bytes: mb * 1_000_000,
        vocabulary: 50_000,
        exponent: 1.0,
    };
    let dir = CorpusDir(std::env::temp_dir().join(format!("mr-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("corpus directory");
    let mut files = Vec::new();
    for input in generate_inputs(&config, 4) {
        let path = dir.0.join(&input.name);
        std::fs::write(&path, input.data().expect("generated in memory")).expect("corpus file");
        files.push(Input::open(&path).expect("corpus file"));
    }
    let bytes = files.iter().map(|i| i.len() as usize).sum();
    (dir, files, bytes)
}

async fn start_node(name: &str, seed: Option<String>, workers: usize) -> BenchNode {
    let mut config = RouterConfig::new(name, "mapreduce-bench").timing(
        Duration::from_millis(100),
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    config.seeds = seed.into_iter().collect();
    let router = Router::start(config).await.expect("router");
    let mut node_config = MapReduceNodeConfig::default();
    node_config.fetch.chunk = (env_usize("MR_BENCH_CHUNK_KB", 4096) * 1024) as u32;
    let mapreduce = MapReduceNode::start(&router, MapReduceRegistry::with_builtins(), node_config)
        .expect("partition actor");
    let mut handlers = HandlerRegistry::new();
    mapreduce.register_handlers(&mut handlers);
    let pool_config = WorkerPoolConfig {
        workers,
        ..WorkerPoolConfig::default()
    };
    let pool = WorkerPool::start(&router, handlers, pool_config)
        .await
        .expect("pool");
    BenchNode {
        router,
        pool,
        mapreduce,
    }
}

async fn cluster(workers: usize) -> (Vec<BenchNode>, Coordinator, ClusterMapReduce) {
    let mut nodes = vec![start_node("node-0", None, workers).await];
    for name in ["node-1", "node-2"] {
        let seed = nodes[0].router.url();
        nodes.push(start_node(name, Some(seed), workers).await);
    }
    let mut events = nodes[0].router.subscribe();
    let ready = |r: &Router| {
        r.get_all_peers()
            .iter()
            .filter(|m| m.tags.iter().any(|t| t == "kind:mr.map"))
            .count()
    };
    let formed = tokio::time::timeout(Duration::from_secs(30), async {
        while ready(&nodes[0].router) < 3 {
            let _ = events.recv().await;
        }
    });
    formed.await.expect("the cluster did not form");
    let coordinator = Coordinator::start(&nodes[0].router, CoordinatorOptions::default())
        .await
        .expect("coordinator");
    let driver = ClusterMapReduce::new(nodes[0].mapreduce.clone(), coordinator.clone());
    (nodes, coordinator, driver)
}

/// Peak memory of the cluster runs, in MB above the RSS before the
/// cluster started.
struct Memory {
    before: f64,
    formed: f64,
    peaks: Vec<f64>,
    reset: bool,
}

impl Memory {
    fn print(&self, bytes: usize) {
        let input = bytes as f64 / 1e6;
        let mut peaks = self.peaks.clone();
        peaks.sort_by(f64::total_cmp);
        let (median, max) = (peaks[peaks.len() / 2], peaks[peaks.len() - 1]);
        let scope = if self.reset {
            "per run"
        } else {
            "whole process: peak reset unavailable, the corpus generation included"
        };
        println!(
            "  memory (all 3 nodes; peak RSS minus the {:.0} MB before the cluster started; {scope}):",
            self.before
        );
        println!(
            "    input {input:.1} MB; peak {median:.0} MB median, {max:.0} MB max = {:.2}x / {:.2}x the input \
             (runs: {}); the idle cluster alone: {:.0} MB",
            median / input,
            max / input,
            peaks
                .iter()
                .map(|p| format!("{p:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.formed - self.before
        );
    }
}

/// Runs the word count `runs` times on a 3-node cluster; returns the last
/// result and the memory figures.
fn run_cluster(
    inputs: &[Input],
    bytes: usize,
    runs: usize,
    options: &RunOptions,
    workers: usize,
) -> (Vec<(String, u64)>, Memory, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Map and reduce functions run on the blocking pool: as many
        // threads as worker loops, plus a few for file reads (fewer
        // malloc arenas holding memory).
        .max_blocking_threads(3 * workers + 2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let before = status_mb("VmRSS:");
    runtime.block_on(async {
        let (nodes, coordinator, driver) = cluster(workers).await;
        let mut memory = Memory {
            before,
            formed: status_mb("VmRSS:"),
            peaks: Vec::new(),
            reset: true,
        };
        let mut totals = Vec::new();
        let mut phases: Vec<PhaseTimings> = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            memory.reset &= reset_peak();
            let t = Instant::now();
            let out = driver.word_count(inputs, options).await.expect("word count");
            totals.push(t.elapsed());
            memory.peaks.push(status_mb("VmHWM:") - before);
            phases.push(out.timings);
            last = Some(out);
        }
        let out = last.expect("at least one run");
        let total = median_duration(totals);
        let pick = |f: fn(&PhaseTimings) -> Duration| median_duration(phases.iter().map(f).collect());
        println!(
            "  3-node cluster ({workers} worker(s)/node): {:>7.1} ms  {:>7.1} MB/s  ({} splits, {} reducers; median of {runs})",
            ms(total),
            mb_per_s(bytes, total),
            options.splits,
            options.reducers,
        );
        println!(
            "    phases (median): plan {:.1} ms, map {:.1} ms, reduce {:.1} ms, merge {:.1} ms",
            ms(pick(|p| p.plan)),
            ms(pick(|p| p.map)),
            ms(pick(|p| p.reduce)),
            ms(pick(|p| p.merge))
        );
        println!(
            "    shuffle: {} pairs, {:.2} MB after the local combine",
            out.stats.shuffle_pairs,
            out.stats.shuffle_bytes as f64 / 1e6
        );
        for node in &out.nodes {
            println!(
                "    {}: {} maps, {} reduces, busy {:.0} ms (last run)",
                node.node,
                node.maps,
                node.reduces,
                ms(node.busy)
            );
        }
        coordinator.shutdown().await;
        for node in nodes {
            node.pool.shutdown().await;
            node.mapreduce.shutdown();
            node.router.shutdown().await;
        }
        (out.entries, memory, total)
    })
}

fn main() {
    let mb = env_usize("MR_BENCH_MB", 100);
    let runs = env_usize("MR_BENCH_RUNS", 3).max(1);
    let options = RunOptions {
        splits: env_usize("MR_BENCH_SPLITS", 24),
        reducers: env_usize("MR_BENCH_REDUCERS", 4) as u32,
        ..RunOptions::default()
    };
    let workers = env_usize("MR_BENCH_WORKERS", 1).max(1);
    let rss_start = status_mb("VmRSS:");
    let generated = Instant::now();
    let (_dir, files, bytes) = write_corpus(mb);
    println!(
        "mapreduce wordcount: corpus {:.1} MB in 4 files, generated and written in {:.0} ms; \
         RSS {rss_start:.0} MB at start, {:.0} MB with the corpus dropped",
        bytes as f64 / 1e6,
        ms(generated.elapsed()),
        status_mb("VmRSS:")
    );

    let (entries, memory, total) = run_cluster(&files, bytes, runs, &options, workers);
    memory.print(bytes);

    // The baseline, after the cluster: the files read into memory.
    let inputs: Vec<Input> = files
        .iter()
        .map(|f| Input::read(f.path().expect("a file")).expect("corpus file"))
        .collect();
    let mut baseline = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        expected = reference_word_count(&inputs);
        baseline.push(t.elapsed());
    }
    assert_eq!(entries, expected, "distributed count differs");
    let base = median_duration(baseline);
    println!(
        "  single-threaded word count: {:>7.1} ms  {:>7.1} MB/s  ({} distinct words; the cluster is {:.2}x faster)",
        ms(base),
        mb_per_s(bytes, base),
        expected.len(),
        base.as_secs_f64() / total.as_secs_f64(),
    );
    map_alone(&inputs, bytes, options.splits);
}
