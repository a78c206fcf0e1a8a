//! Stable-Rust smoke run of every fuzzing entry point (`fuzzing` modules of
//! cluster-transport, cluster-router and job-queue): each runs over the
//! committed seeds in `fuzz/seeds/<target>/` and over a few thousand
//! pseudo-random inputs from a fixed seed, so CI exercises the entry points
//! and their round-trip checks without nightly or libFuzzer. A panic is a
//! finding: shrink it with `cargo +nightly fuzz tmin` (docs/fuzzing.md).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fuzzing entry point.
type EntryPoint = fn(&[u8]);

/// Target name (as in `fuzz/Cargo.toml` and `fuzz/seeds/`) and entry point.
const TARGETS: &[(&str, EntryPoint)] = &[
    (
        "transport_node_frame",
        cluster_transport::fuzzing::node_frame,
    ),
    (
        "transport_client_preauth",
        cluster_transport::fuzzing::client_preauth,
    ),
    (
        "transport_preauth_gate",
        cluster_transport::fuzzing::preauth_gate,
    ),
    ("transport_handshake", cluster_transport::fuzzing::handshake),
    ("router_addr", cluster_router::fuzzing::addr),
    ("router_system_wire", cluster_router::fuzzing::system_wire),
    (
        "router_envelope_header",
        cluster_router::fuzzing::envelope_header,
    ),
    (
        "router_client_envelope",
        cluster_router::fuzzing::client_envelope,
    ),
    (
        "router_system_command_json",
        cluster_router::fuzzing::system_command_json,
    ),
    ("job_queue_wire", job_queue::fuzzing::job_wire),
    (
        "job_queue_client_command",
        job_queue::fuzzing::client_command,
    ),
];

/// Random inputs per target (debug build: a few seconds in all).
const RANDOM_INPUTS: usize = 5_000;

fn seed_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(name)
}

/// The committed seeds of `name`, sorted by file name.
fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = seed_dir(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// One pseudo-random input: raw bytes, a mutated seed, or a splice of two
/// seeds, so that inputs get past the first checks of each decoder.
fn random_input(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => {
            let len = rng.gen_range(0..96);
            (0..len).map(|_| rng.gen()).collect()
        }
        1 | 2 => {
            let mut input = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..5) {
                mutate(rng, &mut input);
            }
            input
        }
        _ => {
            let a = &seeds[rng.gen_range(0..seeds.len())];
            let b = &seeds[rng.gen_range(0..seeds.len())];
            let cut_a = rng.gen_range(0..=a.len());
            let cut_b = rng.gen_range(0..=b.len());
            [&a[..cut_a], &b[cut_b..]].concat()
        }
    }
}

/// Flips, overwrites, inserts or deletes a byte, or truncates.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'@', b'{'];
    if input.is_empty() {
        input.push(rng.gen());
        return;
    }
    let at = rng.gen_range(0..input.len());
    match rng.gen_range(0..5) {
        0 => input[at] ^= 1 << rng.gen_range(0..8),
        1 => input[at] = INTERESTING[rng.gen_range(0..INTERESTING.len())],
        2 => input.insert(at, rng.gen()),
        3 => {
            input.remove(at);
        }
        _ => input.truncate(at),
    }
}

#[test]
fn every_target_has_committed_seeds() {
    let on_disk: Vec<String> = std::fs::read_dir(seed_dir(""))
        .expect("fuzz/seeds")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for (name, _) in TARGETS {
        assert!(on_disk.iter().any(|d| d == name), "no fuzz/seeds/{name}");
        assert!(!seeds(name).is_empty(), "fuzz/seeds/{name} is empty");
    }
    for dir in &on_disk {
        let known = TARGETS.iter().any(|(name, _)| name == dir);
        assert!(known, "fuzz/seeds/{dir} has no entry point here");
    }
}

#[test]
fn entry_points_accept_their_seeds() {
    for (name, run) in TARGETS {
        for seed in seeds(name) {
            run(&seed);
        }
    }
}

#[test]
fn entry_points_survive_random_inputs() {
    for (index, (name, run)) in TARGETS.iter().enumerate() {
        let seeds = seeds(name);
        let mut rng = StdRng::seed_from_u64(0x5eed_f022 + index as u64);
        for _ in 0..RANDOM_INPUTS {
            run(&random_input(&mut rng, &seeds));
        }
    }
}

#[test]
fn degenerate_inputs_are_refused_quietly() {
    let long = vec![b'x'; 70_000];
    let inputs: [&[u8]; 7] = [b"", b"\0", b"\xff\xff\xff\xff", b"{}", b"[]", b"a@b", &long];
    for (_, run) in TARGETS {
        for input in inputs {
            run(input);
        }
    }
}
