//! The decision: given the active snapshot, the credentials and a request's head, forward
//! it (which route, which path, as whom) or refuse it (why). Pure: no I/O, and the clock
//! is an argument. The sidecar and `wardenctl explain` call this same function. Steps, in
//! order: access (whole service) → route → the route's access → auth → rewrite. In
//! `mode: dry_run` a rule that would refuse is reported and the request goes on.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method, Uri};

use crate::auth::{BodyCheck, Credentials, HeadCheck, Identity};
use crate::config::{Mode, Route, Snapshot};
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
    /// As `client_ip::derive` found it.
    pub client_ip: IpAddr,
    /// Unix milliseconds: when keys expire and signatures go stale.
    pub now_ms: i64,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'s> {
    Forward {
        route: &'s Route,
        /// The rewritten path, when the route rewrites; else the normalized path is sent.
        path: Option<String>,
        /// Who the caller proved to be, when the route has auth.
        identity: Option<Identity>,
        /// A webhook signature to check against the body before forwarding.
        body_check: Option<BodyCheck<'s>>,
        /// In `dry_run` mode: what a rule would have refused.
        would_deny: Option<Refusal>,
    },
    /// Refused, and by which route's rule when a route had matched.
    Deny(Refusal, Option<&'s Route>),
}

/// Runs the request through the snapshot's steps in order.
pub fn decide<'s>(snapshot: &'s Snapshot, creds: &'s Credentials, head: &RequestHead<'_>) -> Decision<'s> {
    let mut would_deny = None;
    // A refusal by a rule: final when enforcing, noted and passed over in dry run.
    let mut enforce = |refusal: Option<Refusal>| match (refusal, snapshot.mode) {
        (Some(r), Mode::Enforce) => Some(r),
        (Some(r), Mode::DryRun) => {
            would_deny.get_or_insert(r);
            None
        }
        (None, _) => None,
    };
    if let Some(r) = enforce(snapshot.access.as_ref().and_then(|a| a.check(head.client_ip))) {
        return Decision::Deny(r, None);
    }
    let matched = snapshot.route_for(head.method, head.host, head.path, head.headers);
    let Some(route) = matched else { return Decision::Deny(Refusal::NoRoute, None) };
    if let Some(r) = enforce(route.access.as_ref().and_then(|a| a.check(head.client_ip))) {
        return Decision::Deny(r, Some(route));
    }
    let (mut identity, mut body_check) = (None, None);
    if let Some(provider) = &route.auth {
        match provider.check_head(creds, head.headers, head.now_ms) {
            Ok(HeadCheck::Passed(id)) => identity = Some(id),
            Ok(HeadCheck::NeedsBody(check)) => body_check = Some(check),
            Err(failure) => {
                if let Some(r) = enforce(Some(Refusal::unauthenticated(provider, failure))) {
                    return Decision::Deny(r, Some(route));
                }
            }
        }
    }
    Decision::Forward { route, path: route.rewritten_path(head.path), identity, body_check, would_deny }
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
