//! TLS for `tessera shell --connect`, with libpq's meanings of `sslmode`, so a
//! connection string that works with psql works with the shell.
//!
//! tokio-postgres knows `sslmode` disable / prefer / require and leaves certificate
//! checks to the TLS connector; libpq adds `verify-ca` and `verify-full` and the
//! `sslrootcert` file. [`split_tls_options`] takes those out of the connection string
//! before tokio-postgres parses it, and [`connector`] builds the rustls configuration
//! each mode means:
//!
//! - `disable`: plaintext.
//! - `prefer` (the default, as in libpq): TLS when the server offers it, else plaintext.
//! - `require`: TLS or no connection.
//! - `verify-ca`: TLS, and the server's chain must lead to the root certificate.
//! - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.
//!
//! As in libpq, `prefer` and `require` encrypt without checking who answers, unless a
//! root certificate is there (`sslrootcert`, or `~/.postgresql/root.crt`): then `require`
//! checks the chain as `verify-ca` does. Even unchecked, the handshake's signature is
//! verified, and SCRAM's channel binding (which pgwire offers over TLS) still detects a
//! man in the middle when a password is used.

use crate::error::{Error, Result};
use pgwire::tokio::tokio_rustls::rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How hard the client insists on TLS and on checking the server (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it.
    #[default]
    Prefer,
    /// TLS always; the certificate is checked only if a root certificate is there.
    Require,
    /// TLS, with the chain checked against the root certificate.
    VerifyCa,
    /// TLS, with the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidParameterValue(format!(
                    "invalid sslmode value: \"{other}\" (use disable, prefer, require, \
                     verify-ca or verify-full)"
                )))
            }
        })
    }

    /// The mode tokio-postgres is given: it only decides whether TLS is attempted.
    pub fn negotiation(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

/// The TLS settings taken out of a connection string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of the certificates the server's chain must lead to.
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` out of a connection string, in URL form
/// (`postgres://u@h:p/db?sslmode=verify-full&sslrootcert=ca.pem`) or libpq's
/// `key=value` form; returns the rest for tokio-postgres.
pub fn split_tls_options(connection: &str) -> Result<(String, TlsOptions)> {
    let mut options = TlsOptions::default();
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => options.mode = SslMode::parse(value)?,
            "sslrootcert" => options.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if connection.starts_with("postgres://") || connection.starts_with("postgresql://") {
        split_url(connection, &mut take)?
    } else {
        split_key_values(connection, &mut take)?
    };
    Ok((rest, options))
}

type Taker<'a> = dyn FnMut(&str, &str) -> Result<bool> + 'a;

fn split_url(url: &str, take: &mut Taker<'_>) -> Result<String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_string());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| {
                Error::InvalidParameterValue(format!("connection option {key} is not UTF-8"))
            })?;
        if !take(key, &decoded)? {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// libpq's `key = value` pairs: values may be single-quoted, with `\'` and `\\`.
fn split_key_values(connection: &str, take: &mut Taker<'_>) -> Result<String> {
    let mut kept = Vec::new();
    let mut chars = connection.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::InvalidParameterValue(format!(
                "connection option \"{key}\" has no value (expected {key}=value)"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let (value, raw) = key_value(&mut chars)?;
        if !take(&key, &value)? {
            kept.push(format!("{key}={raw}"));
        }
    }
    Ok(kept.join(" "))
}

/// One value: its meaning, and its text as written (to pass on unchanged).
fn key_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<(String, String)> {
    let mut value = String::new();
    let mut raw = String::new();
    if chars.next_if_eq(&'\'').is_none() {
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            value.push(c);
            raw.push(c);
        }
        return Ok((value, raw));
    }
    raw.push('\'');
    loop {
        match chars.next() {
            None => {
                return Err(Error::InvalidParameterValue(
                    "unterminated quoted string in connection info string".into(),
                ))
            }
            Some('\'') => {
                raw.push('\'');
                return Ok((value, raw));
            }
            Some('\\') => {
                let escaped = chars.next().unwrap_or('\\');
                value.push(escaped);
                raw.push('\\');
                raw.push(escaped);
            }
            Some(c) => {
                value.push(c);
                raw.push(c);
            }
        }
    }
}

/// libpq's default root certificate file.
fn default_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
}

fn load_roots(path: &PathBuf) -> Result<RootCertStore> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::Io(format!(
            "could not read root certificate file \"{}\": {e}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| unreadable(&e))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| unreadable(&e))?;
        roots.add(certificate).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificates in it"));
    }
    Ok(roots)
}

/// The TLS connector for `options`.
pub fn connector(options: &TlsOptions) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_cert = options
        .root_cert
        .clone()
        .or_else(|| default_root_cert().filter(|path| path.exists()));
    let verifier: Arc<dyn ServerCertVerifier> = match (options.mode, root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(PartialCheck {
                chain: None,
                provider: Arc::clone(&provider),
            })
        }
        (SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull, Some(path)) => {
            let roots = Arc::new(load_roots(&path)?);
            let chain = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| Error::InvalidParameterValue(format!("root certificates: {e}")))?;
            if options.mode == SslMode::VerifyFull {
                chain
            } else {
                Arc::new(PartialCheck {
                    chain: Some(chain),
                    provider: Arc::clone(&provider),
                })
            }
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            let path =
                default_root_cert().unwrap_or_else(|| PathBuf::from("~/.postgresql/root.crt"));
            return Err(Error::InvalidParameterValue(format!(
                "root certificate file \"{}\" does not exist; either provide the file \
                 (sslrootcert=FILE) or change sslmode to disable server certificate verification",
                path.display()
            )));
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidParameterValue(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The checks of `prefer` and `require` (with `chain: None`: any certificate) and of
/// `verify-ca` (the chain must lead to a root certificate; the name is not checked).
/// Either way the handshake must be signed by the certificate's key.
#[derive(Debug)]
struct PartialCheck {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PartialCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sslmode and sslrootcert leave the URL; everything else stays as written.
    #[test]
    fn url_options_are_split() {
        let (rest, options) = split_tls_options(
            "postgres://u@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?application_name=x");
        assert_eq!(options.mode, SslMode::VerifyFull);
        assert_eq!(options.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, options) = split_tls_options("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(options, TlsOptions::default());
        let (rest, _) = split_tls_options("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://h/db");
    }

    /// libpq's key=value form, quoted values included.
    #[test]
    fn key_value_options_are_split() {
        let (rest, options) = split_tls_options(
            "host=h  user = 'a b' sslmode=verify-ca sslrootcert='/tmp/my ca.pem' dbname=d",
        )
        .unwrap();
        assert_eq!(rest, "host=h user='a b' dbname=d");
        assert_eq!(options.mode, SslMode::VerifyCa);
        assert_eq!(options.root_cert, Some(PathBuf::from("/tmp/my ca.pem")));
        assert!(split_tls_options("host=h user").is_err());
        assert!(split_tls_options("host='h").is_err());
    }

    /// A mode libpq does not have, or one we do not support, is refused by name.
    #[test]
    fn unknown_modes_are_refused() {
        let error = split_tls_options("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(error.to_string().contains("allow"), "{error}");
        assert!(split_tls_options("sslmode=strict").is_err());
    }

    /// Verifying without a root certificate is an error that says how to fix it.
    #[test]
    fn verification_needs_a_root_certificate() {
        let options = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let error = connector(&options).err().expect("missing file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
