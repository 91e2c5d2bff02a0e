//! TLS helpers for tests: self-signed certificates written like a Kubernetes secret
//! update, and a rustls client that reports which certificate and protocol it got.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Stack;

/// A certificate, as DER and as the PEM files a policy points at.
pub struct Cert {
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed certificate for `names`.
pub fn cert(names: &[&str]) -> Cert {
    let c = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    Cert { der: c.cert.der().clone(), cert_pem: c.cert.pem(), key_pem: c.signing_key.serialize_pem() }
}

/// Writes like a Kubernetes secret update: a new file renamed over the old one.
pub fn install(dir: &Path, name: &str, c: &Cert) -> (String, String) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    for (path, pem) in [(&cert, &c.cert_pem), (&key, &c.key_pem)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned())
}

/// Connects with SNI `name`, trusting `roots`; returns the stream, the certificate the
/// server presented and the protocol ALPN chose.
pub async fn connect(
    s: &Stack,
    name: &str,
    roots: &[&Cert],
    alpn: &[&[u8]],
) -> (TlsStream<TcpStream>, Vec<u8>, Vec<u8>) {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(s.sidecar.proxy).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    let presented = session.peer_certificates().unwrap()[0].to_vec();
    let chosen = session.alpn_protocol().unwrap_or_default().to_vec();
    (tls, presented, chosen)
}
