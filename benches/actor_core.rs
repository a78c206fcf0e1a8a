//! Benchmark placeholder: actor_core (filled in by its issue).
fn main() {}
