//! One request, top to bottom: load the snapshot → normalize → decide → forward → answer.
//!
//! Everything Warden refuses is answered by `deny.rs`; everything it forwards goes to the
//! route's upstream with hop-by-hop headers stripped, `x-forwarded-*` and `x-request-id`
//! set, and the route's header edits applied. Bodies stream both ways, never buffered.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::config::{HeaderOps, Route, Snapshot};
use crate::decide::{Decision, RequestHead, decide, request_host};
use crate::deny::{DenyContext, Refusal};
use crate::live::Live;
use crate::normalize::normalize_path;
use crate::upstream::classify;

/// What a proxied response carries: the upstream's streamed body, or Warden's own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Connection-scoped headers (RFC 9110 §7.6.1) that must not cross a proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Handles one request.
pub async fn handle(live: &Live, req: Request<Incoming>, conn: ConnInfo) -> Response<ProxyBody> {
    let request_id = request_id(req.headers());
    let Some(snapshot) = live.snapshot() else {
        return refuse(&Refusal::NotReady, None, None, &request_id);
    };
    let (mut parts, body) = req.into_parts();

    let path = match normalize_path(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return refuse(&Refusal::BadPath(e), Some(&snapshot), None, &request_id),
    };
    let host = request_host(&parts.uri, &parts.headers);
    let head = RequestHead {
        method: &parts.method,
        host: &host,
        path: &path,
        headers: &parts.headers,
    };
    let (route, new_path) = match decide(&snapshot, &head) {
        Decision::Forward { route, path } => (route, path),
        Decision::Deny(r) => return refuse(&r, Some(&snapshot), None, &request_id),
    };

    // The upstream request line: the rewritten or normalized path, the original query.
    let path_and_query = match (new_path, &path) {
        (None, std::borrow::Cow::Borrowed(_)) => parts.uri.path_and_query().cloned(),
        (new, _) => {
            let p = new.as_deref().unwrap_or(&path);
            let pq = match parts.uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.to_owned(),
            };
            PathAndQuery::try_from(pq).ok()
        }
    };
    let upstream = &route.upstream;
    let endpoint = upstream.pick().clone();
    let mut uri = Uri::builder().scheme(Scheme::HTTP).authority(endpoint);
    if let Some(pq) = path_and_query {
        uri = uri.path_and_query(pq);
    }
    let Ok(uri) = uri.build() else {
        return refuse(
            &Refusal::NoRoute,
            Some(&snapshot),
            Some(&route.name),
            &request_id,
        );
    };

    let original_authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    prepare_request_headers(
        &mut parts.headers,
        route,
        conn,
        &request_id,
        original_authority,
    );

    let req = Request::from_parts(parts, body);
    let sent = tokio::time::timeout(route.timeout, upstream.client.request(req)).await;
    let mut resp = match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let failure = classify(&e);
            tracing::debug!(error = %e, upstream = %upstream.name, "upstream request failed");
            let r = Refusal::Upstream {
                upstream: upstream.name.to_string(),
                failure,
            };
            return refuse(&r, Some(&snapshot), Some(&route.name), &request_id);
        }
        Err(_) => {
            let r = Refusal::UpstreamTimeout {
                upstream: upstream.name.to_string(),
                after: route.timeout,
            };
            return refuse(&r, Some(&snapshot), Some(&route.name), &request_id);
        }
    };

    let headers = resp.headers_mut();
    strip_hop_by_hop(headers);
    apply_ops(headers, &route.response_headers);
    headers.insert(X_REQUEST_ID, request_id);
    resp.map(Either::Left)
}

fn refuse(
    r: &Refusal,
    snapshot: Option<&Arc<Snapshot>>,
    route: Option<&str>,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let ctx = DenyContext {
        service: snapshot.map(|s| &*s.service),
        route,
        request_id,
    };
    r.response(&ctx).map(Either::Right)
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    route: &Route,
    conn: ConnInfo,
    request_id: &HeaderValue,
    authority: Option<String>,
) {
    strip_hop_by_hop(headers);
    // Identity headers are Warden's to set; a client must never be able to forge them.
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-warden-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }

    // HTTP/2 and absolute-form requests carry the host in the URI, not in a header.
    if !headers.contains_key(header::HOST)
        && let Some(v) = authority.and_then(|a| HeaderValue::try_from(a).ok())
    {
        headers.insert(header::HOST, v);
    }
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
    // Until trusted proxies are configured, the socket peer is the client: whatever the
    // client wrote in x-forwarded-for is replaced, never believed.
    if let Ok(v) = HeaderValue::try_from(conn.peer.ip().to_string()) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    headers.insert(X_REQUEST_ID, request_id.clone());
    if let Some(h) = &route.rewrite_host {
        headers.insert(header::HOST, h.clone());
    }
    apply_ops(headers, &route.request_headers);
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    if let Some(conn) = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    {
        for name in conn.split(',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) {
                headers.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn apply_ops(headers: &mut HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        headers.remove(name);
    }
    for (name, value) in &ops.set {
        headers.insert(name.clone(), value.clone());
    }
}

/// Keeps a well-formed incoming `x-request-id` (1-128 visible ASCII characters) so a
/// client can correlate; otherwise makes a new ULID.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        if (1..=128).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut buf = [0u8; ulid::ULID_LEN];
    let id = ulid::Ulid::new();
    HeaderValue::from_str(id.array_to_str(&mut buf))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
