//! An upstream as the policy describes it: a name, endpoints and how to connect. Pure
//! data; the sidecar binds it to connection pools.

use std::sync::Arc;
use std::time::Duration;

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
}
