//! When a node should stop: SIGINT, SIGTERM, or (when supervised) its
//! stdin pipe closing because the parent went away.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why shutdown began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ShutdownReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// The supervising parent closed our stdin (or died).
    ParentGone,
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownReason::Interrupt => "SIGINT",
            ShutdownReason::Terminate => "SIGTERM",
            ShutdownReason::ParentGone => "parent process gone",
        })
    }
}

/// Signal handlers installed ahead of time, so that a signal arriving
/// before anyone waits is not lost (nor fatal: without a handler SIGTERM
/// kills the process outright).
#[derive(Debug)]
pub(crate) struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    watch_stdin: bool,
}

impl ShutdownSignals {
    /// Installs the SIGINT and SIGTERM handlers now; with `watch_stdin`,
    /// [`wait`](Self::wait) also ends when stdin reaches end of file.
    ///
    /// # Errors
    ///
    /// The error installing a signal handler.
    pub(crate) fn install(watch_stdin: bool) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                watch_stdin,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignals { watch_stdin })
        }
    }

    /// Resolves at the first SIGINT or SIGTERM (or stdin's end of file).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn wait(&mut self) -> ShutdownReason {
        let watch_stdin = self.watch_stdin;
        let parent = async move {
            if watch_stdin {
                wait_for_eof(tokio::io::stdin()).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => ShutdownReason::Interrupt,
                _ = self.terminate.recv() => ShutdownReason::Terminate,
                () = parent => ShutdownReason::ParentGone,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => ShutdownReason::Interrupt,
                () = parent => ShutdownReason::ParentGone,
            }
        }
    }
}

/// Reads and discards until end of file or a read error.
pub(crate) async fn wait_for_eof<R: AsyncRead + Unpin>(mut reader: R) {
    let mut buf = [0u8; 256];
    while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::time::timeout;

    #[tokio::test]
    async fn eof_ends_the_wait_and_data_does_not() {
        let (mut parent, child) = tokio::io::duplex(64);
        let waiter = tokio::spawn(wait_for_eof(child));
        parent.write_all(b"still here\n").await.unwrap();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(parent);
        timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn reasons_display() {
        assert_eq!(ShutdownReason::Terminate.to_string(), "SIGTERM");
        assert_eq!(
            ShutdownReason::ParentGone.to_string(),
            "parent process gone"
        );
    }
}
