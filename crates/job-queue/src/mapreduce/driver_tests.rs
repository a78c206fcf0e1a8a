use std::time::Duration;

use super::*;
use crate::failure::{FailureCause, JobFailure};

fn splits(files: &[u32]) -> Vec<SplitSpec> {
    files
        .iter()
        .enumerate()
        .map(|(i, &file)| SplitSpec {
            index: i as u32,
            file,
            start: 0,
            end: 10,
        })
        .collect()
}

fn driver(files: &[u32], reducers: u32) -> MapReduceDriver {
    let config = DriverConfig::new("job-1", "wordcount", reducers, "n0");
    MapReduceDriver::new(config, splits(files)).unwrap()
}

fn drain(driver: &mut MapReduceDriver) -> Vec<Job> {
    std::iter::from_fn(|| driver.poll_job()).collect()
}

fn map_result(job: &Job, node: &str, records: u64, pairs: &[u64]) -> JobResult {
    let task: MapTask = serde_json::from_str(&job.data).unwrap();
    let report = MapReport {
        node: node.into(),
        task: task.split.index,
        records,
        partitions: pairs
            .iter()
            .map(|&pairs| PartitionInfo {
                pairs,
                bytes: pairs * 3,
            })
            .collect(),
    };
    let out = serde_json::to_string(&report).unwrap();
    JobResult::success(job.id.clone(), out, node, 1, Duration::ZERO)
}

fn reduce_task(job: &Job) -> ReduceTask {
    serde_json::from_str(&job.data).unwrap()
}

fn reduce_result(job: &Job, report: &ReduceReport) -> JobResult {
    let out = serde_json::to_string(report).unwrap();
    JobResult::success(job.id.clone(), out, "x", 1, Duration::ZERO)
}

fn done(job: &Job, node: &str) -> JobResult {
    let task = reduce_task(job);
    let report = ReduceReport::Done {
        node: node.into(),
        partition: task.partition,
        keys: 1,
        bytes: 5,
    };
    reduce_result(job, &report)
}

#[test]
fn runs_map_then_reduce_then_merge() {
    let mut d = driver(&[0, 0, 1], 3);
    let maps = drain(&mut d);
    assert_eq!(maps.len(), 3);
    assert!(maps
        .iter()
        .all(|j| j.kind == MAP_KIND && j.max_attempts == 3));
    assert_eq!(maps[0].id.as_str(), "job-1.m0.g1");
    d.on_result(&map_result(&maps[0], "n1", 4, &[1, 0, 2]));
    d.on_result(&map_result(&maps[1], "n2", 6, &[1, 0, 0]));
    assert_eq!(d.phase(), Phase::Map);
    assert!(d.poll_job().is_none(), "reduces wait for every map");
    d.on_result(&map_result(&maps[2], "n1", 5, &[0, 0, 1]));
    assert_eq!(d.phase(), Phase::Reduce);
    let reduces = drain(&mut d);
    // Partition 1 is empty everywhere: no task for it.
    assert_eq!(reduces.len(), 2);
    let r0 = reduce_task(&reduces[0]);
    assert_eq!(r0.partition, 0);
    let holders: Vec<(&str, u32)> = r0
        .sources
        .iter()
        .map(|s| (s.node.as_str(), s.task))
        .collect();
    assert_eq!(holders, [("n1", 0), ("n2", 1)]);
    let offsets: Vec<(u32, u64)> = r0
        .splits
        .iter()
        .map(|s| (s.file, s.record_offset))
        .collect();
    assert_eq!(offsets, [(0, 0), (0, 4), (1, 0)]);
    d.on_result(&done(&reduces[0], "n2"));
    d.on_result(&done(&reduces[1], "n1"));
    assert_eq!(d.phase(), Phase::Merge);
    let outputs: Vec<(String, u32)> = d
        .outputs()
        .into_iter()
        .map(|o| (o.node, o.partition))
        .collect();
    assert_eq!(outputs, [("n2".to_owned(), 0), ("n1".to_owned(), 2)]);
    let stats = d.stats();
    assert_eq!(
        (stats.records, stats.shuffle_pairs, stats.output_keys),
        (15, 5, 2)
    );
    assert_eq!((stats.map_tasks, stats.reduce_tasks), (3, 2));
}

