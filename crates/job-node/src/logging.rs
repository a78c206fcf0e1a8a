//! Logs through `tracing`, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: this binary's own messages at info,
/// everything else at warn.
pub(crate) const DEFAULT_FILTER: &str = "warn,job_node=info";

/// The filter `RUST_LOG` asks for, or [`DEFAULT_FILTER`]. An unparsable
/// `RUST_LOG` falls back to the default and says so on stderr.
pub(crate) fn filter_from(rust_log: Option<&str>) -> EnvFilter {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => EnvFilter::new(DEFAULT_FILTER),
        Some(spec) => EnvFilter::try_new(spec).unwrap_or_else(|err| {
            eprintln!(
                "job-node: ignoring invalid RUST_LOG {spec:?} ({err}); using {DEFAULT_FILTER:?}"
            );
            EnvFilter::new(DEFAULT_FILTER)
        }),
    }
}

/// Installs the global subscriber: compact lines on stderr, coloured only
/// when stderr is a terminal (a file or a pipe gets plain text). Calling it
/// twice is harmless (the second call does nothing).
pub fn init() {
    use std::io::IsTerminal;
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_explicit_filters() {
        assert_eq!(
            filter_from(None).to_string(),
            EnvFilter::new(DEFAULT_FILTER).to_string()
        );
        assert_eq!(
            filter_from(Some("  ")).to_string(),
            EnvFilter::new(DEFAULT_FILTER).to_string()
        );
        assert_eq!(filter_from(Some("debug")).to_string(), "debug");
        let bad = filter_from(Some("job_node=loud"));
        assert_eq!(bad.to_string(), EnvFilter::new(DEFAULT_FILTER).to_string());
    }
}
