//! Map-shuffle-reduce on a real cluster: four routers in this process on
//! loopback (a driver node with the coordinator, three worker nodes with
//! pools), shuffle data fetched through the `partitions` actors in small
//! chunks. Results equal the single-process references, also when a worker
//! node dies in the map or in the reduce phase.

mod support;

use async_trait::async_trait;
use cluster_router::Router;
use job_queue::mapreduce::{
    ClusterMapReduce, Input, MapReduceError, MapReduceNode, MapReduceRegistry, Phase, RunEvent,
    RunObserver, WordCount,
};
use job_queue::{Coordinator, CoordinatorOptions, FailureCause};
use support::mapreduce::{options, MrCluster, MrSettings, MrWorker, SECRET, STEP};
use support::{fast_router, within};
use test_kit::{generate_inputs, reference_inverted_index, reference_word_count, CorpusConfig};

/// The driver node and three worker nodes with two worker loops each.
async fn cluster() -> MrCluster {
    MrCluster::start(MrSettings::default()).await
}

fn corpus(bytes: usize, files: usize, seed: u64) -> Vec<Input> {
    let config = CorpusConfig {
        seed,
        bytes,
        vocabulary: 4_000,
        exponent: 1.0,
    };
    generate_inputs(&config, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_equals_the_reference_on_a_cluster() {
    let inputs = corpus(3_000_000, 3, 5);
    let expected = reference_word_count(&inputs);
    let cluster = cluster().await;
    for (splits, reducers) in [(1, 1), (6, 1), (12, 5), (4, 10_000)] {
        let out = within(
            STEP,
            "word count",
            cluster
                .driver
                .word_count(&inputs, &options(splits, reducers)),
        )
        .await
        .unwrap();
        assert_eq!(out.entries, expected, "splits={splits} reducers={reducers}");
        assert_eq!(out.stats.output_keys, expected.len() as u64);
        assert!(out.stats.reduce_tasks <= reducers);
        // Only worker nodes ran tasks; every map and reduce is accounted for.
        assert!(out.nodes.iter().all(|n| n.node.starts_with('w')));
        let maps: u32 = out.nodes.iter().map(|n| n.maps).sum();
        let reduces: u32 = out.nodes.iter().map(|n| n.reduces).sum();
        assert_eq!(
            (maps, reduces),
            (out.stats.map_tasks, out.stats.reduce_tasks)
        );
        cluster.assert_stores_empty();
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inverted_index_equals_the_reference_on_a_cluster() {
    let mut inputs = corpus(600_000, 3, 6);
    inputs.push(Input::new("empty.txt", ""));
    inputs.push(Input::new("short.txt", "Zebra zebra, ZEBRA!"));
    let expected = reference_inverted_index(&inputs);
    let cluster = cluster().await;
    let out = within(
        STEP,
        "inverted index",
        cluster.driver.inverted_index(&inputs, &options(7, 3)),
    )
    .await
    .unwrap();
    assert_eq!(out.entries, expected);
    assert_eq!(out.inputs[4], "short.txt");
    cluster.assert_stores_empty();
    cluster.stop().await;
}

/// Records what the driver's store holds when the run is planned.
struct StagedBytes {
    store: job_queue::mapreduce::PartitionStore,
    seen: Option<(usize, usize)>,
}

#[async_trait]
impl RunObserver for StagedBytes {
    async fn on_event(&mut self, event: &RunEvent) {
        if let RunEvent::Planned { .. } = event {
            self.seen = Some((self.store.bytes(), self.store.len()));
        }
    }
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mr-cluster-{tag}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_inputs_are_read_on_demand_and_read_errors_fail_the_task() {
    let dir = temp_dir("files");
    let memory = corpus(1_200_000, 3, 8);
    let files: Vec<Input> = memory
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let path = dir.join(format!("in-{i}.txt"));
            std::fs::write(&path, input.data().unwrap()).unwrap();
            Input::open(&path).unwrap()
        })
        .collect();
    let cluster = cluster().await;
    let mut staged = StagedBytes {
        store: cluster.driver.node().store().clone(),
        seen: None,
    };
    let out = within(
        STEP,
        "word count of files",
        cluster
            .driver
            .run(&WordCount, &files, &options(9, 3), &mut staged),
    )
    .await
    .unwrap();
    assert_eq!(out.entries, reference_word_count(&memory));
    // Staged as file ranges: no input byte held by the driver.
    let (bytes, blobs) = staged.seen.unwrap();
    assert_eq!((bytes, blobs as u32), (0, out.stats.map_tasks));
    let index = within(
        STEP,
        "inverted index of files",
        cluster.driver.inverted_index(&files, &options(5, 2)),
    )
    .await
    .unwrap();
    assert_eq!(index.entries, reference_inverted_index(&memory));
    assert_eq!(index.inputs[0], files[0].name);
    cluster.assert_stores_empty();

    // A file removed after it was opened: its split cannot be served.
    let gone = Input::open(dir.join("in-0.txt")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut opts = options(1, 1);
    opts.max_attempts = 2;
    let err = within(
        STEP,
        "removed file",
        cluster
            .driver
            .word_count(std::slice::from_ref(&gone), &opts),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MapReduceError::TaskFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot read"), "{err}");
    cluster.assert_stores_empty();
    cluster.stop().await;
}

/// Kills the node of the first task of `phase` that finishes while more
/// tasks of that phase remain.
struct Killer {
    phase: Phase,
    workers: Vec<MrWorker>,
    killed: Option<String>,
}

#[async_trait]
impl RunObserver for Killer {
    async fn on_event(&mut self, event: &RunEvent) {
        let RunEvent::TaskFinished {
            node,
            success: true,
            phase,
            progress,
            ..
        } = event
        else {
            return;
        };
        let in_phase = match self.phase {
            Phase::Map => *phase == Phase::Map && progress.maps_done >= 1,
            _ => *phase == Phase::Reduce && progress.reduces_done >= 1,
        };
        if self.killed.is_none() && in_phase {
            if let Some(at) = self.workers.iter().position(|w| &w.name == node) {
                self.workers.remove(at).kill().await;
                self.killed = Some(node.clone());
            }
        }
    }
}

async fn survives_a_kill(phase: Phase) {
    let inputs = corpus(1_500_000, 2, 7);
    let expected = reference_word_count(&inputs);
    let mut cluster = cluster().await;
    let mut killer = Killer {
        phase,
        workers: std::mem::take(&mut cluster.workers),
        killed: None,
    };
    let out = within(
        STEP,
        "word count with a node killed",
        cluster
            .driver
            .run(&WordCount, &inputs, &options(12, 6), &mut killer),
    )
    .await
    .unwrap();
    let victim = killer.killed.clone().expect("a worker node was killed");
    assert_eq!(out.entries, expected, "killed {victim} in {phase:?}");
    assert!(
        out.stats.recoveries >= 1,
        "the outputs {victim} held were produced again"
    );
    cluster.workers = killer.workers;
    cluster.assert_stores_empty();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_in_the_map_phase_changes_nothing() {
    survives_a_kill(Phase::Map).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_in_the_reduce_phase_changes_nothing() {
    survives_a_kill(Phase::Reduce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_input_non_utf8_bytes_and_bad_settings() {
    let cluster = cluster().await;
    let out = within(
        STEP,
        "empty",
        cluster.driver.word_count(&[], &options(4, 3)),
    )
    .await
    .unwrap();
    assert!(out.entries.is_empty());
    assert_eq!(out.stats.map_tasks, 0);
    let blank = [Input::new("a", ""), Input::new("b", " ,;42\n")];
    let out = within(
        STEP,
        "blank",
        cluster.driver.inverted_index(&blank, &options(4, 3)),
    )
    .await
    .unwrap();
    assert!(out.entries.is_empty());

    // Input is bytes: every byte outside [A-Za-z] separates words.
    let latin1 = [Input::new(
        "latin1",
        &b"caf\xe9 Stra\xdfe \xff\xfeok na\xc3\xafve"[..],
    )];
    let out = within(
        STEP,
        "latin1",
        cluster.driver.word_count(&latin1, &options(3, 2)),
    )
    .await
    .unwrap();
    let words: Vec<&str> = out.entries.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["caf", "e", "na", "ok", "stra", "ve"]);

    let zero = within(
        STEP,
        "zero reducers",
        cluster.driver.word_count(&latin1, &options(3, 0)),
    )
    .await;
    assert!(
        matches!(zero, Err(MapReduceError::ZeroReducers)),
        "{zero:?}"
    );
    cluster.assert_stores_empty();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_workers_the_job_fails_clearly() {
    let router = within(STEP, "router", Router::start(fast_router("lonely", SECRET)))
        .await
        .unwrap();
    let node = MapReduceNode::start(&router, MapReduceRegistry::new(), Default::default()).unwrap();
    let coordinator = within(
        STEP,
        "coordinator",
        Coordinator::start(&router, CoordinatorOptions::default()),
    )
    .await
    .unwrap();
    let driver = ClusterMapReduce::new(node, coordinator.clone());
    let inputs = [Input::new("a", "some words")];
    let err = within(
        STEP,
        "no workers",
        driver.word_count(&inputs, &options(2, 2)),
    )
    .await
    .unwrap_err();
    let MapReduceError::TaskFailed { failure, .. } = &err else {
        panic!("expected a task failure: {err:?}");
    };
    assert_eq!(failure.cause, FailureCause::NoEligibleNode);
    assert!(err.to_string().contains("mr.map"), "{err}");
    assert!(driver.node().store().is_empty());
    within(STEP, "coordinator shutdown", coordinator.shutdown()).await;
    within(STEP, "router shutdown", router.shutdown()).await;
}
