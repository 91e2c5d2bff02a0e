//! An upstream as the policy describes it: a name, endpoints, what is spoken to them and
//! how to connect. Pure data; the sidecar binds it to connection pools.

use std::sync::Arc;
use std::time::Duration;

use http::Version;
use http::uri::Authority;

/// A named set of endpoints and how to connect to them. What connects is the sidecar's:
/// it binds each upstream, by `index`, to connection pools that outlive snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: Arc<str>,
    /// Where it sits in `Snapshot::upstreams`.
    pub index: usize,
    /// `host:port` each; empty for `app`, whose one endpoint is the sidecar's `--upstream`.
    pub endpoints: Vec<Authority>,
    pub connect_timeout: Duration,
    /// Circuit breakers per endpoint: connections open at once, requests waiting for one
    /// (0: the sidecar's default).
    pub max_connections: u32,
    pub max_pending: u32,
    pub protocol: Protocol,
    /// Requests at once on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
    pub tls: Option<UpstreamTls>,
}

/// Requests at once on one HTTP/2 upstream connection when the policy says nothing.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// What the sidecar speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http1,
    Http2,
    /// HTTP/2 when the downstream request is HTTP/2.
    Auto,
}

impl Protocol {
    /// The version a request that arrived as `downstream` is sent with.
    pub fn version_for(self, downstream: Version) -> Version {
        match self {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::Http2 => Version::HTTP_2,
            Protocol::Auto if downstream == Version::HTTP_2 => Version::HTTP_2,
            Protocol::Auto => Version::HTTP_11,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Auto => "auto",
        }
    }
}

/// TLS to an upstream's endpoints. File paths are read by the sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// None: the bundled webpki roots.
    pub ca_file: Option<String>,
    /// None: the endpoint's host.
    pub server_name: Option<String>,
    /// A client certificate chain and its key.
    pub client_cert: Option<(String, String)>,
}
