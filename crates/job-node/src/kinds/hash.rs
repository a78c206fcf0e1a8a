//! `sha256`: iterated SHA-256.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{CancelSource, KindError};

/// The most rounds one `sha256` job may ask for (about 3 s of one core).
pub(crate) const MAX_SHA256_ROUNDS: u64 = 10_000_000;

/// Above this many rounds the hashing moves to the blocking thread pool so it
/// does not stall the async workers.
const BLOCKING_THRESHOLD: u64 = 4_096;

/// The structured form of `sha256` job data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sha256Request {
    /// The text to hash.
    pub input: String,
    /// How many times to hash (default 1): round 1 hashes `input`, every
    /// later round hashes the previous 32-byte digest.
    #[serde(default = "one")]
    pub rounds: u64,
}

fn one() -> u64 {
    1
}

impl Sha256Request {
    /// Reads job data: a JSON object with an `input` key is the structured
    /// form; anything else is plain text hashed once.
    ///
    /// # Errors
    ///
    /// [`KindError::InvalidJson`] when the object has an `input` key but
    /// does not match [`Sha256Request`], [`KindError::OutOfRange`] when
    /// `rounds` is 0 or above [`MAX_SHA256_ROUNDS`].
    pub(crate) fn from_data(data: &str) -> Result<Self, KindError> {
        let looks_structured = matches!(
            serde_json::from_str::<serde_json::Value>(data),
            Ok(serde_json::Value::Object(ref map)) if map.contains_key("input")
        );
        if !looks_structured {
            return Ok(Sha256Request {
                input: data.to_owned(),
                rounds: 1,
            });
        }
        let request: Sha256Request =
            serde_json::from_str(data).map_err(|source| KindError::InvalidJson {
                kind: "sha256",
                source,
            })?;
        if request.rounds == 0 || request.rounds > MAX_SHA256_ROUNDS {
            return Err(KindError::OutOfRange {
                what: "sha256 rounds",
                value: request.rounds,
                min: 1,
                max: MAX_SHA256_ROUNDS,
            });
        }
        Ok(request)
    }

    /// Computes the lowercase hex digest, synchronously.
    pub(crate) fn digest_hex(&self) -> String {
        self.digest_hex_until(&CancellationToken::new())
            .expect("never cancelled")
    }

    /// Computes the digest, checking `cancel` every 4,096 rounds; `None` if
    /// it fired.
    pub(crate) fn digest_hex_until(&self, cancel: &CancellationToken) -> Option<String> {
        let mut digest = Sha256::digest(self.input.as_bytes());
        for round in 1..self.rounds {
            if round % 4096 == 0 && cancel.is_cancelled() {
                return None;
            }
            digest = Sha256::digest(digest);
        }
        Some(hex::encode(digest))
    }
}

/// `sha256`: hashes the input N rounds and returns the hex digest.
///
/// `data` is either `{"input": "...", "rounds": N}` or plain text (one
/// round). Long computations run on the blocking pool.
///
/// # Errors
///
/// See [`Sha256Request::from_data`]; [`KindError::Aborted`] if the blocking
/// task panicked or was cancelled.
pub(crate) async fn sha256(data: &str, cancel: &impl CancelSource) -> Result<String, KindError> {
    let request = Sha256Request::from_data(data)?;
    if request.rounds < BLOCKING_THRESHOLD {
        return Ok(request.digest_hex());
    }
    let token = cancel.token().clone();
    tokio::task::spawn_blocking(move || request.digest_hex_until(&token))
        .await
        .map_err(|_| KindError::Aborted { kind: "sha256" })?
        .ok_or(KindError::Cancelled { kind: "sha256" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    async fn run(data: &str) -> Result<String, KindError> {
        timeout(LIMIT, sha256(data, &CancellationToken::new()))
            .await
            .expect("sha256 hung")
    }

    fn reference(input: &str, rounds: u64) -> String {
        let mut digest = Sha256::digest(input.as_bytes()).to_vec();
        for _ in 1..rounds {
            digest = Sha256::digest(&digest).to_vec();
        }
        hex::encode(digest)
    }

    #[tokio::test]
    async fn a_cancelled_hash_stops_between_rounds() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let data = format!(r#"{{"input":"x","rounds":{MAX_SHA256_ROUNDS}}}"#);
        let out = timeout(LIMIT, sha256(&data, &cancel)).await.unwrap();
        assert!(matches!(out, Err(KindError::Cancelled { .. })), "{out:?}");
    }

    #[tokio::test]
    async fn plain_text_is_hashed_once() {
        assert_eq!(run("abc").await.unwrap(), ABC);
        assert_eq!(
            run("").await.unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // JSON that is not an object with `input` is plain text too.
        assert_eq!(run("[1,2]").await.unwrap(), reference("[1,2]", 1));
        assert_eq!(run(r#"{"x":1}"#).await.unwrap(), reference(r#"{"x":1}"#, 1));
    }

    #[tokio::test]
    async fn structured_rounds() {
        assert_eq!(run(r#"{"input":"abc"}"#).await.unwrap(), ABC);
        let two = run(r#"{"input":"abc","rounds":2}"#).await.unwrap();
        assert_eq!(two, reference("abc", 2));
        assert_ne!(two, ABC);
        // Enough rounds to take the blocking-pool path.
        let many = run(r#"{"input":"abc","rounds":5000}"#).await.unwrap();
        assert_eq!(many, reference("abc", 5000));
    }

    #[tokio::test]
    async fn structured_errors_are_permanent() {
        for bad in [
            r#"{"input":"abc","rounds":"2"}"#,
            r#"{"input":5}"#,
            r#"{"input":"abc","extra":true}"#,
            r#"{"input":"abc","rounds":-1}"#,
        ] {
            let err = run(bad).await.unwrap_err();
            assert!(matches!(err, KindError::InvalidJson { .. }), "{bad}: {err}");
            assert!(!err.is_retryable());
        }
        let zero = run(r#"{"input":"abc","rounds":0}"#).await.unwrap_err();
        assert!(matches!(zero, KindError::OutOfRange { value: 0, .. }));
        assert_eq!(
            zero.to_string(),
            "sha256 rounds is 0; it must be from 1 to 10000000"
        );
        let huge = run(r#"{"input":"abc","rounds":10000001}"#)
            .await
            .unwrap_err();
        assert!(matches!(huge, KindError::OutOfRange { .. }));
    }
}
