//! TLS to upstreams (rustls, ring): the roots to trust (the bundled webpki roots, since a
//! distroless image has no system store, or the policy's `ca_file`), an optional client
//! certificate, and the name the endpoint's certificate must carry. One configuration per
//! ALPN offer: `h2` for HTTP/2 connections, `http/1.1` for HTTP/1.1 ones.

use std::sync::Arc;

use http::uri::Authority;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use warden_policy::snapshot::{InvalidSnapshot, InvalidUpstream, Snapshot, UpstreamTls};

/// An upstream's TLS settings, loaded.
#[derive(Debug)]
pub struct ClientTls {
    pub spec: UpstreamTls,
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
}

impl ClientTls {
    /// Reads the files the settings name. Blocking.
    pub fn load(spec: &UpstreamTls) -> Result<ClientTls, String> {
        let roots = match &spec.ca_file {
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("ca_file {path}: {e}"))?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| format!("ca_file {path}: {e}"))?;
                    roots.add(cert).map_err(|e| format!("ca_file {path}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("ca_file {path}: no PEM certificate in the file"));
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots);
        let config = match &spec.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let pem = std::fs::read(cert_file).map_err(|e| format!("cert_file {cert_file}: {e}"))?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("cert_file {cert_file}: {e}"))?;
                if chain.is_empty() {
                    return Err(format!("cert_file {cert_file}: no PEM certificate in the file"));
                }
                let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("key_file {key_file}: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("key_file {key_file}: {e}"))?
            }
        };
        let offering = |alpn: &[u8]| {
            let mut c = config.clone();
            c.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(c)
        };
        Ok(ClientTls { spec: spec.clone(), http1: offering(b"http/1.1"), http2: offering(b"h2") })
    }

    /// The configuration whose ALPN offers the protocol a connection will speak.
    pub fn config(&self, http2: bool) -> Arc<ClientConfig> {
        if http2 { self.http2.clone() } else { self.http1.clone() }
    }

    /// The name `endpoint`'s certificate must carry.
    pub fn server_name(&self, endpoint: &Authority) -> Result<ServerName<'static>, String> {
        let name = match &self.spec.server_name {
            Some(n) => n.clone(),
            None => endpoint.host().trim_start_matches('[').trim_end_matches(']').to_owned(),
        };
        ServerName::try_from(name.clone()).map_err(|_| format!("'{name}' is not a server name"))
    }
}

/// Every upstream's TLS, loaded, by `Upstream::index`: None for plain TCP. Blocking: call
/// off the runtime. A file that does not load refuses the snapshot (NACK).
pub fn load_all(snapshot: &Snapshot) -> Result<Vec<Option<Arc<ClientTls>>>, InvalidSnapshot> {
    snapshot
        .upstreams
        .iter()
        .map(|u| {
            let Some(spec) = &u.tls else { return Ok(None) };
            let loaded = ClientTls::load(spec).map_err(|e| InvalidSnapshot::Upstream {
                upstream: u.name.to_string(),
                error: InvalidUpstream::Tls(e),
            })?;
            for ep in &u.endpoints {
                loaded.server_name(ep).map_err(|e| InvalidSnapshot::Upstream {
                    upstream: u.name.to_string(),
                    error: InvalidUpstream::Tls(e),
                })?;
            }
            Ok(Some(Arc::new(loaded)))
        })
        .collect()
}
