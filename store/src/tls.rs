//! TLS on the client and peer ports, configured with etcd's flags (`--cert-file`,
//! `--key-file`, `--trusted-ca-file`, `--client-cert-auth` and their `--peer-` twins).
//!
//! Certificates follow their files: a handshake after the files were replaced (certificate
//! rotation, automatic renewal) presents the new certificate, without a restart, as etcd does.
//! The trusted CA is read once, at start.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Result, StoreError};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a certificate's files are looked at for a replacement.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// One port's TLS files, as etcd's flags name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA that signs the certificates of clients (and, for peers, of the other members).
    pub trusted_ca_file: Option<PathBuf>,
    /// Refuse connections without a client certificate signed by `trusted_ca_file`.
    pub client_cert_auth: bool,
}

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::config(format!("{what} {}: {e}", path.display()))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err("cannot read certificate", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err("cannot parse certificate", path, e))?;
    if chain.is_empty() {
        return Err(tls_err("no certificate in", path, "empty PEM"));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_err("cannot read private key", path, e))
}

fn load_certified(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>> {
    let chain = load_chain(cert)?;
    let key_der = load_key(key)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| tls_err("unsupported private key", key, e))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| tls_err("the private key does not match", cert, e))?;
    Ok(Arc::new(ck))
}

/// What identifies one version of a file: replacing it (rename over it) changes this.
fn stamp(path: &Path) -> Option<(u64, SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?, m.len()))
}

type Stamps = (
    Option<(u64, SystemTime, u64)>,
    Option<(u64, SystemTime, u64)>,
);

/// A certificate and key read from files, read again once the files are replaced.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: Stamps,
    checked: Instant,
    /// Bumped at every reload, so users of the files (the peer transport) can tell.
    generation: u64,
}

impl ReloadingCert {
    /// Reads the pair; fails if either file is unreadable or they do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>> {
        let stamps = (stamp(cert), stamp(key));
        let loaded = load_certified(cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(Loaded {
                key: loaded,
                stamps,
                checked: Instant::now(),
                generation: 0,
            }),
        }))
    }

    /// The current pair and its generation. A replaced pair that does not load (say, half
    /// written) leaves the previous one in use.
    pub fn current(&self) -> (Arc<CertifiedKey>, u64) {
        let mut s = self.state.lock();
        if s.checked.elapsed() >= RELOAD_CHECK {
            s.checked = Instant::now();
            let now = (stamp(&self.cert), stamp(&self.key));
            if now != s.stamps {
                match load_certified(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "certificate reloaded");
                        s.key = k;
                        s.stamps = now;
                        s.generation += 1;
                    }
                    Err(e) => {
                        tracing::warn!("keeping the previous certificate: {e}");
                    }
                }
            }
        }
        (Arc::clone(&s.key), s.generation)
    }

    /// The PEM files as they are now (for a client identity).
    pub fn pem(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let c = std::fs::read(&self.cert).map_err(|e| tls_err("cannot read", &self.cert, e))?;
        let k = std::fs::read(&self.key).map_err(|e| tls_err("cannot read", &self.key, e))?;
        Ok((c, k))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().0)
    }
}

impl rustls::client::ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current().0)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The CA certificates of `path`, as a root store.
pub fn load_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_chain(path)? {
        roots
            .add(c)
            .map_err(|e| tls_err("bad CA certificate", path, e))?;
    }
    Ok(Arc::new(roots))
}

/// The server side of a port: its certificate follows the files; with `client_cert_auth`
/// every client must present a certificate of the trusted CA, and with only a trusted CA a
/// certificate is checked when one is presented (etcd's rules).
pub fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::config(format!("TLS: {e}")))?;
    let builder = match &files.trusted_ca_file {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider);
            let verifier = if files.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| tls_err("client verifier for", ca, e))?,
            )
        }
        None if files.client_cert_auth => {
            return Err(StoreError::config(
                "client certificate authentication needs a trusted CA (--trusted-ca-file / --peer-trusted-ca-file)",
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg =
        builder.with_cert_resolver(ReloadingCert::load(&files.cert_file, &files.key_file)?);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The connections of `listener` once their TLS handshake is done. Handshakes run
/// concurrently (a slow client holds up nobody) and are bounded in time; failed ones are
/// dropped. The stream ends, and the listener closes, when the receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    what: &'static str,
) -> ReceiverStream<io::Result<tokio_rustls::server::TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => break,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!("{what}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "{what}: TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "{what}: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A member's client side towards its peers: the trusted CA, and its certificate (the peer
/// certificate, as etcd uses it both ways), re-read when the files are replaced.
pub struct PeerClientTls {
    ca: Vec<u8>,
    cert: Option<Arc<ReloadingCert>>,
}

impl PeerClientTls {
    pub fn new(files: &TlsFiles) -> Result<PeerClientTls> {
        let ca_path = files.trusted_ca_file.as_ref().ok_or_else(|| {
            StoreError::config("https peer URLs need --peer-trusted-ca-file to verify the members")
        })?;
        let ca = std::fs::read(ca_path).map_err(|e| tls_err("cannot read", ca_path, e))?;
        load_roots(ca_path)?;
        Ok(PeerClientTls {
            ca,
            cert: Some(ReloadingCert::load(&files.cert_file, &files.key_file)?),
        })
    }

    /// The configuration for a new connection, and the generation of the certificate in it.
    pub fn config(&self) -> Result<(ClientTlsConfig, u64)> {
        let mut c = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        let mut generation = 0;
        if let Some(cert) = &self.cert {
            generation = cert.current().1;
            let (crt, key) = cert.pem()?;
            c = c.identity(Identity::from_pem(crt, key));
        }
        Ok((c, generation))
    }

    /// The generation of the certificate now.
    pub fn generation(&self) -> u64 {
        self.cert.as_ref().map(|c| c.current().1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
        let p = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, data).expect("write");
        std::fs::rename(&tmp, &p).expect("rename");
        p
    }

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_replaced_certificate_is_picked_up_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let (c1, k1) = pair();
        let cert = write(dir.path(), "c.crt", &c1);
        let key = write(dir.path(), "c.key", &k1);
        let r = ReloadingCert::load(&cert, &key).expect("load");
        let (first, g0) = r.current();
        let (c2, k2) = pair();
        write(dir.path(), "c.key", &k2);
        write(dir.path(), "c.crt", &c2);
        // Force the next look at the files.
        r.state.lock().checked = Instant::now() - RELOAD_CHECK;
        let (second, g1) = r.current();
        assert_eq!(g1, g0 + 1);
        assert_ne!(first.cert[0], second.cert[0]);
        // A key that does not match its certificate keeps the previous pair in use.
        write(dir.path(), "c.key", &k1);
        r.state.lock().checked = Instant::now() - RELOAD_CHECK;
        let (third, g2) = r.current();
        assert_eq!(g2, g1);
        assert_eq!(third.cert[0], second.cert[0]);
        assert!(ReloadingCert::load(&cert, &key).is_err(), "mismatched pair");
    }

    #[test]
    fn client_cert_auth_without_a_ca_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (c, k) = pair();
        let files = TlsFiles {
            cert_file: write(dir.path(), "c.crt", &c),
            key_file: write(dir.path(), "c.key", &k),
            trusted_ca_file: None,
            client_cert_auth: true,
        };
        let e = server_config(&files, &[b"h2"])
            .expect_err("no CA")
            .to_string();
        assert!(e.contains("trusted CA"), "{e}");
        let files = TlsFiles {
            client_cert_auth: false,
            ..files
        };
        assert!(server_config(&files, &[b"h2"]).is_ok());
    }
}
