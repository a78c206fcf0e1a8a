//! Writes the seed corpora to `fuzz/seeds/<target>/` from the real encoders
//! (each crate's `fuzzing::*_seeds`), replacing what was there.
//!
//! Run from `fuzz/`: `cargo run --example gen_seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in jobmesh_fuzz::targets() {
        let dir = root.join(target.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let seeds = (target.seeds)();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed)?;
        }
        println!("{}: {} seeds", target.name, seeds.len());
    }
    Ok(())
}
