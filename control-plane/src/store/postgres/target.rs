//! Where the PostgreSQL store is: the parsed URL, the TLS it asks for, a name for
//! messages that never shows the password, and how the driver's errors are told apart
//! (the database unreachable, which a later call may cure, or this call's own failure).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;

use crate::store::error::StoreError;

/// The most any store call may take, waiting for a connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// The server's limit on one statement or lock wait: under `CALL_TIMEOUT`.
const SERVER_TIMEOUT_MS: u64 = 3_500;

/// How to reach the database: the parsed URL and the TLS it asks for.
#[derive(Clone)]
pub struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// `host:port/dbname`, for messages (never the password).
    pub(crate) name: String,
}

impl Target {
    /// Parses a `postgres://` URL. `sslmode=require` (or `verify-full`) means TLS,
    /// verified against Mozilla's roots and `ca_pem` (a private CA), if given.
    pub fn parse(url: &str, ca_pem: Option<&[u8]>) -> Result<Target, StoreError> {
        // tokio-postgres knows sslmode disable/prefer/require; verify-full is require here,
        // since every TLS connection is verified.
        let url = url.replace("sslmode=verify-full", "sslmode=require");
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Failed(format!("the database URL: {e}")))?;
        // A database host that vanishes without a reset (a failover, a partition) is noticed
        // in seconds, not after the kernel's two-hour keepalive; and the server gives up on
        // a statement or a lock wait before the call's own timeout does, so a connection
        // never goes back to the pool with work still queued on it.
        config.keepalives_idle(Duration::from_secs(10)).tcp_user_timeout(Duration::from_secs(10));
        let limits = format!("-c statement_timeout={0} -c lock_timeout={0}", SERVER_TIMEOUT_MS);
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {limits}"),
            None => limits,
        };
        config.options(&options);
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let name = format!("PostgreSQL at {host}:{port}/{}", config.get_dbname().unwrap_or(""));
        let tls = match config.get_ssl_mode() {
            SslMode::Disable | SslMode::Prefer => None,
            _ => Some(tls_connector(ca_pem).map_err(|e| StoreError::Failed(format!("{name}: {e}")))?),
        };
        Ok(Target { config, tls, name })
    }

    pub(crate) fn unavailable(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{}: {what}", self.name))
    }

    /// Classifies a driver error: the database unreachable, shutting down, out of
    /// resources or in recovery may answer a later call; anything else is this call's.
    pub(crate) fn error(&self, e: tokio_postgres::Error) -> StoreError {
        // Without a SQLSTATE only a lost or failed connection is the database's state; a
        // value that does not convert is this call's own bug.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let transient = e.is_closed()
            || io
            || e.code().is_some_and(|c| {
                let c = c.code();
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57")
                    || [
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::LOCK_NOT_AVAILABLE,
                        // A demoted primary after a failover, still reached by old connections.
                        SqlState::READ_ONLY_SQL_TRANSACTION,
                    ]
                    .iter()
                    .any(|s| s.code() == c)
            });
        let text = match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        };
        match transient {
            true => self.unavailable(text),
            false => StoreError::Failed(format!("{}: {text}", self.name)),
        }
    }
}

/// rustls with ring, Mozilla's roots and the private CA's certificates.
fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("the database CA file: {e}"))?;
            roots.add(cert).map_err(|e| format!("the database CA file: {e}"))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
