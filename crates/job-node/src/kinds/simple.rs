//! `echo` and `sleep`.

use std::time::Duration;

use super::KindError;

/// The longest `sleep` accepted: one hour.
pub(crate) const MAX_SLEEP_MS: u64 = 3_600_000;

/// `echo`: returns the job data unchanged.
///
/// # Errors
///
/// Never fails; the `Result` keeps the kinds uniform.
pub(crate) async fn echo(data: &str) -> Result<String, KindError> {
    Ok(data.to_owned())
}

/// The factor by which `sleep` stretches its sleep on this node: the
/// test-only variable `JOBMESH_TEST_SLOWDOWN` (a whole number from 1 to
/// 100, default 1), read once. It makes a node slow for the scheduling
/// tests and benchmarks (a heterogeneous cluster on one machine); it is
/// not a setting for production use.
pub(crate) fn test_slowdown() -> u64 {
    static FACTOR: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *FACTOR.get_or_init(|| {
        std::env::var("JOBMESH_TEST_SLOWDOWN")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|f| (1..=100).contains(f))
            .unwrap_or(1)
    })
}

/// `sleep`: waits `data` milliseconds (surrounding whitespace allowed) and
/// returns the number of milliseconds slept.
///
/// # Errors
///
/// [`KindError::InvalidSleep`] when `data` is not a whole number, and
/// [`KindError::OutOfRange`] above [`MAX_SLEEP_MS`].
///
/// # Cancel safety
///
/// Cancel safe: dropping the future stops the sleep.
pub(crate) async fn sleep(
    data: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<String, KindError> {
    let trimmed = data.trim();
    let ms: u64 = trimmed.parse().map_err(|_| KindError::InvalidSleep {
        data: trimmed.chars().take(64).collect(),
    })?;
    if ms > MAX_SLEEP_MS {
        return Err(KindError::OutOfRange {
            what: "sleep milliseconds",
            value: ms,
            min: 0,
            max: MAX_SLEEP_MS,
        });
    }
    let slept = Duration::from_millis(ms.saturating_mul(test_slowdown()));
    tokio::select! {
        () = tokio::time::sleep(slept) => Ok(ms.to_string()),
        () = cancel.cancelled() => Err(KindError::Cancelled { kind: "sleep" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{timeout, Instant};

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn echo_returns_data() {
        let out = timeout(LIMIT, echo("{\"a\": 1} ünïcode")).await.unwrap();
        assert_eq!(out.unwrap(), "{\"a\": 1} ünïcode");
        assert_eq!(timeout(LIMIT, echo("")).await.unwrap().unwrap(), "");
    }

    #[tokio::test]
    async fn sleep_waits_and_reports() {
        let start = Instant::now();
        let out = timeout(LIMIT, sleep(" 30\n", &Default::default()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, "30");
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(
            timeout(LIMIT, sleep("0", &Default::default()))
                .await
                .unwrap()
                .unwrap(),
            "0"
        );
    }

    #[tokio::test]
    async fn a_cancelled_sleep_ends_at_once() {
        let cancel = tokio_util::sync::CancellationToken::new();
        let start = Instant::now();
        let sleeping = sleep("60000", &cancel);
        cancel.cancel();
        let err = timeout(LIMIT, sleeping).await.unwrap().unwrap_err();
        assert!(matches!(err, KindError::Cancelled { .. }), "{err}");
        assert!(start.elapsed() < LIMIT);
    }

    #[tokio::test]
    async fn sleep_rejects_bad_data() {
        for bad in ["", "abc", "-5", "1.5", "10ms"] {
            let err = timeout(LIMIT, sleep(bad, &Default::default()))
                .await
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(err, KindError::InvalidSleep { .. }),
                "{bad}: {err}"
            );
            assert!(!err.is_retryable());
        }
        let err = timeout(LIMIT, sleep("3600001", &Default::default()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            err,
            KindError::OutOfRange {
                value: 3_600_001,
                ..
            }
        ));
        assert!(err.to_string().contains("3600000"), "{err}");
    }
}
