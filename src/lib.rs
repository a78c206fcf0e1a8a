//! `jobmesh`: the root package of the workspace. It holds the layered
//! integration suite (`tests/`), the runnable examples (`examples/`) and the
//! benchmarks (`benches/`), which use the crates under `crates/` as
//! dev-dependencies. The library itself is empty: Cargo needs a library or
//! a binary target in a package, and nothing depends on this one.
