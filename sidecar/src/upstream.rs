//! Connections to upstreams: pooled keep-alive HTTP/1.1 clients, one per connect timeout,
//! shared across snapshots so a policy push never drops warm connections; and the
//! classification of upstream failures into the refusals the client sees.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{InvalidSnapshot, Snapshot};

/// A pooled HTTP/1.1 client that streams the inbound body through.
pub type Client = HyperClient<HttpConnector, Incoming>;

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Clients by connect timeout. Only touched when a snapshot is compiled, never per request.
#[derive(Default)]
pub struct ClientPool {
    clients: Mutex<HashMap<Duration, Client>>,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientPool")
    }
}

impl ClientPool {
    /// The shared client for this connect timeout (clones share one pool).
    pub fn client(&self, connect_timeout: Duration) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(connect_timeout)
            .or_insert_with(|| {
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(connect_timeout));
                connector.set_nodelay(true);
                HyperClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                    .build(connector)
            })
            .clone()
    }
}

/// What went wrong talking to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Nothing listens there (connection refused, reset, unreachable).
    Refused,
    /// The TCP connect did not finish within `connect_timeout`.
    ConnectTimeout,
    /// The upstream broke the HTTP exchange.
    Protocol,
}

/// Sorts a client error by what the caller should be told.
pub fn classify(err: &hyper_util::client::legacy::Error) -> UpstreamFailure {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return if io.kind() == io::ErrorKind::TimedOut {
                UpstreamFailure::ConnectTimeout
            } else {
                UpstreamFailure::Refused
            };
        }
        source = e.source();
    }
    if err.is_connect() {
        UpstreamFailure::Refused
    } else {
        UpstreamFailure::Protocol
    }
}

/// Refuses a snapshot whose upstream host names do not resolve from this sidecar: only
/// the sidecar can tell, and serving it would turn every request on those routes into 502.
pub async fn check_resolvable(snapshot: &Snapshot) -> Result<(), InvalidSnapshot> {
    for up in snapshot.upstreams.iter().skip(1) {
        for ep in &up.endpoints {
            if ep
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
            {
                continue;
            }
            let lookup =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host(ep.as_str()))
                    .await
                    .map(|r| r.map(|addrs| addrs.count()));
            let reason = match lookup {
                Ok(Ok(n)) if n > 0 => continue,
                Ok(Ok(_)) => format!("endpoint '{ep}' resolves to no address"),
                Ok(Err(e)) => format!("endpoint '{ep}' does not resolve: {e}"),
                Err(_) => format!("endpoint '{ep}' did not resolve within 2s"),
            };
            return Err(InvalidSnapshot::Upstream {
                upstream: up.name.to_string(),
                reason,
            });
        }
    }
    Ok(())
}
