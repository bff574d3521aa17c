//! TLS (rustls) for the connections parapply opens and serves.
//!
//! The client side follows the `--ssl-mode` of the MariaDB and MySQL
//! clients:
//!
//! | mode | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disabled` | never | — |
//! | `preferred` | when the server offers it (TCP only) | not checked |
//! | `required` | always; a server without TLS is refused | not checked |
//! | `verify-ca` | always | signed by `--ssl-ca` (else the system's CAs) |
//! | `verify-identity` | always | as `verify-ca`, and it names the host connected to |
//!
//! `--ssl-ca` without `--ssl-mode` means `verify-ca` (as for the MySQL
//! client); no option at all means `preferred`. `--ssl-cert` and
//! `--ssl-key` present a client certificate (users created `REQUIRE X509`).
//! The files are read once ([`ClientTls::new`]); every connection of a run
//! shares the result.
//!
//! The server side ([`server_config`]) is the binlog server's certificate
//! and key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};

/// How a client connection uses TLS; see the [module doc](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never.
    Disabled,
    /// When the server offers it, without checking its certificate.
    #[default]
    Preferred,
    /// Always, without checking the certificate.
    Required,
    /// Always; the certificate must be signed by a trusted CA.
    VerifyCa,
    /// Always; trusted CA and the certificate names the host.
    VerifyIdentity,
}

impl SslMode {
    /// The names `--ssl-mode` takes.
    pub const NAMES: &'static [&'static str] = &[
        "disabled",
        "preferred",
        "required",
        "verify-ca",
        "verify-identity",
    ];

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disabled | SslMode::Preferred)
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" => Ok(SslMode::Disabled),
            "preferred" => Ok(SslMode::Preferred),
            "required" => Ok(SslMode::Required),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-identity" => Ok(SslMode::VerifyIdentity),
            _ => Err(format!(
                "unknown ssl mode `{s}` (known: {})",
                SslMode::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = *self as usize;
        f.write_str(SslMode::NAMES[i])
    }
}

/// The TLS options as given (`--ssl-mode`, `--ssl-ca`, `--ssl-cert`,
/// `--ssl-key`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `None`: `verify-ca` with a CA file, else `preferred`.
    pub mode: Option<SslMode>,
    /// PEM file of the CA certificates to trust (else the system's).
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

/// Reading the TLS files or setting TLS up failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// The client TLS settings of a run, read once and shared by every
/// connection ([`super::ConnectOptions::tls`]).
#[derive(Clone)]
pub struct ClientTls {
    mode: SslMode,
    /// Whether `--ssl-ca` was given (else the system's CAs are trusted).
    own_ca: bool,
    /// `None` for `disabled`.
    config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientTls({})", self.mode)
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls::disabled()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))
}

impl ClientTls {
    /// No TLS (the library's default; the command line's is `preferred`).
    pub fn disabled() -> Self {
        ClientTls {
            mode: SslMode::Disabled,
            own_ca: false,
            config: None,
        }
    }

    /// Reads the files of `o` and builds the settings.
    pub fn new(o: &TlsOptions) -> Result<Self, TlsError> {
        let mode = o.mode.unwrap_or(if o.ca.is_some() {
            SslMode::VerifyCa
        } else {
            SslMode::Preferred
        });
        if mode == SslMode::Disabled {
            if o.ca.is_some() || o.cert.is_some() || o.key.is_some() {
                return Err(TlsError(
                    "--ssl-mode disabled contradicts --ssl-ca/--ssl-cert/--ssl-key".into(),
                ));
            }
            return Ok(ClientTls::disabled());
        }
        let provider = provider();
        let webpki = match mode {
            SslMode::Preferred | SslMode::Required => None,
            _ => {
                let roots = Arc::new(root_store(o.ca.as_deref())?);
                let v = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| TlsError(format!("TLS verifier: {e}")))?;
                Some(v)
            }
        };
        let verifier = Arc::new(Verifier {
            provider: provider.clone(),
            webpki,
            check_name: mode == SslMode::VerifyIdentity,
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&o.cert, &o.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(read_certs(c, "--ssl-cert")?, read_key(k, "--ssl-key")?)
                .map_err(|e| TlsError(format!("--ssl-cert/--ssl-key: {e}")))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError(
                    "--ssl-cert and --ssl-key go together (the certificate and its key)".into(),
                ))
            }
        };
        Ok(ClientTls {
            mode,
            own_ca: o.ca.is_some(),
            config: Some(Arc::new(config)),
        })
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The rustls configuration (`None` when disabled).
    pub(crate) fn config(&self) -> Option<&Arc<ClientConfig>> {
        self.config.as_ref()
    }

    /// Whether a connection to a server that offers TLS (`offered`) over
    /// TCP or a Unix socket (`socket`) uses it; `Err` when the mode needs
    /// TLS and the server has none.
    pub(crate) fn wanted(&self, offered: bool, socket: bool) -> Result<bool, String> {
        match self.mode {
            SslMode::Disabled => Ok(false),
            SslMode::Preferred => Ok(offered && !socket),
            _ if offered => Ok(true),
            mode => Err(format!(
                "--ssl-mode {mode} needs TLS, and the server does not offer it \
                 (its have_ssl is not YES: give it ssl_cert/ssl_key)"
            )),
        }
    }
}

