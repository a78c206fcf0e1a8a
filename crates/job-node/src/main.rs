//! The `job-node` binary.
fn main() {}
