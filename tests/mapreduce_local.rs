//! Map-shuffle-reduce through the in-process executor: distributed results
//! equal the single-process references, edge cases, and task semantics.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use job_queue::mapreduce::{
    generate_inputs, reference_inverted_index, reference_word_count, CorpusConfig, Input,
    LocalConfig, LocalExecutor, MapInput, MapOutput, MapReduce, MapReduceError, MapReduceRegistry,
    ReduceContext, RunOptions, WordCount,
};
use job_queue::FailureCause;

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("timed out")
}

fn executor(nodes: usize) -> LocalExecutor {
    let config = LocalConfig {
        nodes,
        workers_per_node: 2,
        ..LocalConfig::default()
    };
    LocalExecutor::start(config).unwrap()
}

fn options(splits: usize, reducers: u32) -> RunOptions {
    RunOptions {
        splits,
        reducers,
        ..RunOptions::default()
    }
}

fn corpus(bytes: usize, files: usize) -> Vec<Input> {
    let config = CorpusConfig {
        seed: 11,
        bytes,
        vocabulary: 3_000,
        exponent: 1.0,
    };
    generate_inputs(&config, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_equals_the_reference_for_many_settings() {
    let inputs = corpus(400_000, 3);
    let expected = reference_word_count(&inputs);
    let total: u64 = expected.iter().map(|(_, c)| c).sum();
    let executor = executor(3);
    for (splits, reducers) in [(1, 1), (3, 1), (7, 2), (16, 5), (32, 16), (4, 20_000)] {
        let out = within(executor.word_count(&inputs, &options(splits, reducers)))
            .await
            .unwrap();
        assert_eq!(out.entries, expected, "splits={splits} reducers={reducers}");
        assert_eq!(out.stats.records, total);
        assert_eq!(out.stats.output_keys, expected.len() as u64);
        assert!(out.stats.map_tasks as usize >= splits.min(3));
        assert!(out.stats.reduce_tasks <= reducers);
    }
    // Every blob of every run was removed.
    for node in executor.nodes() {
        assert!(executor.store(node).unwrap().is_empty(), "{node}");
    }
    within(executor.shutdown()).await;
}

#[tokio::test]
async fn more_reducers_than_distinct_keys() {
    let executor = executor(2);
    let inputs = [Input::new("a", "b a b c"), Input::new("b", "A")];
    let out = within(executor.word_count(&inputs, &options(4, 64)))
        .await
        .unwrap();
    let expected = [
        ("a".to_owned(), 2),
        ("b".to_owned(), 2),
        ("c".to_owned(), 1),
    ];
    assert_eq!(out.entries, expected);
    // Only partitions that received a key get a reduce task.
    assert!(out.stats.reduce_tasks <= 3);
    within(executor.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inverted_index_equals_the_reference() {
    let mut inputs = corpus(120_000, 4);
    inputs.push(Input::new("empty.txt", ""));
    inputs.push(Input::new("short.txt", "Zebra zebra, ZEBRA!"));
    let expected = reference_inverted_index(&inputs);
    let executor = executor(3);
    for (splits, reducers) in [(1, 1), (9, 4), (40, 7)] {
        let out = within(executor.inverted_index(&inputs, &options(splits, reducers)))
            .await
            .unwrap();
        assert_eq!(out.entries, expected, "splits={splits} reducers={reducers}");
        assert_eq!(out.inputs[5], "short.txt");
    }
    within(executor.shutdown()).await;
}

#[tokio::test]
async fn positions_are_word_indexes_within_each_file() {
    let executor = executor(2);
    let inputs = [Input::new("one", "x y, x"), Input::new("two", "y... x")];
    let out = within(executor.inverted_index(&inputs, &options(8, 2)))
        .await
        .unwrap();
    let x: Vec<(u32, u64)> = out.entries[0]
        .1
        .iter()
        .map(|p| (p.file, p.position))
        .collect();
    assert_eq!(out.entries[0].0, "x");
    assert_eq!(x, [(0, 0), (0, 2), (1, 1)]);
    within(executor.shutdown()).await;
}

#[tokio::test]
async fn empty_input_gives_an_empty_result() {
    let executor = executor(2);
    let out = within(executor.word_count(&[], &options(4, 3)))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    let blank = [Input::new("a", ""), Input::new("b", "  ,;42 \n")];
    let out = within(executor.word_count(&blank, &options(4, 3)))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    assert_eq!(out.stats.records, 0);
    let out = within(executor.inverted_index(&blank, &options(4, 3)))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    within(executor.shutdown()).await;
}

#[tokio::test]
async fn non_utf8_bytes_separate_words() {
    let executor = executor(2);
    // Latin-1 "café Straße", an invalid sequence, and UTF-8 "naïve".
    let data = b"caf\xe9 Stra\xdfe \xff\xfeok na\xc3\xafve".to_vec();
    let inputs = [Input::new("latin1", data)];
    let out = within(executor.word_count(&inputs, &options(3, 2)))
        .await
        .unwrap();
    let words: Vec<&str> = out.entries.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["caf", "e", "na", "ok", "stra", "ve"]);
    assert_eq!(out.entries, reference_word_count(&inputs));
    within(executor.shutdown()).await;
}

/// Word lengths: a custom job with integer keys.
struct LengthHistogram;

impl MapReduce for LengthHistogram {
    type Key = u64;
    type Value = u64;
    type Output = u64;

    fn name(&self) -> &str {
        "lengths"
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<u64, u64> {
        let text = job_queue::mapreduce::normalize(input.text);
        let pairs: Vec<(u64, u64)> = job_queue::mapreduce::words(&text)
            .map(|w| (w.len() as u64, 1))
            .collect();
        MapOutput {
            records: pairs.len() as u64,
            pairs,
        }
    }

    fn combine(&self, acc: &mut u64, value: u64) {
        *acc += value;
    }

    fn reduce(&self, _key: &u64, values: Vec<u64>, _ctx: &ReduceContext<'_>) -> u64 {
        values.into_iter().sum()
    }
}

#[tokio::test]
async fn custom_jobs_run_and_unknown_ones_are_refused() {
    let mut jobs = MapReduceRegistry::new();
    jobs.register(LengthHistogram);
    let config = LocalConfig {
        nodes: 2,
        workers_per_node: 1,
        ..LocalConfig::default()
    };
    let executor = LocalExecutor::with_jobs(config, jobs).unwrap();
    let inputs = [Input::new("a", "a bb cc ddd e"), Input::new("b", "ff")];
    let out = within(executor.run(&LengthHistogram, &inputs, &options(3, 2)))
        .await
        .unwrap();
    assert_eq!(out.entries, [(1, 2), (2, 3), (3, 1)]);
    let err = within(executor.word_count(&inputs, &options(3, 2)))
        .await
        .unwrap_err();
    assert!(matches!(err, MapReduceError::UnknownJob { .. }), "{err}");
    within(executor.shutdown()).await;
}

/// A word count whose first map call is slow (to be timed out) and which
/// panics on the word `boom`.
struct Flaky {
    slow_once: Arc<AtomicBool>,
}

impl MapReduce for Flaky {
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn name(&self) -> &str {
        "flaky"
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<String, u64> {
        if self.slow_once.swap(false, Ordering::SeqCst) {
            // Simulated work that overruns the task timeout.
            std::thread::sleep(Duration::from_millis(600));
        }
        assert!(
            !input.text.windows(4).any(|w| w == b"boom"),
            "map function panicked on purpose"
        );
        WordCount.map(input)
    }

    fn combine(&self, acc: &mut u64, value: u64) {
        *acc += value;
    }

    fn reduce(&self, _key: &String, values: Vec<u64>, _ctx: &ReduceContext<'_>) -> u64 {
        values.into_iter().sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_tasks_are_retried_and_panics_fail_the_job() {
    let slow_once = Arc::new(AtomicBool::new(true));
    let mut jobs = MapReduceRegistry::new();
    jobs.register(Flaky {
        slow_once: slow_once.clone(),
    });
    let config = LocalConfig {
        nodes: 2,
        workers_per_node: 1,
        ..LocalConfig::default()
    };
    let executor = LocalExecutor::with_jobs(config, jobs).unwrap();
    let flaky = Flaky {
        slow_once: Arc::new(AtomicBool::new(false)),
    };
    let run = RunOptions {
        splits: 1,
        reducers: 1,
        task_timeout: Duration::from_millis(150),
        max_attempts: 3,
    };
    let inputs = [Input::new("a", "one two two")];
    let out = within(executor.run(&flaky, &inputs, &run)).await.unwrap();
    assert_eq!(out.entries, reference_word_count(&inputs));
    assert!(!slow_once.load(Ordering::SeqCst), "the slow attempt ran");

    let inputs = [Input::new("a", "one boom two")];
    let err = within(executor.run(&flaky, &inputs, &run))
        .await
        .unwrap_err();
    let MapReduceError::TaskFailed { failure, .. } = err else {
        panic!("expected a task failure, got {err}");
    };
    assert_eq!(failure.cause, FailureCause::Handler);
    assert!(!failure.retryable);
    within(executor.shutdown()).await;
}

/// A word count whose first reduce call reports that the reduce phase has
/// started and then waits until the test has killed a node.
struct Gated {
    started: tokio::sync::mpsc::UnboundedSender<()>,
    go: Arc<parking_lot::Mutex<std::sync::mpsc::Receiver<()>>>,
    first: Arc<AtomicBool>,
}

impl MapReduce for Gated {
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn name(&self) -> &str {
        "gated"
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<String, u64> {
        WordCount.map(input)
    }

    fn combine(&self, acc: &mut u64, value: u64) {
        *acc += value;
    }

    fn reduce(&self, _key: &String, values: Vec<u64>, _ctx: &ReduceContext<'_>) -> u64 {
        if self.first.swap(false, Ordering::SeqCst) {
            let _ = self.started.send(());
            let _ = self.go.lock().recv_timeout(Duration::from_secs(10));
        }
        values.into_iter().sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_lost_with_a_node_are_produced_again() {
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let gated = Gated {
        started: started_tx,
        go: Arc::new(parking_lot::Mutex::new(go_rx)),
        first: Arc::new(AtomicBool::new(true)),
    };
    // Only its name and types matter to `run`; the registered one runs.
    let types_only = Gated {
        started: tokio::sync::mpsc::unbounded_channel().0,
        go: gated.go.clone(),
        first: Arc::new(AtomicBool::new(false)),
    };
    let mut jobs = MapReduceRegistry::new();
    jobs.register(gated);
    let config = LocalConfig {
        nodes: 3,
        workers_per_node: 2,
        ..LocalConfig::default()
    };
    let executor = LocalExecutor::with_jobs(config, jobs).unwrap();
    let inputs = corpus(60_000, 2);
    let run = options(12, 3);
    let (out, ()) = within(async {
        tokio::join!(executor.run(&types_only, &inputs, &run), async {
            started.recv().await.expect("reduce phase started");
            assert!(executor.kill_node("local-2"));
            assert!(!executor.kill_node("local-2"));
            go.send(()).unwrap();
        })
    })
    .await;
    let out = out.unwrap();
    assert_eq!(out.entries, reference_word_count(&inputs));
    assert!(out.stats.recoveries >= 1, "{:?}", out.stats);
    assert!(executor.store("local-2").is_none());
    within(executor.shutdown()).await;
}