fn root_store(ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in read_certs(path, "--ssl-ca")? {
                roots
                    .add(c)
                    .map_err(|e| TlsError(format!("--ssl-ca {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system certificate rustls cannot use is skipped.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(TlsError(
                    "no CA certificate to verify the server with: give --ssl-ca \
                     (the system store is empty or unreadable)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The name the server's certificate is checked against: the host
/// connected to (`localhost` for a Unix socket).
pub(crate) fn server_name(host: &str, socket: bool) -> Result<ServerName<'static>, String> {
    let host = if socket { "localhost" } else { host };
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("`{host}` cannot be a TLS server name: {e}"))
}

/// The operator's words for a TLS failure (a certificate the mode
/// refuses, a protocol mismatch) under `tls`.
pub(crate) fn explain(e: &rustls::Error, tls: &ClientTls) -> String {
    use rustls::Error as E;
    let mode = tls.mode;
    let hint = match e {
        E::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)
            if tls.own_ca =>
        {
            "; the server's certificate is not signed by a CA of --ssl-ca (a wrong CA file?)"
        }
        E::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            "; the server's certificate is not signed by a CA of the system's store: give \
             its CA with --ssl-ca"
        }
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "; the server's certificate does not name the host connected to (connect by a \
             name it lists, or use --ssl-mode verify-ca to check the CA only)"
        }
        E::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "; the server's certificate is outside its validity period",
        E::AlertReceived(_) => {
            "; the server refused the TLS handshake (a client certificate it wants, or one it \
             does not trust: --ssl-cert/--ssl-key)"
        }
        _ => "",
    };
    format!("TLS (--ssl-mode {mode}): {e}{hint}")
}

/// The server-certificate check of a mode: none (`preferred`,
/// `required`: any certificate, its handshake signatures still checked),
/// the chain only (`verify-ca`), or the chain and the name
/// (`verify-identity`).
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    /// `None`: the certificate is not checked.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        // The name is checked last, after the chain: a name error means the
        // chain is good.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The binlog server's TLS: its certificate chain and key (PEM files).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            read_certs(cert, "--serve-ssl-cert")?,
            read_key(key, "--serve-ssl-key")?,
        )
        .map_err(|e| TlsError(format!("--serve-ssl-cert/--serve-ssl-key: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for name in SslMode::NAMES {
            assert_eq!(name.parse::<SslMode>().unwrap().to_string(), *name);
        }
        assert_eq!(
            "VERIFY_IDENTITY".parse::<SslMode>(),
            Ok(SslMode::VerifyIdentity)
        );
        assert!("on".parse::<SslMode>().unwrap_err().contains("verify-ca"));
    }

    #[test]
    fn which_connections_use_tls() {
        let t = |mode| ClientTls {
            mode,
            own_ca: false,
            config: None,
        };
        assert_eq!(t(SslMode::Disabled).wanted(true, false), Ok(false));
        assert_eq!(t(SslMode::Preferred).wanted(true, false), Ok(true));
        assert_eq!(t(SslMode::Preferred).wanted(false, false), Ok(false));
        assert_eq!(t(SslMode::Preferred).wanted(true, true), Ok(false));
        assert_eq!(t(SslMode::Required).wanted(true, true), Ok(true));
        for m in [
            SslMode::Required,
            SslMode::VerifyCa,
            SslMode::VerifyIdentity,
        ] {
            let e = t(m).wanted(false, false).unwrap_err();
            assert!(e.contains("does not offer"), "{e}");
        }
    }

    #[test]
    fn options_that_contradict_are_refused() {
        let o = TlsOptions {
            mode: Some(SslMode::Disabled),
            ca: Some("/x".into()),
            ..TlsOptions::default()
        };
        assert!(ClientTls::new(&o).is_err());
        let o = TlsOptions {
            cert: Some("/x".into()),
            ..TlsOptions::default()
        };
        let e = ClientTls::new(&o).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        let o = TlsOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = ClientTls::new(&o).unwrap_err().to_string();
        assert!(e.contains("--ssl-ca /nonexistent/ca.pem"), "{e}");
        assert_eq!(
            ClientTls::new(&TlsOptions::default()).unwrap().mode(),
            SslMode::Preferred
        );
    }
}
