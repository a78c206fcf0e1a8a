//! The cluster secret as the node holds it: never printed, never logged.

use std::fmt;
use std::path::{Path, PathBuf};

/// The secret nodes on loopback use when none is configured. It is public
/// (it is in this source), so it only protects a developer's own machine.
const DEVELOPMENT_SECRET: &str = "jobmesh-development-secret-not-for-production";

/// Where a [`ClusterSecret`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum SecretSource {
    /// A secret file.
    File(PathBuf),
    /// The built-in development secret.
    Development,
}

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretError {
    /// The file could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty or only whitespace.
    #[error("secret file {} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The shared cluster secret. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    value: String,
    source: SecretSource,
}

impl ClusterSecret {
    /// Reads a secret file: its contents, trimmed, must not be empty.
    ///
    /// # Errors
    ///
    /// [`SecretError::Read`] or [`SecretError::Empty`].
    pub(crate) fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(SecretError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(ClusterSecret {
            value: value.to_owned(),
            source: SecretSource::File(path.to_owned()),
        })
    }

    /// The built-in development secret (loopback only).
    pub fn development() -> Self {
        ClusterSecret {
            value: DEVELOPMENT_SECRET.to_owned(),
            source: SecretSource::Development,
        }
    }

    /// The secret for a client command: the file if given, else the
    /// development secret.
    ///
    /// # Errors
    ///
    /// See [`ClusterSecret::from_file`].
    pub(crate) fn for_client(file: Option<&Path>) -> Result<Self, SecretError> {
        file.map_or_else(|| Ok(Self::development()), Self::from_file)
    }

    /// The secret's bytes, for the transport's handshake.
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }

    /// The token an external client presents to nodes sharing this secret.
    pub fn client_token(&self) -> String {
        cluster_router::client_token(&cluster_router::Secret::from(self.expose()))
    }

    /// Where it came from.
    pub(crate) fn source(&self) -> &SecretSource {
        &self.source
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSecret")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}
