//! The readiness line of a supervised node: once it serves, `job-node
//! start --supervised` prints one [`ReadyReport`] as a JSON line on stdout;
//! whoever started it (the local cluster of `demo` and `mapreduce`, the
//! process tests) reads it to learn the node's URL and HTTP address.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The line a supervised node prints on stdout once it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyReport {
    /// Always `"ready"`.
    pub event: String,
    /// The node's name.
    pub node: String,
    /// Its cluster URL (`ws://127.0.0.1:PORT`).
    pub url: String,
    /// Its HTTP API address, if it serves one.
    #[serde(default)]
    pub http: Option<SocketAddr>,
}

impl ReadyReport {
    /// A report for `node` at `url`.
    pub(crate) fn new(
        node: impl Into<String>,
        url: impl Into<String>,
        http: Option<SocketAddr>,
    ) -> Self {
        ReadyReport {
            event: "ready".to_owned(),
            node: node.into(),
            url: url.into(),
            http,
        }
    }

    /// The one-line JSON form.
    pub(crate) fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a ready report always serialises")
    }

    /// Parses a line; `None` unless it is a ready report.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str::<ReadyReport>(line)
            .ok()
            .filter(|r| r.event == "ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_report_round_trip() {
        let report = ReadyReport::new(
            "node-1",
            "ws://127.0.0.1:4000",
            Some("127.0.0.1:8080".parse().unwrap()),
        );
        assert_eq!(ReadyReport::parse(&report.to_line()), Some(report));
        assert_eq!(
            ReadyReport::parse(r#"{"event":"other","node":"a","url":"b"}"#),
            None
        );
        assert_eq!(ReadyReport::parse("starting..."), None);
    }
}
