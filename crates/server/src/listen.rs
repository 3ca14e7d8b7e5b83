//! The server's socket: TLS (rustls, 1.2 and 1.3 only), client certificates for edges,
//! a cap on connections and on slow clients, and graceful shutdown. I/O only: who a
//! certificate names is decided in [`crate::auth`], from the [`Peer`] each request
//! carries.
//!
//! The certificate and key are read again on SIGHUP (`reload`): new handshakes get the
//! new ones, connections already open (an edge's long-poll) keep theirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracing::{info, warn};

/// The TLS files of `cic server`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that sign edges' client certificates; with it, edges may
    /// authenticate by certificate (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// How the server listens.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on an address other than loopback (refused without it).
    pub insecure_http: bool,
    /// Connections open at once, from everyone; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slow clients are closed).
    pub header_timeout: Duration,
}

impl ListenOptions {
    pub fn new(addr: SocketAddr) -> ListenOptions {
        ListenOptions {
            addr,
            tls: None,
            insecure_http: false,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Who is at the other end of a request's connection, as the socket and TLS say.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// The connection is TLS.
    pub tls: bool,
    /// The client certificate, when one was presented and verified against the client CA.
    pub cert: Option<PeerCert>,
}

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The edge its subject alternative name names (`spiffe://cic/edge/ID`), if any.
    pub edge_id: Option<String>,
    /// Its serial number, hex (revocations are kept by serial).
    pub serial: String,
}

/// The URI a certificate issued to edge `id` carries in its subject alternative names.
pub fn edge_uri(id: &str) -> String {
    format!("spiffe://cic/edge/{id}")
}

/// What a verified certificate says: its serial and the edge its URI SAN names.
pub fn describe_cert(der: &[u8]) -> Option<PeerCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let serial = cert.raw_serial_as_string().replace(':', "");
    let edge_id = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => u
                    .strip_prefix("spiffe://cic/edge/")
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                    .map(String::from),
                _ => None,
            })
        });
    Some(PeerCert { edge_id, serial })
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} holds no PEM certificate")]
    NoCert(PathBuf),
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("{0}: {1}")]
    Bad(PathBuf, String),
    #[error("the key in {key} does not match the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// The certificates of a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::Read(path.into(), e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Bad(path.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.into()));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::Read(path.into(), e))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(path.into()),
        e => TlsError::Bad(path.into(), e.to_string()),
    })
}

/// The provider every TLS config of cic uses (ring; TLS 1.2 and 1.3 only). rustls now
/// prefers aws-lc-rs for its post-quantum key exchange; ring keeps the build free of a
/// second C library (see README, "Not yet").
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS config from its files.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Bad(files.cert.clone(), e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Bad(ca.clone(), e.to_string()))?;
            }
            // Users authenticate by token; a certificate is asked for, not required.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Bad(ca.clone(), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        e => TlsError::Bad(files.key.clone(), e.to_string()),
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS config new handshakes use, replaced whole on reload.
#[derive(Clone)]
pub struct Acceptor {
    files: TlsFiles,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    /// When the certificate in use expires (unix seconds), for the metrics and alerts.
    not_after: Arc<std::sync::atomic::AtomicI64>,
}

/// The expiry (unix seconds) of the first certificate of a PEM file.
fn expiry(files: &TlsFiles) -> i64 {
    read_certs(&files.cert)
        .ok()
        .and_then(|c| {
            let (_, x) = x509_parser::parse_x509_certificate(c.first()?).ok()?;
            Some(x.validity().not_after.timestamp())
        })
        .unwrap_or(0)
}

impl Acceptor {
    pub fn new(files: TlsFiles) -> Result<Acceptor, TlsError> {
        let config = server_config(&files)?;
        let not_after = Arc::new(std::sync::atomic::AtomicI64::new(expiry(&files)));
        Ok(Acceptor {
            files,
            current: Arc::new(RwLock::new(Arc::new(config))),
            not_after,
        })
    }

    /// Reads the files again; on an error the config in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        if let Ok(mut c) = self.current.write() {
            *c = config;
        }
        self.not_after
            .store(expiry(&self.files), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The expiry of the certificate in use, kept current across reloads.
    pub fn not_after(&self) -> Arc<std::sync::atomic::AtomicI64> {
        self.not_after.clone()
    }

    fn config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "refusing to serve plain HTTP on {0}, which is not a loopback address: give --tls-cert and --tls-key, or --insecure-http to accept that tokens cross the network in clear"
    )]
    PlainHttp(SocketAddr),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Checks the options (the TLS files read, plain HTTP only where allowed) without binding.
pub fn check(opts: &ListenOptions) -> Result<Option<Acceptor>, ListenError> {
    Ok(match &opts.tls {
        Some(files) => Some(Acceptor::new(files.clone())?),
        None if opts.addr.ip().is_loopback() || opts.insecure_http => None,
        None => return Err(ListenError::PlainHttp(opts.addr)),
    })
}

/// Checks the options and binds the socket.
pub async fn bind(opts: &ListenOptions) -> Result<(TcpListener, Option<Acceptor>), ListenError> {
    let acceptor = check(opts)?;
    if acceptor.is_none() && !opts.addr.ip().is_loopback() {
        warn!(
            "serving plain HTTP on {} (--insecure-http): tokens and secrets cross the network in clear",
            opts.addr
        );
    }
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|e| ListenError::Bind(opts.addr, e))?;
    Ok((listener, acceptor))
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish (long
/// polls are cut after a few seconds).
pub async fn serve(
    listener: TcpListener,
    acceptor: Option<Acceptor>,
    opts: &ListenOptions,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let handshake_timeout = opts.header_timeout;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, do not spin.
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let tls = acceptor.as_ref().and_then(Acceptor::config);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let mut peer = Peer {
                addr: Some(addr),
                tls: tls.is_some(),
                cert: None,
            };
            match tls {
                Some(config) => {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                    let stream = match tokio::time::timeout(handshake_timeout, accept).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake with {addr}: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake with {addr}: timed out");
                            return;
                        }
                    };
                    peer.cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| describe_cert(c));
                    let service = service(app, peer);
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let service = service(app, peer);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    info!("shutting down: waiting for open requests");
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        info!("requests still open after 5 s (long polls); closing them");
    }
    Ok(())
}

fn service(
    app: Router,
    peer: Peer,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone,
> {
    hyper_util::service::TowerToHyperService::new(app.map_request(
        move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            req.map(axum::body::Body::new)
        },
    ))
}
