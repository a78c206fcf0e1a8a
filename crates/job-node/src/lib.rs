//! job-node
pub mod cli;
pub mod config;
pub mod http;
pub mod kinds;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod secret;
pub mod supervise;
#[cfg(test)]
mod test_util;
