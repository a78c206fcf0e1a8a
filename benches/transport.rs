//! Benchmark placeholder: transport (filled in by its issue).
fn main() {}
