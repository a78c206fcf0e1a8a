//! Helpers shared by the benchmarks (each bench target includes this
//! module with `mod support;`).

/// The median of `xs` (the upper one of the two middle values for an even
/// count). Panics on an empty vector.
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
