//! TLS termination with rustls (ring, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`).
//!
//! The policy lists certificate and key files; the sidecar reads them (they live on its
//! host, typically a mounted Kubernetes secret). SNI picks the certificate: an exact DNS
//! name from a certificate's subject alternative names first, then a wildcard
//! (`*.example.com` serves `a.example.com`), then the first certificate. A missing file or
//! a key that does not match its certificate refuses the snapshot (NACK). `watch` re-reads
//! the files every few seconds and swaps in new certificates when their content changes,
//! so rotated secrets take effect without a restart; files that change into something
//! unusable are logged and the previous certificates keep serving.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// One certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded TLS configuration and the digest of the files it came from.
#[derive(Debug, Clone)]
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    pub digest: Vec<u8>,
}

/// Reads the files and builds a server configuration. Blocking: call off the runtime.
pub fn load(files: &[CertFiles]) -> Result<LoadedTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver::default();
    let mut digest = Sha256::new();
    for f in files {
        let cert_pem = std::fs::read(&f.cert).map_err(|e| format!("certificate {}: {e}", f.cert.display()))?;
        let key_pem = std::fs::read(&f.key).map_err(|e| format!("key {}: {e}", f.key.display()))?;
        digest.update(&cert_pem);
        digest.update(&key_pem);
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate {}: {e}", f.cert.display()))?;
        if chain.is_empty() {
            return Err(format!("certificate {}: no PEM certificate in the file", f.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("key {}: {e}", f.key.display()))?;
        let names = dns_names(&chain[0]).map_err(|e| format!("certificate {}: {e}", f.cert.display()))?;
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("key {} does not match certificate {}", f.key.display(), f.cert.display())
            }
            other => format!("key {}: {other}", f.key.display()),
        })?;
        resolver.add(&names, Arc::new(certified));
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(LoadedTls { config: Arc::new(config), digest: digest.finalize().to_vec() })
}

/// The digest `load` would compute, or None if a file cannot be read right now (a
/// rotation in progress: try again next round).
pub fn digest_of(files: &[CertFiles]) -> Option<Vec<u8>> {
    let mut digest = Sha256::new();
    for f in files {
        digest.update(std::fs::read(&f.cert).ok()?);
        digest.update(std::fs::read(&f.key).ok()?);
    }
    Some(digest.finalize().to_vec())
}

fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("cannot parse: {e}"))?;
    Ok(ee.valid_dns_names().map(str::to_ascii_lowercase).collect())
}

/// SNI → certificate.
#[derive(Default)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    first: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) {
        for name in names {
            match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.entry(suffix.to_owned()).or_insert_with(|| key.clone()),
                None => self.exact.entry(name.clone()).or_insert_with(|| key.clone()),
            };
        }
        self.first.get_or_insert(key);
    }

    fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = server_name.map(str::to_ascii_lowercase) {
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(k) = self.wildcard.get(parent)
            {
                return Some(k.clone());
            }
        }
        self.first.clone()
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}
