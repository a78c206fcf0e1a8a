use super::*;
use clap::error::ErrorKind;
use clap::Parser;
use job_queue::mapreduce::{DriverStats, NodeTasks, PhaseTimings, Posting};

use crate::cli::{Cli, Command};

fn parse(args: &[&str]) -> Result<MapReduceArgs, clap::Error> {
    let cli = Cli::try_parse_from(["job-node", "mapreduce"].iter().chain(args))?;
    match cli.command {
        Some(Command::Mapreduce(args)) => Ok(args),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wordcount_and_index_arguments() {
    let args = parse(&[
        "wordcount",
        "a.txt",
        "b.txt",
        "--splits",
        "16",
        "--top",
        "10",
    ])
    .unwrap();
    let MapReduceJob::Wordcount(wc) = args.job else {
        panic!("expected wordcount");
    };
    assert_eq!(
        wc.run.inputs,
        [PathBuf::from("a.txt"), PathBuf::from("b.txt")]
    );
    assert_eq!((wc.run.splits, wc.run.reducers, wc.top), (16, 4, Some(10)));
    assert_eq!((wc.run.nodes, wc.run.workers), (None, None));
    assert!(wc.run.cluster.is_none());
    let args = parse(&[
        "index",
        "x",
        "--cluster",
        "ws://127.0.0.1:7700",
        "--reducers",
        "3",
        "--output",
        "o",
    ])
    .unwrap();
    let MapReduceJob::Index(index) = args.job else {
        panic!("expected index");
    };
    assert_eq!(index.run.cluster.as_deref(), Some("ws://127.0.0.1:7700"));
    assert_eq!(index.run.output, Some(PathBuf::from("o")));
}

#[test]
fn bad_arguments_are_refused() {
    let cases: &[(&[&str], ErrorKind)] = &[
        (&["wordcount"], ErrorKind::MissingRequiredArgument),
        (
            &["wordcount", "a", "--reducers", "0"],
            ErrorKind::ValueValidation,
        ),
        (
            &["wordcount", "a", "--reducers", "70000"],
            ErrorKind::ValueValidation,
        ),
        (
            &["wordcount", "a", "--splits", "0"],
            ErrorKind::ValueValidation,
        ),
        (
            &["wordcount", "a", "--top", "0"],
            ErrorKind::ValueValidation,
        ),
        (&["index", "a", "--top", "3"], ErrorKind::UnknownArgument),
        (
            &["index", "a", "--cluster", "ws://h:1", "--nodes", "2"],
            ErrorKind::ArgumentConflict,
        ),
        (
            &["index", "a", "--secret-file", "s"],
            ErrorKind::MissingRequiredArgument,
        ),
        (&["sort", "a"], ErrorKind::InvalidSubcommand),
    ];
    for (args, kind) in cases {
        let err = parse(args).unwrap_err();
        assert_eq!(err.kind(), *kind, "{args:?}: {err}");
    }
}

#[test]
fn unreadable_inputs_name_the_file() {
    let err = read_inputs(&[PathBuf::from("/nonexistent/jobmesh-input")]).unwrap_err();
    assert!(format!("{err:#}").contains("cannot read input /nonexistent/jobmesh-input"));
    let err = read_inputs(&[std::env::temp_dir()]).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn result_lines() {
    let counts = [
        ("a".to_owned(), 2),
        ("b".to_owned(), 5),
        ("c".to_owned(), 2),
    ];
    assert_eq!(render_word_counts(&counts, None), "a 2\nb 5\nc 2\n");
    assert_eq!(render_word_counts(&counts, Some(2)), "b 5\na 2\n");
    let postings = |v: &[(u32, u64)]| -> Vec<Posting> {
        v.iter()
            .map(|&(file, position)| Posting { file, position })
            .collect()
    };
    let entries = [
        ("x".to_owned(), postings(&[(0, 0), (0, 2), (1, 1)])),
        ("y".to_owned(), postings(&[(1, 0)])),
    ];
    let inputs = ["one.txt".to_owned(), "two.txt".to_owned()];
    assert_eq!(
        render_index(&entries, &inputs),
        "x one.txt:0,one.txt:2,two.txt:1\ny two.txt:0\n"
    );
}

#[test]
fn summary_has_phases_and_nodes() {
    let nodes = [NodeTasks {
        node: "node-1".into(),
        maps: 3,
        reduces: 1,
        failed: 0,
        busy: Duration::from_millis(40),
    }];
    let timings = PhaseTimings {
        map: Duration::from_millis(30),
        ..PhaseTimings::default()
    };
    let text = render_summary(
        2_000_000,
        Duration::from_millis(100),
        &DriverStats::default(),
        &timings,
        &nodes,
    );
    assert!(text.contains("2.00 MB in 100 ms (20.0 MB/s)"), "{text}");
    assert!(text.contains("map 30 ms"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("node-1") && l.contains(" 3 ")),
        "{text}"
    );
}
