//! TLS (rustls, `ring` provider) for listeners and for `wss://` dialling.
//!
//! TLS protects the bytes on the wire; it does not replace the cluster's
//! own authentication: nodes still prove the cluster secret to each other
//! (HMAC handshake) and clients still present the client token, inside
//! the TLS session.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;
#[allow(deprecated)]
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::TransportError;
use crate::stream::Connection;

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// Which file (`certificate`, `private key`, `CA certificate`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM text holds no usable item of the expected kind.
    #[error("invalid {what}: {reason}")]
    Pem {
        /// Which item.
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration refused")]
    Rustls(#[from] rustls::Error),
}

/// TLS settings of a node or client: a certificate and key to serve with
/// (optional for a pure client), and the CA certificates that peers'
/// certificates must chain to (needed to dial `wss://`).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Option<Arc<ServerConfig>>,
    client: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("serves", &self.server.is_some())
            .field("verifies_peers", &self.client.is_some())
            .finish()
    }
}

/// rustls with *ring*: no C toolchain or cmake needed (aws-lc-rs would
/// need both). rustls 0.23.48 deprecates it for lacking post-quantum key
/// exchange; the classical suites (X25519, P-256, P-384) remain, and
/// docs/security.md says so.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_provider())
}

fn pem_error(what: &'static str, err: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        reason: err.to_string(),
    }
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, "no CERTIFICATE section"));
    }
    Ok(certs)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl TlsConfig {
    /// Settings from PEM text: `cert_chain` and `key` to serve TLS with
    /// (both or neither), `ca` to verify the peers this side dials.
    ///
    /// # Errors
    ///
    /// [`TlsError::Pem`] for unparsable PEM, [`TlsError::Rustls`] for a
    /// key that does not match the certificate or an unusable CA.
    pub fn from_pem(
        cert_chain: Option<&[u8]>,
        key: Option<&[u8]>,
        ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let server = match (cert_chain, key) {
            (Some(chain), Some(key)) => Some(Arc::new(server_config(chain, key)?)),
            (None, None) => None,
            _ => {
                return Err(pem_error(
                    "TLS settings",
                    "a certificate and a private key go together",
                ))
            }
        };
        let client = ca.map(client_config).transpose()?.map(Arc::new);
        Ok(TlsConfig { server, client })
    }

    /// [`TlsConfig::from_pem`] with the PEM read from files.
    ///
    /// # Errors
    ///
    /// [`TlsError::Read`], or as [`TlsConfig::from_pem`].
    pub fn from_files(
        cert_chain: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let chain = cert_chain.map(|p| read("certificate", p)).transpose()?;
        let key = key.map(|p| read("private key", p)).transpose()?;
        let ca = ca.map(|p| read("CA certificate", p)).transpose()?;
        Self::from_pem(chain.as_deref(), key.as_deref(), ca.as_deref())
    }

    /// Whether a listener with these settings serves TLS.
    pub fn serves(&self) -> bool {
        self.server.is_some()
    }

    /// The rustls server settings (for serving other protocols, such as
    /// HTTPS, with the same certificate).
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server.clone()
    }

    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.server.clone().map(TlsAcceptor::from)
    }

    fn connector(&self) -> Option<TlsConnector> {
        self.client.clone().map(TlsConnector::from)
    }
}

fn server_config(chain: &[u8], key: &[u8]) -> Result<ServerConfig, TlsError> {
    let chain = certs("certificate", chain)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_error("private key", e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}

fn client_config(ca: &[u8]) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs("CA certificate", ca)? {
        roots.add(cert)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl<'a> {
    pub(crate) tls: bool,
    /// `host:port` as written.
    pub(crate) host_port: &'a str,
    /// The host without port or IPv6 brackets (the TLS server name).
    pub(crate) host: &'a str,
}

pub(crate) fn parse_url(url: &str) -> Option<WsUrl<'_>> {
    let (tls, rest) = match url.strip_prefix("wss://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("ws://")?),
    };
    let host_port = rest.split('/').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    (!host.is_empty()).then_some(WsUrl {
        tls,
        host_port,
        host,
    })
}

/// Opens the byte stream under a WebSocket to `url`: TCP for `ws://`, TLS
/// over TCP for `wss://` (verifying the server's certificate against the
/// CA of `tls`). The WebSocket upgrade is the caller's (for example
/// `tokio_tungstenite::client_async_with_config`).
///
/// # Errors
///
/// [`TransportError::InvalidUrl`], [`TransportError::TlsNotConfigured`]
/// for `wss://` without CA certificates, [`TransportError::Connect`] for
/// TCP failures, [`TransportError::Tls`] when the TLS handshake fails
/// (for example an untrusted certificate, or a plaintext server).
pub async fn open_stream(url: &str, tls: Option<&TlsConfig>) -> Result<Connection, TransportError> {
    dial_stream(url, tls, false).await
}

pub(crate) async fn dial_stream(
    url: &str,
    tls: Option<&TlsConfig>,
    gated: bool,
) -> Result<Connection, TransportError> {
    let parsed = parse_url(url).ok_or_else(|| TransportError::InvalidUrl(url.to_owned()))?;
    let connector = match (parsed.tls, tls.and_then(TlsConfig::connector)) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, None) => return Err(TransportError::TlsNotConfigured(url.to_owned())),
    };
    let tcp = TcpStream::connect(parsed.host_port)
        .await
        .map_err(|source| TransportError::Connect {
            url: url.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let Some(connector) = connector else {
        return Ok(Connection::plain(tcp, gated));
    };
    let name = ServerName::try_from(parsed.host.to_owned())
        .map_err(|_| TransportError::InvalidUrl(url.to_owned()))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|source| TransportError::Tls {
            url: url.to_owned(),
            source,
        })?;
    Ok(Connection::tls(tokio_rustls::TlsStream::Client(tls), gated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_scheme_host_and_port() {
        let u = parse_url("wss://node-a.example:7700/x").unwrap();
        assert!(u.tls);
        assert_eq!(
            (u.host_port, u.host),
            ("node-a.example:7700", "node-a.example")
        );
        let u = parse_url("ws://127.0.0.1:1").unwrap();
        assert!(!u.tls);
        assert_eq!(u.host, "127.0.0.1");
        let u = parse_url("wss://[::1]:9/").unwrap();
        assert_eq!((u.host_port, u.host), ("[::1]:9", "::1"));
        assert!(parse_url("http://h:1").is_none());
        assert!(parse_url("ws://").is_none());
        assert!(parse_url("wss://[").is_none());
    }

    #[test]
    fn bad_pem_is_refused_plainly() {
        let err = TlsConfig::from_pem(Some(b"nope"), Some(b"nope"), None).unwrap_err();
        assert!(err.to_string().contains("invalid certificate"), "{err}");
        let err = TlsConfig::from_pem(None, None, Some(b"")).unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
        let err = TlsConfig::from_pem(Some(b"x"), None, None).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
    }

    #[test]
    fn generated_certificates_load() {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = ck.cert.pem();
        let key = ck.key_pair.serialize_pem();
        let tls = TlsConfig::from_pem(
            Some(cert.as_bytes()),
            Some(key.as_bytes()),
            Some(cert.as_bytes()),
        )
        .unwrap();
        assert!(tls.serves());
        assert!(tls.connector().is_some());
    }
}
