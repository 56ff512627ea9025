//! How golive reaches PostgreSQL: the URL's `sslmode` and `sslrootcert`, read the way libpq
//! reads them, and a rustls connector (no OpenSSL) that does what the mode promises.
//!
//! | `sslmode`     | encrypted                        | server certificate checked             |
//! |---------------|----------------------------------|----------------------------------------|
//! | `disable`     | no                               | —                                      |
//! | `prefer`      | when the server offers TLS       | no                                     |
//! | `require`     | always (else the connection fails)| no; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca`   | always                           | chain to `sslrootcert`, any host name  |
//! | `verify-full` | always                           | chain to `sslrootcert` and host name   |
//!
//! The default is `prefer`, as in libpq, so a URL that works with `psql` works with golive and
//! means the same. `prefer` and `require` only stop eavesdroppers, not an attacker in the middle:
//! production settings should say `verify-full`. `sslrootcert` is a PEM file of CA
//! certificates, or `system` for the Mozilla roots golive carries (managed databases whose
//! certificates come from a public CA). `verify-ca` and `verify-full` without it are refused:
//! there is nothing to verify against.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslmode` of a PostgreSQL URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode, String> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full (allow is not supported)"
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    /// A PEM file (`sslrootcert=PATH`).
    File(String),
    /// The Mozilla roots (`sslrootcert=system`).
    System,
}

/// A PostgreSQL URL taken apart: the driver's configuration and how TLS is done.
#[derive(Clone)]
pub struct PgConnection {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub tls: MakeRustlsConnect,
}

/// The URL's `sslmode` and `sslrootcert` (libpq's names), and the URL without them (the driver
/// knows neither `verify-ca` nor `verify-full` nor `sslrootcert`). Other parameters are kept
/// exactly as written.
pub fn split_tls_parameters(url: &str) -> Result<(String, SslMode, Option<RootCertificates>), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut roots, mut kept) = (SslMode::Prefer, None, Vec::new());
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(piece.as_bytes()).next().unwrap_or_default();
        match key.as_ref() {
            "sslmode" => mode = SslMode::parse(&value)?,
            "sslrootcert" if value == "system" => roots = Some(RootCertificates::System),
            "sslrootcert" if value.is_empty() => return Err("sslrootcert: a path to a PEM file, or system".into()),
            "sslrootcert" => roots = Some(RootCertificates::File(value.into_owned())),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(format!("{key}: client certificates are not supported; use a password"))
            }
            _ => kept.push(piece),
        }
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
        return Err(format!(
            "sslmode={}: needs sslrootcert=PATH (a PEM file with the CA that signed the server's certificate) or sslrootcert=system",
            mode.as_str()
        ));
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, mode, roots))
}

/// Parses a PostgreSQL URL and builds the TLS connector its `sslmode` asks for.
pub fn connection(url: &str) -> Result<PgConnection, String> {
    let (rest, mode, roots) = split_tls_parameters(url)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| format!("invalid URL: {e}"))?;
    config.ssl_mode(match mode {
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer => DriverSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    // libpq: `require` with a root certificate behaves as `verify-ca`.
    let effective = match (mode, &roots) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        _ => mode,
    };
    let client = match effective {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))).with_no_client_auth()
        }
        SslMode::VerifyCa => {
            let roots = root_store(roots.as_ref().expect("checked above"))?;
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(chain))).with_no_client_auth()
        }
        SslMode::VerifyFull => {
            builder.with_root_certificates(root_store(roots.as_ref().expect("checked above"))?).with_no_client_auth()
        }
    };
    Ok(PgConnection { config, mode, tls: MakeRustlsConnect::new(client) })
}

fn root_store(roots: &RootCertificates) -> Result<RootCertStore, String> {
    match roots {
        RootCertificates::System => Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        RootCertificates::File(path) => {
            let mut store = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for certificate in certificates {
                store.add(certificate).map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            if store.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in the file"));
            }
            Ok(store)
        }
    }
}

/// `prefer` and `require`: any certificate, but the handshake's signatures are still checked
/// (the session is encrypted to whoever holds the presented certificate's key).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check, except that a certificate for another host name is
/// accepted. The name is checked only after the chain, so a name error means the chain held.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
