//! The request as `decide` reads it, and the checks on its form that come before any
//! rule: method spelling, URI and header sizes, one `Host`, a valid host.

use std::net::IpAddr;

use http::{HeaderMap, Method, Uri, header};

use crate::host::{CanonicalHost, HostError, canonical_host};
use crate::refusal::Refusal;

/// A request's head as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub method: &'r Method,
    pub uri: &'r Uri,
    pub headers: &'r HeaderMap,
    /// The socket peer.
    pub peer: IpAddr,
}

/// The caps on a request's head: the sidecar's `--max-uri-bytes` and `--max-header-bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadCaps {
    /// The request target (path and query); longer is 414.
    pub max_uri_bytes: usize,
    /// All header names and values; more is 431.
    pub max_header_bytes: usize,
}

impl Default for HeadCaps {
    fn default() -> Self {
        HeadCaps { max_uri_bytes: 8 << 10, max_header_bytes: 64 << 10 }
    }
}

/// The request's form, before anything else reads it: None when it may go on.
pub fn check_head(caps: &HeadCaps, req: &Request<'_>) -> Option<Refusal> {
    if let Err(r) = check_method(req.method) {
        return Some(r);
    }
    let uri_len = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > caps.max_uri_bytes {
        return Some(Refusal::UriTooLong { limit: caps.max_uri_bytes });
    }
    // As sent on the wire: "name: value\r\n".
    let header_bytes: usize = req.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > caps.max_header_bytes {
        return Some(Refusal::HeadersTooLarge { limit: caps.max_header_bytes });
    }
    // Two Host headers: routing would use one and the app maybe the other.
    if req.headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Some(Refusal::DuplicateHost);
    }
    None
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