/// Reports come from other nodes: counts at the top of `u64` saturate the
/// driver's figures (and the record offsets) instead of overflowing.
#[test]
fn huge_counts_in_reports_saturate() {
    let mut d = driver(&[0, 0, 0], 1);
    let maps = drain(&mut d);
    let huge = |job: &Job, node: &str| {
        let task: MapTask = serde_json::from_str(&job.data).unwrap();
        let report = MapReport {
            node: node.into(),
            task: task.split.index,
            records: u64::MAX,
            partitions: vec![PartitionInfo {
                pairs: u64::MAX,
                bytes: u64::MAX,
            }],
        };
        JobResult::success(
            job.id.clone(),
            serde_json::to_string(&report).unwrap(),
            node,
            1,
            Duration::ZERO,
        )
    };
    d.on_result(&huge(&maps[0], "n1"));
    d.on_result(&huge(&maps[1], "n2"));
    d.on_result(&huge(&maps[2], "n1"));
    assert_eq!(d.phase(), Phase::Reduce);
    let stats = d.stats();
    assert_eq!(
        (stats.records, stats.shuffle_pairs, stats.shuffle_bytes),
        (u64::MAX, u64::MAX, u64::MAX)
    );
    let reduces = drain(&mut d);
    let offsets: Vec<u64> = reduce_task(&reduces[0])
        .splits
        .iter()
        .map(|s| s.record_offset)
        .collect();
    assert_eq!(offsets, [0, u64::MAX, u64::MAX]);
    // n1 goes down: its two maps run again, and their counts come off
    // the saturated figures without underflowing.
    d.on_node_down("n1");
    assert_eq!(d.phase(), Phase::Map);
    let huge_keys = ReduceReport::Done {
        node: "n2".into(),
        partition: 0,
        keys: u64::MAX,
        bytes: u64::MAX,
    };
    d.on_result(&reduce_result(&reduces[0], &huge_keys));
}

#[test]
fn empty_input_is_an_empty_result() {
    let mut d = driver(&[], 4);
    assert_eq!(d.phase(), Phase::Merge);
    assert!(d.poll_job().is_none());
    assert!(d.outputs().is_empty());
}

#[test]
fn bad_configs_are_refused() {
    let bad_id = DriverConfig::new("has space", "wordcount", 1, "n0");
    assert!(matches!(
        MapReduceDriver::new(bad_id, Vec::new()),
        Err(MapReduceError::InvalidJobId { .. })
    ));
    let zero = DriverConfig::new("j", "wordcount", 0, "n0");
    assert!(matches!(
        MapReduceDriver::new(zero, Vec::new()),
        Err(MapReduceError::ZeroReducers)
    ));
    let huge = DriverConfig::new("j", "wordcount", MAX_REDUCERS + 1, "n0");
    assert!(matches!(
        MapReduceDriver::new(huge, Vec::new()),
        Err(MapReduceError::TooManyReducers { .. })
    ));
    let mut numbered = splits(&[0, 0]);
    numbered[1].index = 5;
    let config = DriverConfig::new("j", "wordcount", 1, "n0");
    assert!(matches!(
        MapReduceDriver::new(config, numbered),
        Err(MapReduceError::SplitNumbering {
            position: 1,
            index: 5
        })
    ));
}

#[test]
fn lost_map_outputs_are_rerun_and_reduces_wait_for_them() {
    let mut d = driver(&[0, 0], 1);
    let maps = drain(&mut d);
    d.on_result(&map_result(&maps[0], "n1", 1, &[1]));
    d.on_result(&map_result(&maps[1], "n2", 1, &[1]));
    let reduce = drain(&mut d).pop().unwrap();
    // n2 dies while the reduce runs: its map output is produced again.
    d.on_node_down("n2");
    assert_eq!(d.phase(), Phase::Map);
    let rerun = drain(&mut d);
    assert_eq!(rerun.len(), 1);
    assert_eq!(rerun[0].id.as_str(), "job-1.m1.g4");
    // The running reduce could not fetch it: it waits for the re-run map.
    let missing = ReduceReport::Missing {
        node: "n3".into(),
        partition: 0,
        lost: vec![SourceLocation {
            node: "n2".into(),
            task: 1,
        }],
    };
    d.on_result(&reduce_result(&reduce, &missing));
    assert!(d.poll_job().is_none());
    d.on_result(&map_result(&rerun[0], "n3", 1, &[1]));
    let again = drain(&mut d);
    assert_eq!(again.len(), 1);
    let sources: Vec<String> = reduce_task(&again[0])
        .sources
        .into_iter()
        .map(|s| s.node)
        .collect();
    assert_eq!(sources, ["n1", "n3"]);
    d.on_result(&done(&again[0], "n1"));
    assert_eq!(d.phase(), Phase::Merge);
    assert_eq!(d.stats().recoveries, 1);
    assert_eq!(d.stats().records, 2);
    // A late result of the first reduce attempt is ignored.
    d.on_result(&done(&reduce, "n3"));
    assert_eq!(d.stats().stale_results, 1);
}

