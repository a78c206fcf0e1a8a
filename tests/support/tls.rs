//! Certificates generated at run time (rcgen): a CA and a server
//! certificate for 127.0.0.1 and localhost signed by it, as PEM text and
//! as files for the node processes.

use std::path::{Path, PathBuf};

use cluster_router::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and one server certificate signed by it (PEM).
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl TestPki {
    /// A fresh CA and a certificate for `127.0.0.1` and `localhost`.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        TestPki {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Serves with the certificate and verifies peers against the CA.
    pub fn node(&self) -> TlsConfig {
        TlsConfig::from_pem(
            Some(self.cert.as_bytes()),
            Some(self.key.as_bytes()),
            Some(self.ca.as_bytes()),
        )
        .unwrap()
    }

    /// Verifies servers against the CA (a client).
    pub fn client(&self) -> TlsConfig {
        TlsConfig::from_pem(None, None, Some(self.ca.as_bytes())).unwrap()
    }

    /// Writes `ca.pem`, `cert.pem`, `key.pem` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let files = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&files.0, &self.ca).unwrap();
        std::fs::write(&files.1, &self.cert).unwrap();
        std::fs::write(&files.2, &self.key).unwrap();
        files
    }
}
