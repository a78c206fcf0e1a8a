//! Benchmark placeholder: mapreduce (filled in by its issue).
fn main() {}
