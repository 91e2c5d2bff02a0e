//! The caps on a request's head and on what requests may hold at once, set by flags
//! (`--max-uri-bytes`, `--max-header-bytes`, `--max-buffered-bytes`, `--max-in-flight`,
//! `--stream-idle-timeout`), not by policy.

use http::{HeaderMap, Method, Uri, header};

use warden_policy::decide::check_method;
use warden_policy::refusal::Refusal;

/// Limits on a request's head, checked before anything else reads it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// The request target (path and query); longer is 414.
    pub max_uri_bytes: usize,
    /// All header names and values; more is 431.
    pub max_header_bytes: usize,
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
            max_uri_bytes: 8 << 10,
            max_header_bytes: 64 << 10,
            stream_idle_timeout: std::time::Duration::from_secs(300),
            max_buffered_bytes: 64 << 20,
            max_in_flight: 10_000,
        }
    }
}

impl EdgeLimits {
    pub fn check_head(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Refusal> {
        if let Err(r) = check_method(method) {
            return Some(r);
        }
        let uri_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > self.max_uri_bytes {
            return Some(Refusal::UriTooLong { limit: self.max_uri_bytes });
        }
        // As sent on the wire: "name: value\r\n".
        let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.max_header_bytes {
            return Some(Refusal::HeadersTooLarge { limit: self.max_header_bytes });
        }
        // Two Host headers: routing would use one and the app maybe the other.
        if headers.get_all(header::HOST).iter().nth(1).is_some() {
            return Some(Refusal::DuplicateHost);
        }
        None
    }
}
