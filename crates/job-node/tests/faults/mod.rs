//! The fault-injection suite's helpers (`faults_*.rs`): a lab of network
//! namespaces with real `job-node` processes ([`lab`]), a workload that
//! submits jobs throughout and counts every result the caller gets
//! ([`workload`]), a membership observer on every node ([`observer`]) and
//! the ledger line each scenario prints ([`ledger`]).
//!
//! Scenarios run one at a time (they measure timing on a shared 2-core
//! machine). Where namespaces or nftables are not available, each scenario
//! says so on stderr and skips.

#![allow(dead_code, unreachable_pub)]

pub mod lab;
pub mod ledger;
pub mod observer;
pub mod workload;

use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Bound on every wait of the suite.
pub const LIMIT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();

/// Writes a line to the real stderr, visible without `--nocapture` (the
/// test harness only captures the `print!` family).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Starts scenario `name`: waits for any other scenario to finish, then
/// returns a guard, or `None` (after saying why) when the lab cannot run
/// on this machine.
pub fn begin(name: &str) -> Option<MutexGuard<'static, ()>> {
    let available = AVAILABLE.get_or_init(|| lab::available().map_err(|lab::Unavailable(why)| why));
    if let Err(why) = available {
        say(&format!("faults {name}: SKIPPED: {why}"));
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A current-thread runtime for the client namespace's thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The names of nodes `indices` of `lab` (`n1`, ...).
pub fn names(lab: &lab::Lab, indices: &[usize]) -> Vec<String> {
    indices.iter().map(|i| lab.name(*i)).collect()
}

/// Every node's name.
pub fn all(lab: &lab::Lab) -> Vec<String> {
    (1..=lab.count()).map(|i| lab.name(i)).collect()
}

/// Lets the workload run for `d` (scenario pacing, not synchronisation).
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}
