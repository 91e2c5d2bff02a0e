//! The caps set by flags rather than by policy: on a request's head (`--max-uri-bytes`,
//! `--max-header-bytes`, which `decide` checks), and on what requests may hold at once
//! (`--max-buffered-bytes`, `--max-in-flight`, `--stream-idle-timeout`), which the proxy
//! enforces.

use warden_policy::decide::HeadCaps;

/// The sidecar's caps.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// URI and header sizes, checked by `decide` before anything else reads the request.
    pub head: HeadCaps,
    /// The longest an upstream may go quiet in the middle of a response body.
    pub stream_idle_timeout: std::time::Duration,
    /// Request bodies buffered at once, all requests together (`Live::buffer_budget`).
    pub max_buffered_bytes: usize,
    /// Requests waiting on upstreams at once, all together (`Live::in_flight`): the last
    /// guard when per-endpoint circuit breakers add up to more than the process can hold.
    pub max_in_flight: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            head: HeadCaps::default(),
            stream_idle_timeout: std::time::Duration::from_secs(300),
            max_buffered_bytes: 64 << 20,
            max_in_flight: 10_000,
        }
    }
}
