//! Map-shuffle-reduce word count: a generated corpus (100 MB by default)
//! through the in-process executor (1 node, 2 worker loops) against the
//! single-threaded reference in the same run.
//!
//! Run: `cargo bench -p jobmesh --bench mapreduce`. Environment:
//! `MR_BENCH_MB` (corpus size, default 100), `MR_BENCH_RUNS` (default 3),
//! `MR_BENCH_SPLITS` (default 32), `MR_BENCH_REDUCERS` (default 4).

use std::time::{Duration, Instant};

use job_queue::mapreduce::{
    generate_inputs, plan_splits, reference_word_count, split_bytes, CorpusConfig, Input,
    LocalConfig, LocalExecutor, MapInput, MapReduce, PhaseTimings, RunOptions, WordCount,
};

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

/// The word-count map function alone, on one thread, over the whole corpus
/// cut into 32 splits: the per-worker ceiling of the map phase.
fn map_alone(inputs: &[Input], bytes: usize, runs: usize) {
    let splits = plan_splits(inputs, 32);
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut pairs = 0;
        for split in &splits {
            let text = split_bytes(inputs, split).expect("split");
            let out = WordCount.map(&MapInput { split, text: &text });
            pairs += out.pairs.len();
        }
        times.push(t.elapsed());
        std::hint::black_box(pairs);
    }
    let time = median(times);
    println!(
        "  map function alone, 1 thread: {:>5.1} ms  {:>7.1} MB/s",
        ms(time),
        mb_per_s(bytes, time)
    );
}

fn main() {
    let mb = env_or("MR_BENCH_MB", 100);
    let runs = env_or("MR_BENCH_RUNS", 3).max(1);
    let splits = env_or("MR_BENCH_SPLITS", 32);
    let reducers = env_or("MR_BENCH_REDUCERS", 4) as u32;
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
        "mapreduce wordcount: corpus {:.1} MB in 4 files, generated in {:.0} ms",
        bytes as f64 / 1e6,
        ms(generated.elapsed())
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
        "  single-threaded reference: {:>8.1} ms  {:>7.1} MB/s  ({} distinct words)",
        ms(base),
        mb_per_s(bytes, base),
        expected.len()
    );

    map_alone(&inputs, bytes, runs);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let local = LocalConfig {
            nodes: 1,
            workers_per_node: 2,
            ..LocalConfig::default()
        };
        let executor = LocalExecutor::start(local).expect("executor");
        let options = RunOptions {
            splits,
            reducers,
            ..RunOptions::default()
        };
        let mut totals = Vec::new();
        let mut phases: Vec<PhaseTimings> = Vec::new();
        let mut shuffle = (0, 0);
        for _ in 0..runs {
            let t = Instant::now();
            let out = executor
                .word_count(&inputs, &options)
                .await
                .expect("word count");
            totals.push(t.elapsed());
            assert_eq!(out.entries, expected, "distributed count differs");
            phases.push(out.timings);
            shuffle = (out.stats.shuffle_pairs, out.stats.shuffle_bytes);
        }
        let total = median(totals);
        let pick = |f: fn(&PhaseTimings) -> Duration| median(phases.iter().map(f).collect());
        println!(
            "  local executor, 2 workers: {:>8.1} ms  {:>7.1} MB/s  ({:.2}x the reference; {} splits, {} reducers)",
            ms(total),
            mb_per_s(bytes, total),
            base.as_secs_f64() / total.as_secs_f64(),
            splits,
            reducers
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
            shuffle.0,
            shuffle.1 as f64 / 1e6
        );
        executor.shutdown().await;
    });
}
