//! Benchmark placeholder: job_queue (filled in by its issue).
fn main() {}
