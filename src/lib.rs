//! `jobmesh`: the root package of the workspace. It re-exports the layered
//! crates so that the integration suite (`tests/`), the examples
//! (`examples/`) and the benchmarks (`benches/`) can name them in one place.

pub use actor_core;
pub use cluster_router;
pub use cluster_transport;
pub use job_queue;
