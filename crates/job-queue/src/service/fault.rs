//! Faults a test can inject into a coordinator (cargo feature
//! `fault-injection`, off by default; never in a release build of a node).

/// A failure to provoke in the coordinator actor with
/// [`Coordinator::inject_fault`](super::Coordinator::inject_fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The handler panics on the message carrying this fault.
    Panic,
    /// The handler panics on the next reply from a worker pool (results or
    /// progress), as a broken invariant in the core would; the results in
    /// that reply are lost with the failed instance, and the restarted
    /// coordinator runs those jobs again.
    PanicOnNextReply,
}
