//! `job-node mapreduce` against real processes: a local cluster of node
//! processes counts the words of generated files exactly like the
//! single-process reference; bad arguments and inputs give clear errors.

mod common;

use std::path::PathBuf;

use common::{cli, stderr, stdout, NodeProc};
use job_queue::mapreduce::Input;
use test_kit::{
    generate_corpus, reference_inverted_index, reference_word_count, top_words, CorpusConfig,
};

/// A private directory for one test's files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "jobmesh-node-mr-{tag}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, data).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|line| {
            let (word, count) = line.split_once(' ').expect("`word count` line");
            (word.to_owned(), count.parse().expect("a count"))
        })
        .collect()
}

fn corpus(seed: u64, bytes: usize) -> Vec<u8> {
    generate_corpus(&CorpusConfig {
        seed,
        bytes,
        vocabulary: 2_000,
        exponent: 1.0,
    })
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_on_a_local_cluster_equals_the_reference() {
    let scratch = Scratch::new("wc");
    let mut second = corpus(2, 60_000);
    second.extend_from_slice(b" Stra\xdfe caf\xc3\xa9 \xff DON'T");
    let a = scratch.write("a.txt", &corpus(1, 200_000));
    let b = scratch.write("b.txt", &second);
    let inputs = [Input::read(&a).unwrap(), Input::read(&b).unwrap()];
    let expected = reference_word_count(&inputs);
    let out_file = scratch.path("counts.txt");
    let out = cli(&[
        "mapreduce",
        "wordcount",
        &a,
        &b,
        "--splits",
        "5",
        "--reducers",
        "3",
        "--nodes",
        "2",
        "--output",
        &out_file,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(parse_counts(&written), expected);
    assert!(stdout(&out).is_empty(), "the result went to --output");
    let summary = stderr(&out);
    assert!(summary.contains("map tasks"), "{summary}");
    assert!(
        summary.contains("node-1") && summary.contains("node-2"),
        "{summary}"
    );

    // --top K to stdout.
    let out = cli(&[
        "mapreduce",
        "wordcount",
        &a,
        &b,
        "--top",
        "7",
        "--nodes",
        "1",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(parse_counts(&stdout(&out)), top_words(&expected, 7));
}

/// The default command (this process is the whole cluster) on inputs of
/// realistic size: tens of MB, the benchmark's vocabulary, mixed case,
/// non-ASCII letters and invalid UTF-8, several files and a word cut by
/// nothing but the end of a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_in_this_process_equals_the_reference_at_scale() {
    let scratch = Scratch::new("wc-big");
    let big = generate_corpus(&CorpusConfig {
        seed: 42,
        bytes: 24_000_000,
        vocabulary: 20_000,
        exponent: 1.0,
    });
    let mut odd = corpus(3, 2_000_000);
    odd.extend_from_slice(b" Stra\xdfe caf\xc3\xa9 \xff DON'T EXTRAORDINARILY extraordinarily");
    let a = scratch.write("big.txt", &big);
    let b = scratch.write("odd.txt", &odd);
    let expected = reference_word_count(&[Input::read(&a).unwrap(), Input::read(&b).unwrap()]);
    let out_file = scratch.path("counts.txt");
    let out = cli(&["mapreduce", "wordcount", &a, &b, "--output", &out_file]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(parse_counts(&written), expected);
    let summary = stderr(&out);
    assert!(
        !summary.contains("starting a local cluster"),
        "no node process is started by default: {summary}"
    );
    assert!(summary.contains("mr-local-"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_on_an_existing_cluster() {
    let node = NodeProc::start("mr-seed", &[]).await;
    let scratch = Scratch::new("index");
    let a = scratch.write("one.txt", b"x y, x");
    let b = scratch.write("two.txt", b"y... X");
    let out = cli(&[
        "mapreduce",
        "index",
        &a,
        &b,
        "--cluster",
        node.url(),
        "--reducers",
        "2",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let expected_entries =
        reference_inverted_index(&[Input::read(&a).unwrap(), Input::read(&b).unwrap()]);
    assert_eq!(expected_entries.len(), 2);
    assert_eq!(
        stdout(&out),
        format!("x {a}:0,{a}:2,{b}:1\ny {a}:1,{b}:0\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_inputs_are_clear_errors() {
    let scratch = Scratch::new("bad");
    let file = scratch.write("f.txt", b"words");
    let missing = scratch.path("missing.txt");
    let out = cli(&["mapreduce", "wordcount", &missing]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read input"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("missing.txt"), "{}", stderr(&out));

    let cases: [(&[&str], &str); 4] = [
        (
            &["wordcount", &file, "--reducers", "0"],
            "0 is not in 1..=65536",
        ),
        (&["wordcount"], "<INPUT>..."),
        (
            &["index", &file, "--top", "3"],
            "unexpected argument '--top'",
        ),
        (&["grep", &file], "unrecognized subcommand 'grep'"),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = std::iter::once("mapreduce")
            .chain(args.iter().copied())
            .collect();
        let out = cli(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }

    let out = cli(&[
        "mapreduce",
        "wordcount",
        &file,
        "--cluster",
        "ws://127.0.0.1:1",
        "--connect-timeout",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no node of the cluster answered"),
        "{}",
        stderr(&out)
    );
}
