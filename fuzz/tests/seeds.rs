//! Every target accepts its own seeds and a few degenerate inputs, and the
//! committed seeds are current (run on stable with `cargo test` inside
//! `fuzz/`; no libFuzzer needed).

use std::path::{Path, PathBuf};

fn seed_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(name)
}

#[test]
fn targets_run_on_seeds_and_junk() {
    for target in jobmesh_fuzz::targets() {
        let seeds = (target.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", target.name);
        for seed in &seeds {
            (target.run)(seed);
        }
        for junk in [
            &b""[..],
            b"\0",
            b"\xff\xff\xff\xff\xff",
            b"{}",
            b"a@b",
            b"\x01a@b\nc@d\nd",
        ] {
            (target.run)(junk);
        }
    }
}

#[test]
fn committed_seeds_are_current() {
    for target in jobmesh_fuzz::targets() {
        let seeds = (target.seeds)();
        let dir = seed_dir(target.name);
        for (i, seed) in seeds.iter().enumerate() {
            let path = dir.join(format!("seed-{i:02}"));
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run `cargo run --example gen_seeds`)",
                    path.display()
                )
            });
            assert_eq!(
                &on_disk,
                seed,
                "{} is stale (run `cargo run --example gen_seeds`)",
                path.display()
            );
        }
        let files = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        assert_eq!(
            files,
            seeds.len(),
            "{}: stray files (run `cargo run --example gen_seeds`)",
            dir.display()
        );
    }
}

#[test]
fn every_target_has_a_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    for target in jobmesh_fuzz::targets() {
        let file = root
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        let source = std::fs::read_to_string(&file).expect("target source exists");
        assert!(source.contains("fuzz_target!"), "{}", file.display());
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "{} not in Cargo.toml",
            target.name
        );
    }
}
