//! The decision: given the active snapshot and a request's head, forward it (which route,
//! which path) or refuse it (why). Pure: no I/O, no clock, no allocation unless a rewrite
//! builds a new path. The sidecar and `wardenctl explain` call this same function.

use std::borrow::Cow;

use http::{HeaderMap, Method, Uri};

use crate::config::{Route, Snapshot};
use crate::deny::Refusal;

/// What a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// Lower-case, without port; empty when the request names no host.
    pub host: &'a str,
    /// Normalized (see `normalize`).
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'s> {
    Forward {
        route: &'s Route,
        /// The rewritten path, when the route rewrites; else the normalized path is sent.
        path: Option<String>,
    },
    Deny(Refusal),
}

/// Runs the request through the snapshot's steps in order: route → rewrite.
pub fn decide<'s>(snapshot: &'s Snapshot, head: &RequestHead<'_>) -> Decision<'s> {
    let matched =
        snapshot.routes.iter().find(|r| r.mismatch(head.method, head.host, head.path, head.headers).is_none());
    match matched {
        Some(route) => Decision::Forward { route, path: route.rewritten_path(head.path) },
        None => Decision::Deny(Refusal::NoRoute),
    }
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form) or the `Host`
/// header, lower-cased, without its port.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Cow<'a, str> {
    let raw = uri
        .host()
        .or_else(|| headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(strip_port))
        .unwrap_or("");
    if raw.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(raw.to_ascii_lowercase()) } else { Cow::Borrowed(raw) }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn host_from_header_or_uri() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("API.Example.com:8443"));
        assert_eq!(request_host(&Uri::from_static("/x"), &h), "api.example.com");
        assert_eq!(request_host(&Uri::from_static("http://Other.io/x"), &h), "other.io");
        h.insert("host", HeaderValue::from_static("[::1]:80"));
        assert_eq!(request_host(&Uri::from_static("/x"), &h), "[::1]");
        assert_eq!(request_host(&Uri::from_static("/x"), &HeaderMap::new()), "");
    }
}
