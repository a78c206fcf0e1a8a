//! Map-shuffle-reduce semantics on a small in-process cluster (a driver
//! node and two or three worker nodes on loopback, `support::mapreduce`):
//! distributed results equal the single-process references for many
//! settings and edge cases, custom jobs run, and tasks get the job
//! semantics (a timed-out attempt is retried, a panic fails the job,
//! outputs lost with a node are produced again).
//!
//! Nothing here depends on timing: the attempt that must time out is held
//! until the run has finished without it, the node kill happens at a point
//! the test controls, and every other task has seconds for milliseconds of
//! work (and retries if a loaded machine still overruns that).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use job_queue::mapreduce::{
    normalize, words, Input, MapInput, MapOutput, MapReduce, MapReduceError, MapReduceRegistry,
    NoObserver, ReduceContext, RunEvent, RunObserver, RunOptions, WordCount,
};
use job_queue::FailureCause;
use parking_lot::Mutex;
use support::mapreduce::{options, MrCluster, MrSettings, STEP};
use support::within;
use test_kit::{generate_inputs, reference_inverted_index, reference_word_count, CorpusConfig};
use tokio::sync::mpsc;

/// How long a held task waits for its release at most. Far beyond any
/// test's run: a held task is released by the test, or at once when the
/// test fails and drops the sender.
const HOLD_LIMIT: Duration = Duration::from_secs(600);

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
    let cluster = MrCluster::start(MrSettings::default()).await;
    for (splits, reducers) in [(1, 1), (3, 1), (7, 2), (16, 5), (32, 16), (4, 20_000)] {
        let opts = options(splits, reducers);
        let out = within(
            STEP,
            "word count",
            cluster.driver.word_count(&inputs, &opts),
        )
        .await
        .unwrap();
        assert_eq!(out.entries, expected, "splits={splits} reducers={reducers}");
        assert_eq!(out.stats.records, total);
        assert_eq!(out.stats.output_keys, expected.len() as u64);
        assert!(out.stats.map_tasks as usize >= splits.min(3));
        assert!(out.stats.reduce_tasks <= reducers);
        // Every blob of every run was removed.
        cluster.assert_stores_empty();
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_reducers_than_distinct_keys() {
    let cluster = MrCluster::start(MrSettings::nodes(2, 1)).await;
    let inputs = [Input::new("a", "b a b c"), Input::new("b", "A")];
    let opts = options(4, 64);
    let out = within(
        STEP,
        "word count",
        cluster.driver.word_count(&inputs, &opts),
    )
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
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inverted_index_equals_the_reference() {
    let mut inputs = corpus(120_000, 4);
    inputs.push(Input::new("empty.txt", ""));
    inputs.push(Input::new("short.txt", "Zebra zebra, ZEBRA!"));
    let expected = reference_inverted_index(&inputs);
    let cluster = MrCluster::start(MrSettings::default()).await;
    for (splits, reducers) in [(1, 1), (9, 4), (40, 7)] {
        let opts = options(splits, reducers);
        let run = cluster.driver.inverted_index(&inputs, &opts);
        let out = within(STEP, "inverted index", run).await.unwrap();
        assert_eq!(out.entries, expected, "splits={splits} reducers={reducers}");
        assert_eq!(out.inputs[5], "short.txt");
    }
    cluster.assert_stores_empty();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_word_indexes_within_each_file() {
    let cluster = MrCluster::start(MrSettings::nodes(2, 1)).await;
    let inputs = [Input::new("one", "x y, x"), Input::new("two", "y... x")];
    let opts = options(8, 2);
    let run = cluster.driver.inverted_index(&inputs, &opts);
    let out = within(STEP, "inverted index", run).await.unwrap();
    let x: Vec<(u32, u64)> = out.entries[0]
        .1
        .iter()
        .map(|p| (p.file, p.position))
        .collect();
    assert_eq!(out.entries[0].0, "x");
    assert_eq!(x, [(0, 0), (0, 2), (1, 1)]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_input_gives_an_empty_result() {
    let cluster = MrCluster::start(MrSettings::nodes(2, 1)).await;
    let driver = &cluster.driver;
    let opts = options(4, 3);
    let out = within(STEP, "no input", driver.word_count(&[], &opts))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    let blank = [Input::new("a", ""), Input::new("b", "  ,;42 \n")];
    let out = within(STEP, "blank", driver.word_count(&blank, &opts))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    assert_eq!(out.stats.records, 0);
    let out = within(STEP, "blank", driver.inverted_index(&blank, &opts))
        .await
        .unwrap();
    assert!(out.entries.is_empty());
    cluster.assert_stores_empty();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_bytes_separate_words() {
    let cluster = MrCluster::start(MrSettings::nodes(2, 1)).await;
    // Latin-1 "café Straße", an invalid sequence, and UTF-8 "naïve".
    let data = b"caf\xe9 Stra\xdfe \xff\xfeok na\xc3\xafve".to_vec();
    let inputs = [Input::new("latin1", data)];
    let opts = options(3, 2);
    let out = within(
        STEP,
        "word count",
        cluster.driver.word_count(&inputs, &opts),
    )
    .await
    .unwrap();
    let words: Vec<&str> = out.entries.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["caf", "e", "na", "ok", "stra", "ve"]);
    assert_eq!(out.entries, reference_word_count(&inputs));
    cluster.stop().await;
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
        let text = normalize(input.text);
        let pairs: Vec<(u64, u64)> = words(&text).map(|w| (w.len() as u64, 1)).collect();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_jobs_run_and_unregistered_ones_fail_clearly() {
    let settings = MrSettings::nodes(2, 1).jobs(|| {
        let mut jobs = MapReduceRegistry::new();
        jobs.register(LengthHistogram);
        jobs
    });
    let cluster = MrCluster::start(settings).await;
    let inputs = [Input::new("a", "a bb cc ddd e"), Input::new("b", "ff")];
    let out = within(
        STEP,
        "custom job",
        cluster
            .driver
            .run(&LengthHistogram, &inputs, &options(3, 2), &mut NoObserver),
    )
    .await
    .unwrap();
    assert_eq!(out.entries, [(1, 2), (2, 3), (3, 1)]);

    // The workers do not know `wordcount`: its first task fails for good.
    let err = within(
        STEP,
        "unregistered job",
        cluster.driver.word_count(&inputs, &options(3, 2)),
    )
    .await
    .unwrap_err();
    let MapReduceError::TaskFailed { failure, .. } = &err else {
        panic!("expected a task failure, got {err}");
    };
    assert_eq!(failure.cause, FailureCause::Handler);
    assert!(!failure.retryable);
    assert!(failure.message.contains("wordcount"), "{failure}");
    cluster.assert_stores_empty();
    cluster.stop().await;
}

/// A word count whose first map call is held until the test releases it
/// (so that its attempt overruns the task timeout, whatever the machine's
/// load) and which panics on the word `boom`.
#[derive(Clone)]
struct Flaky {
    hold_first: Arc<AtomicBool>,
    release: Arc<Mutex<std_mpsc::Receiver<()>>>,
    /// Set when the held call returns.
    held_returned: Arc<AtomicBool>,
}

impl MapReduce for Flaky {
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn name(&self) -> &str {
        "flaky"
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<String, u64> {
        if self.hold_first.swap(false, Ordering::SeqCst) {
            let _ = self.release.lock().recv_timeout(HOLD_LIMIT);
            self.held_returned.store(true, Ordering::SeqCst);
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
    let (release, release_rx) = std_mpsc::channel();
    let flaky = Flaky {
        hold_first: Arc::new(AtomicBool::new(true)),
        release: Arc::new(Mutex::new(release_rx)),
        held_returned: Arc::new(AtomicBool::new(false)),
    };
    let registered = flaky.clone();
    let settings = MrSettings::nodes(2, 1).jobs(move || {
        let mut jobs = MapReduceRegistry::new();
        jobs.register(registered.clone());
        jobs
    });
    let cluster = MrCluster::start(settings).await;
    // The held attempt times out after 2 s; every other attempt has 2 s for
    // microseconds of work, and 3 more attempts if it still overruns.
    let run = RunOptions {
        splits: 1,
        reducers: 1,
        task_timeout: Duration::from_secs(2),
        max_attempts: 4,
    };
    let inputs = [Input::new("a", "one two two")];
    let out = within(
        STEP,
        "run with a held attempt",
        cluster.driver.run(&flaky, &inputs, &run, &mut NoObserver),
    )
    .await
    .unwrap();
    assert_eq!(out.entries, reference_word_count(&inputs));
    assert!(
        !flaky.hold_first.load(Ordering::SeqCst),
        "the held call ran"
    );
    assert!(
        !flaky.held_returned.load(Ordering::SeqCst),
        "the run finished while its first map attempt was still held: that attempt timed out \
         and another one produced the result"
    );
    release.send(()).expect("the held call is waiting");

    let inputs = [Input::new("a", "one boom two")];
    let err = within(
        STEP,
        "run that panics",
        cluster.driver.run(&flaky, &inputs, &run, &mut NoObserver),
    )
    .await
    .unwrap_err();
    let MapReduceError::TaskFailed { failure, .. } = err else {
        panic!("expected a task failure, got {err}");
    };
    assert_eq!(failure.cause, FailureCause::Handler);
    assert!(!failure.retryable);
    cluster.stop().await;
}

/// A word count whose first reduce call reports that the reduce phase has
/// started and then waits until the test has killed a node.
#[derive(Clone)]
struct Gated {
    /// Told, with `node`, when the first reduce is held.
    started: mpsc::UnboundedSender<usize>,
    go: Arc<Mutex<std_mpsc::Receiver<()>>>,
    first: Arc<AtomicBool>,
    /// The index of the worker node this instance is registered on.
    node: usize,
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
            let _ = self.started.send(self.node);
            let _ = self.go.lock().recv_timeout(HOLD_LIMIT);
        }
        values.into_iter().sum()
    }
}

/// Forwards every event of a run to the test.
struct Forward(mpsc::UnboundedSender<RunEvent>);

#[async_trait]
impl RunObserver for Forward {
    async fn on_event(&mut self, event: &RunEvent) {
        let _ = self.0.send(event.clone());
    }
}

/// The nodes that ran a map task, from the events received so far (a map
/// task finishes while no reduce task is done).
fn map_nodes(events: &mut mpsc::UnboundedReceiver<RunEvent>) -> Vec<String> {
    let mut nodes = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RunEvent::TaskFinished {
            node,
            success: true,
            progress,
            ..
        } = event
        {
            if progress.reduces_done == 0 && !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_lost_with_a_node_are_produced_again() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (go, go_rx) = std_mpsc::channel();
    let gated = Gated {
        started: started_tx,
        go: Arc::new(Mutex::new(go_rx)),
        first: Arc::new(AtomicBool::new(true)),
        node: usize::MAX,
    };
    let registered = gated.clone();
    // Each worker node's registry is built in the order of the names.
    let registries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let settings = MrSettings::nodes(3, 2).jobs(move || {
        let mut jobs = MapReduceRegistry::new();
        let mut on_node = registered.clone();
        on_node.node = registries.fetch_add(1, Ordering::SeqCst);
        jobs.register(on_node);
        jobs
    });
    let names = settings.workers.clone();
    let mut cluster = MrCluster::start(settings).await;
    let inputs = corpus(60_000, 2);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut observer = Forward(events_tx);
    let opts = options(12, 3);
    let MrCluster {
        driver, workers, ..
    } = &mut cluster;
    let (out, victim) = within(STEP, "run with a node killed", async {
        tokio::join!(driver.run(&gated, &inputs, &opts, &mut observer), async {
            let held = started.recv().await.expect("the reduce phase started");
            // Every map is done and a reduce is held: kill a node that
            // holds map outputs (not the one holding the reduce: its
            // handler blocks a thread, so that node could not shut down),
            // and release the reduce only once the driver has seen the
            // node go.
            let victim = map_nodes(&mut events)
                .into_iter()
                .rfind(|n| *n != names[held])
                .expect("a map ran on a node not holding the reduce");
            let at = workers.iter().position(|w| w.name == victim).unwrap();
            workers.remove(at).kill().await;
            loop {
                match events.recv().await {
                    Some(RunEvent::NodeLost { node, .. }) if node == victim => break,
                    Some(_) => {}
                    None => panic!("the run ended before the driver saw {victim} go"),
                }
            }
            go.send(()).expect("the reduce is held");
            victim
        })
    })
    .await;
    let out = out.unwrap();
    assert_eq!(
        out.entries,
        reference_word_count(&inputs),
        "killed {victim}"
    );
    assert!(out.stats.recoveries >= 1, "{:?}", out.stats);
    cluster.assert_stores_empty();
    cluster.stop().await;
}
