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
    /// How often endpoint names are resolved again.
    pub dns_refresh: Duration,
    pub outlier: Outlier,
    pub retry_budget: RetryBudget,
}

/// Passive outlier detection: `consecutive_failures` in a row eject an endpoint for
/// `base_ejection`, doubled for each ejection after; at most `max_ejected_percent` of the
/// endpoints, rounded down, are out at once (so one endpoint alone never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlier {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejected_percent: u32,
}

impl Outlier {
    /// How many of `n` endpoints may be out at once.
    pub fn max_ejected(&self, n: usize) -> usize {
        n * self.max_ejected_percent.min(100) as usize / 100
    }
}

/// Retries an upstream takes on top of its requests: `ratio_percent` of them, and at
/// least `min_count` per `min_period` whatever the ratio (Linkerd's and Finagle's retry
/// budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    pub ratio_percent: u32,
    pub min_count: u64,
    pub min_period: Duration,
}

impl RetryBudget {
    pub fn min_per_second(&self) -> f64 {
        if self.min_period.is_zero() { 0.0 } else { self.min_count as f64 / self.min_period.as_secs_f64() }
    }
}

/// How often names are resolved again when the policy says nothing.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(5);
/// The retry budget when the policy says nothing: 20 %, 10/s.
pub const DEFAULT_RETRY_BUDGET: RetryBudget =
    RetryBudget { ratio_percent: 20, min_count: 10, min_period: Duration::from_secs(1) };

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
