//! Benchmark placeholder: router (filled in by its issue).
fn main() {}
