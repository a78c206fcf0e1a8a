//! The built-in job kinds: `echo`, `sleep`, `sha256` and `exec`.
//!
//! Each kind is a plain async function over the job's data (a string) that
//! returns the result text or a [`KindError`]. They know nothing about the
//! job queue: [`Builtin`] names them, and the node's wiring registers
//! [`Builtin::run`] into the worker's handler registry, mapping
//! [`KindError::is_retryable`] onto the queue's retryable / permanent split.

mod error;
mod exec;
mod hash;
mod simple;

pub(crate) use error::KindError;
pub(crate) use exec::{exec, exec_program, ExecPolicy};
pub(crate) use hash::sha256;
pub(crate) use simple::{echo, sleep};

use std::fmt;
use std::str::FromStr;

use tokio_util::sync::CancellationToken;

/// Where a kind gets its cancellation token, asked only when the kind
/// needs one: a job's context makes its token at the first ask (an
/// allocation, and a lock per wait and check), and `echo`, or a `sha256`
/// short enough to hash in place, never asks.
pub(crate) trait CancelSource: Sync {
    /// The token that fires when the job is cancelled.
    fn token(&self) -> &CancellationToken;
}

impl CancelSource for CancellationToken {
    fn token(&self) -> &CancellationToken {
        self
    }
}

/// One of the built-in job kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub(crate) enum Builtin {
    /// Returns the job data unchanged.
    Echo,
    /// Sleeps for `data` milliseconds.
    Sleep,
    /// Hashes the input N rounds with SHA-256.
    Sha256,
    /// Runs an allow-listed program.
    Exec,
}

impl Builtin {
    /// Every built-in kind, in a stable order.
    pub(crate) const ALL: [Builtin; 4] = [
        Builtin::Echo,
        Builtin::Sleep,
        Builtin::Sha256,
        Builtin::Exec,
    ];

    /// The kind name jobs use (`"echo"`, `"sleep"`, `"sha256"`, `"exec"`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Builtin::Echo => "echo",
            Builtin::Sleep => "sleep",
            Builtin::Sha256 => "sha256",
            Builtin::Exec => "exec",
        }
    }

    /// Runs this kind over `data`. `policy` only matters for [`Builtin::Exec`].
    #[cfg(test)]
    ///
    /// # Errors
    ///
    /// The kind's [`KindError`]; see each function.
    pub(crate) async fn run(self, data: &str, policy: &ExecPolicy) -> Result<String, KindError> {
        self.run_cancellable(data, policy, &CancellationToken::new())
            .await
    }

    /// Like [`run`](Self::run), stopping early with
    /// [`KindError::Cancelled`] when `cancel` fires: `sleep` stops sleeping,
    /// `sha256` stops between rounds, `exec` kills its program (and reaps
    /// it) before it returns. `cancel`'s token is taken only by a kind that
    /// may wait (not `echo`, nor a short `sha256`).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), and [`KindError::Cancelled`].
    pub(crate) async fn run_cancellable(
        self,
        data: &str,
        policy: &ExecPolicy,
        cancel: &impl CancelSource,
    ) -> Result<String, KindError> {
        match self {
            Builtin::Echo => echo(data).await,
            Builtin::Sleep => sleep(data, cancel.token()).await,
            Builtin::Sha256 => sha256(data, cancel).await,
            // Boxed: `exec`'s future is ~18 KB (a child process, its pipes
            // and buffers), and an unboxed one would make this future, and
            // every handler future built on it, that size for every job of
            // every kind; moving it cost an echo job more than the job
            // itself (docs/performance.md, "Seventh round").
            Builtin::Exec => Box::pin(exec(data, policy, cancel.token())).await,
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of the built-in kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown built-in job kind `{0}` (expected echo, sleep, sha256 or exec)")]
pub(crate) struct UnknownKind(pub String);

impl FromStr for Builtin {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Builtin::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Builtin::ALL {
            assert_eq!(kind.name().parse::<Builtin>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.name());
        }
        assert!("ECHO".parse::<Builtin>().is_err());
        assert!("".parse::<Builtin>().is_err());
    }

    /// Every job's handler future holds this one: it must not take the
    /// size of the largest kind's (`exec`'s is ~18 KB), which every job
    /// of every kind would pay for in copies (docs/performance.md,
    /// "Seventh round").
    #[test]
    fn a_kinds_future_is_small_whatever_the_kind() {
        let (policy, cancel) = (ExecPolicy::deny_all(), CancellationToken::new());
        for kind in Builtin::ALL {
            let size = std::mem::size_of_val(&kind.run_cancellable("x", &policy, &cancel));
            assert!(size <= 1024, "{kind}: a {size}-byte future");
        }
    }

    /// `echo` and a short `sha256` finish without a token: a job's context
    /// then makes none.
    #[tokio::test]
    async fn kinds_that_never_wait_ask_for_no_token() {
        struct NoToken;
        impl CancelSource for NoToken {
            fn token(&self) -> &CancellationToken {
                panic!("asked for a token")
            }
        }
        let policy = ExecPolicy::deny_all();
        let echo = Builtin::Echo.run_cancellable("hi", &policy, &NoToken);
        assert_eq!(echo.await.unwrap(), "hi");
        let hash = Builtin::Sha256.run_cancellable("abc", &policy, &NoToken);
        assert_eq!(hash.await.unwrap().len(), 64);
    }

    #[tokio::test]
    async fn run_dispatches_by_kind() {
        let policy = ExecPolicy::deny_all();
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            (
                Builtin::Echo.run("hi", &policy).await,
                Builtin::Sha256.run("abc", &policy).await,
                Builtin::Exec.run(r#"{"program":"true"}"#, &policy).await,
            )
        })
        .await
        .unwrap();
        assert_eq!(out.0.unwrap(), "hi");
        assert_eq!(
            out.1.unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(out.2, Err(KindError::ExecNotAllowed { .. })));
    }
}