#[test]
fn missing_report_from_a_live_holder_reruns_the_map() {
    let mut d = driver(&[0], 1);
    let maps = drain(&mut d);
    d.on_result(&map_result(&maps[0], "n1", 1, &[1]));
    let reduce = drain(&mut d).pop().unwrap();
    let missing = ReduceReport::Missing {
        node: "n2".into(),
        partition: 0,
        lost: vec![SourceLocation {
            node: "n1".into(),
            task: 0,
        }],
    };
    d.on_result(&reduce_result(&reduce, &missing));
    let rerun = drain(&mut d);
    assert_eq!(rerun.len(), 1);
    assert_eq!(rerun[0].kind, MAP_KIND);
}

#[test]
fn lost_reduce_outputs_are_reduced_again() {
    let mut d = driver(&[0], 2);
    let maps = drain(&mut d);
    d.on_result(&map_result(&maps[0], "n1", 2, &[1, 1]));
    let reduces = drain(&mut d);
    d.on_result(&done(&reduces[0], "n1"));
    d.on_result(&done(&reduces[1], "n2"));
    assert_eq!(d.phase(), Phase::Merge);
    // A node holding nothing needed changes nothing.
    d.on_node_down("n9");
    assert_eq!(d.phase(), Phase::Merge);
    d.on_node_down("n2");
    assert_eq!(d.phase(), Phase::Reduce);
    let again = drain(&mut d);
    assert_eq!(again.len(), 1);
    assert_eq!(reduce_task(&again[0]).partition, 1);
    d.on_result(&done(&again[0], "n1"));
    d.on_output_lost(0);
    let again = drain(&mut d);
    assert_eq!(reduce_task(&again[0]).partition, 0);
    d.on_result(&done(&again[0], "n1"));
    assert_eq!(d.phase(), Phase::Merge);
    assert_eq!(d.stats().output_keys, 2);
}

#[test]
fn failed_tasks_and_bad_reports_fail_the_job() {
    let mut d = driver(&[0, 1], 1);
    let maps = drain(&mut d);
    let failure = JobFailure::new(FailureCause::Timeout, "too slow");
    d.on_result(&JobResult::failure(
        maps[0].id.clone(),
        failure,
        "n1",
        3,
        Duration::ZERO,
    ));
    assert_eq!(d.phase(), Phase::Failed);
    assert!(matches!(
        d.take_error(),
        Some(MapReduceError::TaskFailed { .. })
    ));
    d.on_result(&map_result(&maps[1], "n1", 1, &[1]));
    assert!(d.poll_job().is_none());

    let mut d = driver(&[0], 1);
    let maps = drain(&mut d);
    d.on_result(&JobResult::success(
        maps[0].id.clone(),
        "{}",
        "n1",
        1,
        Duration::ZERO,
    ));
    assert!(matches!(
        d.take_error(),
        Some(MapReduceError::BadReport { .. })
    ));
}

#[test]
fn recoveries_are_bounded() {
    let mut config = DriverConfig::new("j", "wordcount", 1, "n0");
    config.max_recoveries = 2;
    let mut d = MapReduceDriver::new(config, splits(&[0])).unwrap();
    for _ in 0..3 {
        let map = drain(&mut d).pop().unwrap();
        d.on_result(&map_result(&map, "n1", 1, &[1]));
        drain(&mut d);
        d.on_node_down("n1");
    }
    assert_eq!(d.phase(), Phase::Failed);
    assert!(matches!(
        d.take_error(),
        Some(MapReduceError::TooManyRecoveries { limit: 2 })
    ));
}
