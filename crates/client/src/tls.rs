//! The client side of TLS, for `cic edge` and the resource commands: which CA to trust,
//! a client certificate read again whenever its files change (rotation without a
//! restart), no plain HTTP across the network unless asked for, and failures said in
//! the user's words (which CA, which name, which date).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::sign::CertifiedKey;

/// What a client trusts and who it is.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) the server's certificate must chain to; the system's when
    /// None.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate and its key (PEM), for an edge that authenticates by
    /// certificate. Read again when either file changes.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Plain `http://` to a server that is not on loopback.
    pub insecure_http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} holds no PEM certificate")]
    NoCert(PathBuf),
    #[error("{0} holds no PEM private key")]
    NoKey(PathBuf),
    #[error("{0}: {1}")]
    Bad(PathBuf, String),
    #[error(
        "refusing plain HTTP to {0}, which is not on this host: use https:// (with --ca-cert if the server's CA is not the system's), or --insecure-http to send the token in clear"
    )]
    PlainHttp(String),
    #[error("{0:?} is not a server URL (http://HOST:PORT or https://HOST:PORT)")]
    BadUrl(String),
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|e| TlsSetupError::Read(path.into(), e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::Bad(path.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCert(path.into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|e| TlsSetupError::Read(path.into(), e))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsSetupError::NoKey(path.into()),
        e => TlsSetupError::Bad(path.into(), e.to_string()),
    })
}

/// The provider of every TLS config of cic's clients, as the server's
/// (`cic_server::listen::provider`): ring, TLS 1.2 and 1.3.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client for plain HTTP to this host (the lab's metrics, a test's server): it is
/// built with our TLS provider too, since the HTTP library has none of its own.
pub fn local_client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, TlsSetupError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Bad(PathBuf::new(), e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    builder
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| TlsSetupError::Bad(PathBuf::new(), e.to_string()))
}

