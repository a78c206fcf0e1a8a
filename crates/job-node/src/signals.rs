//! When a node should stop: SIGINT, SIGTERM, or (when supervised) its
//! stdin pipe closing because the parent went away.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why shutdown began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
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

/// Resolves at the first SIGINT or SIGTERM, or, with `watch_stdin`, when
/// stdin reaches end of file.
///
/// # Errors
///
/// The error installing a signal handler.
///
/// # Cancel safety
///
/// Cancel safe.
pub async fn shutdown_requested(watch_stdin: bool) -> std::io::Result<ShutdownReason> {
    let parent = async {
        if watch_stdin {
            wait_for_eof(tokio::io::stdin()).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let terminated = terminate.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| ShutdownReason::Interrupt),
        _ = terminated => Ok(ShutdownReason::Terminate),
        () = parent => Ok(ShutdownReason::ParentGone),
    }
}

/// Reads and discards until end of file or a read error.
pub async fn wait_for_eof<R: AsyncRead + Unpin>(mut reader: R) {
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
