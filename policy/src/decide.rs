//! The decision: given the active snapshot, the credentials and a request's head, forward
//! it (which route, which path, as whom) or refuse it (why). Pure: no I/O, and the clock
//! is an argument. The sidecar and `wardenctl explain` call this same function. Steps, in
//! order: access (whole service) → route (on the path as an app sees it: `%2F` decoded)
//! → escaped slashes → the route's access → auth → rewrite. In `mode: dry_run` a rule
//! that would refuse is reported and the request goes on.

use std::net::IpAddr;

use http::{HeaderMap, Method, Uri};

use crate::auth::{BodyCheck, Credentials, HeadCheck, Identity};
use crate::host::{CanonicalHost, HostError, canonical_host};
use crate::normalize::{PathError, decode_escaped_slashes};
use crate::refusal::Refusal;
use crate::snapshot::{EscapedSlashes, Mode, Route, Snapshot};

/// What a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// Canonical (`host::canonical_host`), without port; empty when the request names no host.
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
        /// The rewritten (or decoded) path, when the route rewrites or the path had escaped
        /// slashes to decode; else the normalized path is sent.
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
    let decoded = decode_escaped_slashes(head.path);
    let key = snapshot.routing_key(&decoded);
    let matched = snapshot.route_for(head.method, head.host, &key, head.headers);
    let Some(route) = matched else { return Decision::Deny(Refusal::NoRoute, None) };
    // From the request, not from whether decoding changed it: a path decoding cannot
    // resolve comes back as it was, `%2F` and all, and must still meet the route's rule.
    let escaped = head.path.contains("%2F");
    if escaped && route.escaped_slashes == EscapedSlashes::Reject {
        return Decision::Deny(Refusal::BadPath(PathError::EscapedSlash), Some(route));
    }
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
    let path = route.rewritten_path(&decoded).or_else(|| escaped.then(|| decoded.into_owned()));
    Decision::Forward { route, path, identity, body_check, would_deny }
}

/// Refuses a method with a lower-case letter: `post` is an extension method to routes that
/// list POST, and POST to a framework that upper-cases it. Methods are case-sensitive and
/// nginx refuses these too.
pub fn check_method(method: &Method) -> Result<(), Refusal> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) { Err(Refusal::BadMethod) } else { Ok(()) }
}

/// The host a request is for, canonical: the URI's authority (HTTP/2, absolute-form), else
/// the `Host` header; None when the request names none. Every host the request carries
/// must be valid, since the app may read either.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<Option<CanonicalHost<'a>>, HostError> {
    let header = match headers.get(http::header::HOST) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => Some(canonical_host(v.to_str().map_err(|_| HostError::Invalid)?)?),
    };
    match uri.authority() {
        Some(a) => canonical_host(a.as_str()).map(Some),
        None => Ok(header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn name(uri: &'static str, h: &HeaderMap) -> Result<Option<String>, HostError> {
        request_host(&Uri::from_static(uri), h).map(|c| c.map(|c| c.name().to_owned()))
    }

    #[test]
    fn host_from_header_or_uri() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("API.Example.com.:8443"));
        assert_eq!(name("/x", &h), Ok(Some("api.example.com".into())));
        assert_eq!(name("http://Other.io./x", &h), Ok(Some("other.io".into())));
        h.insert("host", HeaderValue::from_static("[::1]:80"));
        assert_eq!(name("/x", &h), Ok(Some("[::1]".into())));
        assert_eq!(name("/x", &HeaderMap::new()), Ok(None));
        h.insert("host", HeaderValue::from_static("a, b"));
        assert_eq!(name("http://ok.io/x", &h), Err(HostError::Invalid), "a bad Host beside an authority");
        assert_eq!(name("http://u@ok.io/x", &HeaderMap::new()), Err(HostError::Userinfo));
    }
}
