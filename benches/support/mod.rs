//! Helpers shared by the benchmarks (each bench target includes this
//! module with `mod support;`).

/// Raw WebSocket baselines (ping-pong, echo, one-way) over loopback, printed
/// next to the in-process figures of the same run.
pub(crate) mod raw_ws;

/// The median of `xs` (the upper one of the two middle values for an even
/// count). Panics on an empty vector.
#[allow(dead_code)] // the benches that time whole runs use median_duration
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The whole number in the environment variable `name`, else `default`.
#[allow(dead_code)] // not every bench target reads its size from the environment
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `xs` (the upper middle one for an even count). Panics on
/// an empty vector.
#[allow(dead_code)] // not every bench target times whole runs
pub(crate) fn median_duration(mut xs: Vec<std::time::Duration>) -> std::time::Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// `d` in milliseconds.
#[allow(dead_code)] // not every bench target prints milliseconds
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
