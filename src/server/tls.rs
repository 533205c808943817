//! TLS for client connections, through rustls (ring provider).
//!
//! A client asks for TLS with an SSLRequest (or PostgreSQL 17's direct TLS); pgwire
//! answers `S` and runs the handshake with the acceptor built here from the PEM
//! certificate chain and private key named in the config file. With `required = true`
//! a client that does not ask for TLS is refused at startup (SQLSTATE 28000), like a
//! `hostssl`-only `pg_hba.conf`.

use crate::error::{Error, Result};
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `[tls]` table of the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Refuse clients that do not use TLS.
    #[serde(default)]
    pub required: bool,
}

/// What the server needs to offer TLS: the acceptor, and the certificate in PEM for
/// SCRAM channel binding (SCRAM-SHA-256-PLUS).
pub struct Tls {
    /// Runs handshakes.
    pub acceptor: TlsAcceptor,
    /// The certificate file's contents.
    pub certificate_pem: Vec<u8>,
    /// Whether clients must use TLS.
    pub required: bool,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Io(format!("cannot read TLS {what} {}: {e}", path.display())))
}

impl Tls {
    /// Loads the certificate and key; every failure names the file and what is wrong.
    pub fn load(config: &TlsConfig) -> Result<Tls> {
        let certificate_pem = read(&config.cert, "certificate")?;
        let key_pem = read(&config.key, "key")?;
        let chain = CertificateDer::pem_slice_iter(&certificate_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::InvalidParameterValue(format!(
                    "TLS certificate {}: {e}",
                    config.cert.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(Error::InvalidParameterValue(format!(
                "TLS certificate {} holds no PEM certificate",
                config.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            Error::InvalidParameterValue(format!("TLS key {}: {e}", config.key.display()))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                Error::InvalidParameterValue(format!(
                    "TLS certificate {} and key {} do not form a usable pair: {e}",
                    config.cert.display(),
                    config.key.display()
                ))
            })?;
        // PostgreSQL 17 clients negotiating TLS directly must see this ALPN name.
        server.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            certificate_pem,
            required: config.required,
        })
    }
}