/// Whether `server` (a URL) may be spoken to in plain HTTP: loopback only, unless told.
pub fn check_scheme(server: &str, insecure_http: bool) -> Result<(), TlsSetupError> {
    let rest = if let Some(r) = server.strip_prefix("https://") {
        let _ = r;
        return Ok(());
    } else if let Some(r) = server.strip_prefix("http://") {
        r
    } else {
        return Err(TlsSetupError::BadUrl(server.into()));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = authority.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || insecure_http {
        Ok(())
    } else {
        Err(TlsSetupError::PlainHttp(server.into()))
    }
}

/// The rustls config of a client.
pub fn client_config(tls: &ClientTls) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_cert {
        Some(path) => {
            for c in read_certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| TlsSetupError::Bad(path.clone(), e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::Bad(PathBuf::new(), e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        Some((cert, key)) => {
            let resolver = FileIdentity::new(cert.clone(), key.clone())?;
            builder.with_client_cert_resolver(Arc::new(resolver))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client with this TLS config; `server` is checked for plain HTTP.
pub fn http_client(
    server: &str,
    tls: &ClientTls,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, TlsSetupError> {
    check_scheme(server, tls.insecure_http)?;
    let config = client_config(tls)?;
    builder
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| TlsSetupError::Bad(PathBuf::new(), e.to_string()))
}

/// When a certificate's and its key's files last changed.
pub type Stamp = Option<(SystemTime, SystemTime)>;

/// When the files of a client identity last changed (to rebuild a client that holds
/// pooled connections made with the old certificate).
pub fn identity_stamp(tls: &ClientTls) -> Stamp {
    let (c, k) = tls.identity.as_ref()?;
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(c)?, m(k)?))
}

/// A client certificate read from files, again when they change.
#[derive(Debug)]
struct FileIdentity {
    cert: PathBuf,
    key: PathBuf,
    loaded: Mutex<(Stamp, Arc<CertifiedKey>)>,
}

impl FileIdentity {
    fn new(cert: PathBuf, key: PathBuf) -> Result<FileIdentity, TlsSetupError> {
        let ck = Self::load(&cert, &key)?;
        let stamp = identity_stamp(&ClientTls {
            identity: Some((cert.clone(), key.clone())),
            ..Default::default()
        });
        Ok(FileIdentity {
            cert,
            key,
            loaded: Mutex::new((stamp, Arc::new(ck))),
        })
    }

    fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsSetupError> {
        let chain = read_certs(cert)?;
        let k = read_key(key)?;
        CertifiedKey::from_der(chain, k, &provider())
            .map_err(|e| TlsSetupError::Bad(key.into(), e.to_string()))
    }
}

impl ResolvesClientCert for FileIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut loaded = self.loaded.lock().ok()?;
        let stamp = identity_stamp(&ClientTls {
            identity: Some((self.cert.clone(), self.key.clone())),
            ..Default::default()
        });
        if stamp.is_some() && stamp != loaded.0 {
            // Written one file at a time: a pair that does not match yet is tried again
            // at the next handshake, the old identity used meanwhile.
            match Self::load(&self.cert, &self.key) {
                Ok(ck) => *loaded = (stamp, Arc::new(ck)),
                Err(e) => tracing::warn!("client certificate not reloaded yet: {e}"),
            }
        }
        Some(loaded.1.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Why a request failed, in the user's words when TLS refused the server: the CA that
/// did not sign it, the name it is not valid for, the date it expired.
pub fn explain(err: &reqwest::Error, server: &str, tls: &ClientTls) -> String {
    use rustls::CertificateError as C;
    if let Some(r) = find_rustls(err) {
        let ca = tls
            .ca_cert
            .as_ref()
            .map(|p| format!("the CA in {}", p.display()))
            .unwrap_or_else(|| "the system's CAs (give --ca-cert)".to_string());
        let why = match r {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer | C::BadSignature => {
                    format!("its certificate is not signed by {ca}")
                }
                C::Expired | C::ExpiredContext { .. } => match c {
                    C::ExpiredContext { time, not_after } => format!(
                        "its certificate expired (not after {}, now {})",
                        fmt_time(not_after),
                        fmt_time(time)
                    ),
                    _ => "its certificate has expired".to_string(),
                },
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "its certificate is not valid yet".to_string()
                }
                C::NotValidForName => {
                    format!("its certificate is not valid for the name in {server}")
                }
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => format!(
                    "its certificate is not valid for {expected:?} (it names {})",
                    presented.join(", ")
                ),
                C::Revoked => "its certificate is revoked".to_string(),
                other => format!("its certificate is refused: {other:?}"),
            },
            rustls::Error::AlertReceived(a) => format!(
                "the server refused our TLS handshake ({a:?}; a client certificate it does not accept?)"
            ),
            other => format!("TLS failed: {other}"),
        };
        return format!("cannot trust the cic server at {server}: {why}");
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    format!("cannot reach the cic server at {server}: {text}")
}

/// The TLS error somewhere in `e`'s chain, looking inside I/O errors too (whose
/// `source()` skips the error they wrap).
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(r) = find_rustls(inner) {
            return Some(r);
        }
    }
    e.source().and_then(find_rustls)
}

fn fmt_time(t: &rustls::pki_types::UnixTime) -> String {
    let secs = t.as_secs() as i64;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_told() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
            "https://cic.example.net",
            "http://127.3.4.5",
        ] {
            assert!(check_scheme(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://cic.example.net",
            "http://[2001:db8::1]:80",
        ] {
            let e = check_scheme(bad, false).unwrap_err().to_string();
            assert!(e.contains("refusing plain HTTP") && e.contains(bad), "{e}");
            assert!(check_scheme(bad, true).is_ok());
        }
        assert!(matches!(
            check_scheme("ftp://x", true),
            Err(TlsSetupError::BadUrl(_))
        ));
    }
}
