//! Map-shuffle-reduce word count of a generated corpus (100 MB by default)
//! on a 3-node cluster, against a single-threaded word count of the same
//! data in the same run.
//!
//! The cluster is three routers in this process, linked over loopback
//! WebSockets, each with a worker pool serving `mr.map` / `mr.reduce` and a
//! `partitions` actor; `node-0` also runs the coordinator and the driver,
//! so the inputs are staged there and the other nodes fetch their splits
//! through the router, as they would between machines. Peak memory is the
//! process's `VmHWM` (all nodes, the corpus and the baseline included).
//!
//! Run: `cargo bench -p jobmesh --bench mapreduce`. Environment:
//! `MR_BENCH_MB` (corpus size, default 100), `MR_BENCH_RUNS` (default 3),
//! `MR_BENCH_SPLITS` (default 24), `MR_BENCH_REDUCERS` (default 4),
//! `MR_BENCH_WORKERS` (worker loops per node, default 1),
//! `MR_BENCH_CHUNK_KB` (fetch chunk, default 1024).

use std::time::{Duration, Instant};

use cluster_router::{Router, RouterConfig};
use job_queue::mapreduce::{
    generate_inputs, plan_splits, reference_word_count, split_bytes, ClusterMapReduce,
    CorpusConfig, Input, MapInput, MapReduce, MapReduceNode, MapReduceNodeConfig,
    MapReduceRegistry, PhaseTimings, RunOptions, WordCount,
};
use job_queue::{Coordinator, CoordinatorOptions, HandlerRegistry, WorkerPool, WorkerPoolConfig};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    for split in &plan_splits(inputs, splits) {
        let text = split_bytes(inputs, split).expect("split");
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

async fn start_node(name: &str, seed: Option<String>, workers: usize) -> BenchNode {
    let mut config = RouterConfig::new(name, "mapreduce-bench").timing(
        Duration::from_millis(100),
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    config.seeds = seed.into_iter().collect();
    let router = Router::start(config).await.expect("router");
    let mut node_config = MapReduceNodeConfig::default();
    node_config.fetch.chunk = (env_or("MR_BENCH_CHUNK_KB", 1024) * 1024) as u32;
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

fn main() {
    let mb = env_or("MR_BENCH_MB", 100);
    let runs = env_or("MR_BENCH_RUNS", 3).max(1);
    let splits = env_or("MR_BENCH_SPLITS", 24);
    let reducers = env_or("MR_BENCH_REDUCERS", 4) as u32;
    let workers = env_or("MR_BENCH_WORKERS", 1).max(1);
    let rss_start = status_mb("VmRSS:");
    let config = CorpusConfig {
        seed: 2026,
        bytes: mb * 1_000_000,
        vocabulary: 50_000,
        exponent: 1.0,
    };
    let generated = Instant::now();
    let inputs = generate_inputs(&config, 4);
    let bytes: usize = inputs.iter().map(|i| i.data.len()).sum();
    println!(
        "mapreduce wordcount: corpus {:.1} MB in 4 files, generated in {:.0} ms; RSS {:.0} MB before",
        bytes as f64 / 1e6,
        ms(generated.elapsed()),
        rss_start
    );

    let mut baseline = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        expected = reference_word_count(&inputs);
        baseline.push(t.elapsed());
    }
    let base = median(baseline);
    println!(
        "  single-threaded word count: {:>7.1} ms  {:>7.1} MB/s  ({} distinct words)",
        ms(base),
        mb_per_s(bytes, base),
        expected.len()
    );
    map_alone(&inputs, bytes, splits);
    let peak_before = status_mb("VmHWM:");
    let reset = reset_peak();
    let rss_before = status_mb("VmRSS:");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Map and reduce functions run on the blocking pool: as many
        // threads as worker loops (fewer malloc arenas holding memory).
        .max_blocking_threads(3 * workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let (nodes, coordinator, driver) = cluster(workers).await;
        let options = RunOptions {
            splits,
            reducers,
            ..RunOptions::default()
        };
        let mut totals = Vec::new();
        let mut phases: Vec<PhaseTimings> = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let out = driver
                .word_count(&inputs, &options)
                .await
                .expect("word count");
            totals.push(t.elapsed());
            assert_eq!(out.entries, expected, "distributed count differs");
            phases.push(out.timings);
            last = Some(out);
        }
        let total = median(totals);
        let pick = |f: fn(&PhaseTimings) -> Duration| median(phases.iter().map(f).collect());
        println!(
            "  3-node cluster ({workers} worker(s)/node): {:>7.1} ms  {:>7.1} MB/s  ({:.2}x the single-threaded count; {splits} splits, {reducers} reducers; median of {runs})",
            ms(total),
            mb_per_s(bytes, total),
            base.as_secs_f64() / total.as_secs_f64(),
        );
        println!(
            "    phases (median): plan {:.1} ms, map {:.1} ms, reduce {:.1} ms, merge {:.1} ms",
            ms(pick(|p| p.plan)),
            ms(pick(|p| p.map)),
            ms(pick(|p| p.reduce)),
            ms(pick(|p| p.merge))
        );
        if let Some(out) = last {
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
        }
        let peak = status_mb("VmHWM:");
        let input = bytes as f64 / 1e6;
        let scope = if reset {
            "while the 3 nodes ran (the input held by the driver included)"
        } else {
            "of the whole process (peak reset unavailable)"
        };
        println!(
            "  memory: peak RSS {peak:.0} MB {scope} = {:.2}x the input; RSS {rss_before:.0} MB \
             before the cluster started (corpus + baseline; peak {peak_before:.0} MB); {rss_start:.0} MB at start",
            peak / input,
        );
        coordinator.shutdown().await;
        for node in nodes {
            node.pool.shutdown().await;
            node.mapreduce.shutdown();
            node.router.shutdown().await;
        }
    });
}
