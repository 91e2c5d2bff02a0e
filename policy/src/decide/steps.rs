//! The decision, in the order it is made: the request's form (method, sizes, one Host),
//! its path, host and client address → the service's access list → the route (on the
//! path as an app sees it: `%2F` decoded) → escaped slashes → the route's access list →
//! CORS (a preflight is answered here, before auth: browsers send it without credentials)
//! → the upstream's protocol (a gRPC call needs HTTP/2) → auth → limits → the declared
//! body size → the rewrite. In `mode: dry_run` a rule that
//! would refuse is noted and the request goes on; a malformed request is refused in any
//! mode. The sidecar runs this for every request; `wardenctl explain` runs it with a
//! read-only limit view and a trace.

use std::borrow::Cow;

use http::header;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method};

use crate::auth::hmac::BodyCheck;
use crate::auth::provider::{AuthKind, AuthProvider, HeadCheck};
use crate::client_ip::{self, ClientIp};
use crate::cors::{self, Cors};
use crate::decide::decision::{Action, BodyDecision, Decision, Env, Forward, Preflight};
use crate::decide::request::{Request, check_head, request_host};
use crate::decide::trace::{Trace, note};
use crate::grpc;
use crate::limits::admit::admit;
use crate::limits::limit::LimitRequest;
use crate::normalize::{PathError, decode_escaped_slashes, normalize_path};
use crate::refusal::Refusal;
use crate::snapshot::compiled::{Mode, Snapshot};
use crate::snapshot::route::{AccessRule, EscapedSlashes, Mismatch, Route};
use crate::snapshot::upstream::Protocol;

/// Decides what happens to a request. `trace`, when given, gets each step in words.
pub fn decide<'s, 'r>(env: &Env<'s, '_>, req: &Request<'r>, mut trace: Option<&mut Trace>) -> Decision<'s, 'r> {
    let snapshot = env.snapshot;
    note(&mut trace, "request", || format!("{} {}", req.method, req.uri));
    if let Some(r) = check_head(&env.caps, req) {
        note(&mut trace, "request form", || format!("refused: {}", r.message(Some(&snapshot.service))));
        return Decision::refused(r);
    }
    let mut d = Decision::refused(Refusal::NoRoute);
    let path = match normalize_path(req.uri.path()) {
        Ok(p) => p,
        Err(e) => return deny(d, Refusal::BadPath(e)),
    };
    note(&mut trace, "path", || match path.as_ref() == req.uri.path() {
        true => path.to_string(),
        false => format!("{path}  (normalized from {})", req.uri.path()),
    });
    d.path = Some(path.clone());
    match request_host(req.uri, req.headers) {
        Ok(h) => d.host = h,
        Err(e) => return deny(d, Refusal::BadHost(e)),
    }
    let host = d.host.as_ref().map_or("", |h| h.name());
    note(&mut trace, "host", || if host.is_empty() { "(none)".into() } else { host.to_owned() });
    let Ok(client) = client_ip::derive(&snapshot.trusted_proxies, req.peer, req.headers) else {
        note(&mut trace, "client ip", || {
            format!(
                "refused: peer {} is a trusted proxy and its x-forwarded-for has a hop that is not an address",
                req.peer
            )
        });
        return deny(d, Refusal::BadForwardedFor);
    };
    d.client = Some(client);
    note(&mut trace, "client ip", || describe_client(client, req));

    if let Some(rule) = &snapshot.access {
        note(&mut trace, "access", || access_verdict(rule, client));
        if let Some(r) = enforce(snapshot, &mut d.would_deny, rule.check(client.ip)) {
            return deny(d, r);
        }
    }
    let decoded = decode_escaped_slashes(&path);
    if decoded != path {
        note(&mut trace, "routed as", || format!("{decoded}  (escaped slashes decoded, as the app sees them)"));
    }
    let key = snapshot.routing_key(&decoded);
    // A CORS preflight finds the route of the method it asks about; one whose route has
    // no CORS is the app's own OPTIONS request.
    let asked = cors::preflight_method(req.method, req.headers);
    let preflight =
        asked.as_ref().and_then(|m| snapshot.route_for(m, host, &key, req.headers)).filter(|r| r.cors.is_some());
    let method = match (&asked, preflight) {
        (Some(m), Some(_)) => m,
        _ => req.method,
    };
    if let Some(t) = trace.as_deref_mut() {
        if preflight.is_some() {
            t.push("preflight", format!("CORS preflight: routes match by the method it asks for, {method}"));
        }
        trace_routes(t, snapshot, method, req.headers, host, &key);
    }
    let Some(route) = preflight.or_else(|| snapshot.route_for(req.method, host, &key, req.headers)) else {
        return deny(d, Refusal::NoRoute);
    };
    d.route = Some(route);
    // From the request, not from whether decoding changed it: a path decoding cannot
    // resolve comes back as it was, `%2F` and all, and must still meet the route's rule.
    let escaped = path.contains("%2F");
    if escaped && route.escaped_slashes == EscapedSlashes::Reject {
        return deny(d, Refusal::BadPath(PathError::EscapedSlash));
    }
    if let Some(rule) = &route.access {
        note(&mut trace, "route access", || access_verdict(rule, client));
        if let Some(r) = enforce(snapshot, &mut d.would_deny, rule.check(client.ip)) {
            return deny(d, r);
        }
    }

    if let Some(cors) = &route.cors {
        let origin = req.headers.get(header::ORIGIN);
        // An actual request's origin is checked once, when its response is answered.
        note(&mut trace, "cors", || {
            cors_verdict(cors, origin, origin.is_some_and(|o| cors.allows(o)), preflight.is_some())
        });
        if preflight.is_some() {
            let allowed = origin.filter(|o| cors.allows(o));
            if allowed.is_none() {
                let origin = origin.map(|o| String::from_utf8_lossy(o.as_bytes())).unwrap_or_default();
                let origin = crate::text::escape_within(&origin, 200).into_owned();
                let r = Refusal::CorsOriginNotAllowed { route: route.name.clone(), origin };
                if let Some(r) = enforce(snapshot, &mut d.would_deny, Some(r)) {
                    return deny(d, r);
                }
            }
            // Browsers send no credentials on a preflight: auth and limits are for the call.
            d.action = Action::Preflight(Preflight { cors, origin: allowed.cloned() });
            return d;
        }
    }

    // HTTP/1.1 cannot carry a gRPC call's trailers: refused, whatever the mode, never sent.
    if route.upstream.protocol == Protocol::Http1 && grpc::Caller::of(req.headers) == Some(grpc::Caller::Native) {
        note(&mut trace, "protocol", || {
            format!("refused: gRPC, but upstream '{}' speaks HTTP/1.1", route.upstream.name)
        });
        return deny(d, Refusal::ProtocolMismatch { upstream: route.upstream.name.to_string() });
    }

    let mut body_check = None;
    if let Some(provider) = &route.auth {
        let checked = match env.recorded {
            Some(recorded) => recorded.check(provider, env.creds, req.headers, env.now_ms),
            None => provider.check_head(env.creds, req.headers, env.now_ms),
        };
        note(&mut trace, "auth", || describe_auth(provider, &checked));
        match checked {
            Ok(HeadCheck::Passed(id)) => d.identity = Some(id),
            Ok(HeadCheck::NeedsBody(check)) => body_check = Some(check),
            Err(failure) => {
                if let Some(r) = enforce(snapshot, &mut d.would_deny, Some(Refusal::unauthenticated(provider, failure)))
                {
                    return deny(d, r);
                }
            }
        }
    } else {
        note(&mut trace, "auth", || "none on this route".into());
    }

    // Limits count once the caller is known (a webhook's sender is known from its header).
    let mut ratelimit = None;
    if !route.limits.is_empty() {
        let who = d.identity.as_ref().or_else(|| body_check.as_ref().map(BodyCheck::identity));
        let lr = LimitRequest { route: &route.name, identity: who, client_ip: client.ip, headers: req.headers };
        match admit(&route.limits, &lr, env.limits, trace.as_deref_mut()) {
            Ok((tightest, would_deny)) => {
                d.would_deny.extend(would_deny);
                ratelimit = tightest;
            }
            Err(r) => return deny(d, r),
        }
    }

    // A declared length over the limit is refused before a byte of the body is read.
    let declared = req.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > route.max_body) {
        note(&mut trace, "body", || format!("content-length {n} is over max_body {}", route.max_body));
        return deny(d, Refusal::BodyTooLarge { limit: route.max_body });
    }

    let rewritten = route.rewritten_path(&decoded).or_else(|| escaped.then(|| decoded.into_owned()));
    if let (Some(new), Some(t)) = (&rewritten, trace.as_deref_mut()) {
        t.push("rewrite", format!("path {path} -> {new}"));
    }
    if let (Some(h), Some(t)) = (&route.rewrite_host, trace.as_deref_mut()) {
        t.push("rewrite", format!("host -> {}", h.to_str().unwrap_or("?")));
    }
    // Normalizing borrows the request's path when it had nothing to change.
    let unchanged = matches!(path, Cow::Borrowed(_));
    let path_and_query = match upstream_target(req, &path, unchanged, rewritten) {
        Ok(pq) => pq,
        Err(r) => return deny(d, r),
    };
    if let Some(r) = d.would_deny.first()
        && let Some(t) = trace
    {
        t.push("dry run", format!("would DENY {} {} (rule {})", r.status().as_u16(), r.code(), r.rule()));
    }
    d.action = Action::Forward(Forward { route, path_and_query, body_check, ratelimit });
    d
}

/// Checks a signed body once it has been read (the continuation of a decision whose
/// `Forward::body_check` is set).
pub fn body(snapshot: &Snapshot, route: &Route, check: BodyCheck<'_>, body: &[u8]) -> BodyDecision {
    match check.verify(body) {
        Ok(id) => BodyDecision::Passed(id),
        Err(failure) => {
            let r = route.auth.as_deref().map_or(Refusal::BadBody, |p| Refusal::unauthenticated(p, failure));
            match snapshot.mode {
                Mode::DryRun => BodyDecision::WouldDeny(r),
                Mode::Enforce => BodyDecision::Refused(r),
            }
        }
    }
}

fn deny<'s, 'r>(mut d: Decision<'s, 'r>, r: Refusal) -> Decision<'s, 'r> {
    d.action = Action::Deny(r);
    d
}

/// A rule's refusal: final when enforcing; in dry run noted and passed over.
fn enforce(snapshot: &Snapshot, would_deny: &mut Vec<Refusal>, refusal: Option<Refusal>) -> Option<Refusal> {
    match (refusal, snapshot.mode) {
        (Some(r), Mode::Enforce) => Some(r),
        (Some(r), Mode::DryRun) => {
            would_deny.push(r);
            None
        }
        (None, _) => None,
    }
}

/// The upstream request line's target, origin-form: the rewritten or normalized path and
/// the original query. None: the request's own bytes are sent unchanged. (An
/// absolute-form URI without a path has no path-and-query: that is "/".)
fn upstream_target(
    req: &Request<'_>,
    path: &str,
    unchanged: bool,
    new: Option<String>,
) -> Result<Option<PathAndQuery>, Refusal> {
    let p = match (&new, unchanged) {
        (None, true) if req.uri.path_and_query().is_some() => return Ok(None),
        (None, true) => return Ok(Some(PathAndQuery::from_static("/"))),
        (Some(n), _) => n.as_str(),
        (None, false) => path,
    };
    let pq = match req.uri.query() {
        Some(q) => format!("{p}?{q}"),
        None => p.to_owned(),
    };
    PathAndQuery::try_from(pq).map(Some).map_err(|_| Refusal::BadPath(PathError::BadRewrite))
}

/// Every route in file order up to the first that matches, and why each other did not.
/// The request path finds the same route through the route index.
fn trace_routes(t: &mut Trace, snapshot: &Snapshot, method: &Method, headers: &HeaderMap, host: &str, key: &str) {
    for (i, route) in snapshot.routes.iter().enumerate() {
        let verdict = match route.mismatch(method, host, key, headers) {
            None => "MATCH".to_owned(),
            Some(Mismatch::Path) if !snapshot.case_insensitive_paths && route.path_matches_ignoring_case(key) => {
                "no: path differs only by case (an app that ignores case routes it here: \
                 set defaults.case_insensitive_paths)"
                    .to_owned()
            }
            Some(m) => format!("no: {}", m.describe()),
        };
        let matched = verdict == "MATCH";
        t.push(format!("route {}", i + 1), format!("{}  {verdict}", route.name));
        if matched {
            return;
        }
    }
}

fn cors_verdict(cors: &Cors, origin: Option<&HeaderValue>, allowed: bool, preflight: bool) -> String {
    let Some(origin) = origin else {
        return "no origin: not a browser's cross-origin call (the app's access-control-* headers are removed)".into();
    };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let origin = crate::text::escape_within(&origin, 200);
    match (allowed, preflight) {
        (true, true) => format!("origin {origin} allowed: Warden answers the preflight 204 ({})", cors.describe()),
        (false, true) => format!("origin {origin} is not allowed: the preflight is refused"),
        (true, false) => format!("origin {origin} allowed: the response gets access-control-allow-origin {origin}"),
        (false, false) => format!(
            "origin {origin} is not allowed: forwarded without CORS headers (the browser keeps the answer from the page)"
        ),
    }
}

fn describe_client(client: ClientIp, req: &Request<'_>) -> String {
    let peer = req.peer;
    match (client.peer_trusted, client.ip == crate::ipset::canonical(peer)) {
        (false, _) => format!("{} (the connecting address)", client.ip),
        (true, true) => format!("{} (peer {peer} is a trusted proxy; no untrusted hop in x-forwarded-for)", client.ip),
        (true, false) => format!("{} (peer {peer} is a trusted proxy; from x-forwarded-for)", client.ip),
    }
}

fn access_verdict(rule: &AccessRule, client: ClientIp) -> String {
    match rule.check(client.ip) {
        None => format!("{} allowed by {}", client.ip, rule.name),
        Some(r) => format!("{} refused by {}", client.ip, r.rule()),
    }
}

fn describe_auth(p: &AuthProvider, checked: &Result<HeadCheck<'_>, crate::auth::failure::AuthFailure>) -> String {
    let kind = match p.kind {
        AuthKind::ApiKey => "api_key",
        AuthKind::Jwt(_) => "jwt",
        AuthKind::Hmac(_) => "hmac",
    };
    let verdict = match checked {
        Ok(HeadCheck::Passed(id)) => format!(
            "PASSED as client '{}'{}",
            id.client,
            id.plan.as_ref().map(|p| format!(", plan '{p}'")).unwrap_or_default()
        ),
        Ok(HeadCheck::NeedsBody(_)) => "signature header present: the body's signature decides".into(),
        Err(f) => {
            let r = Refusal::unauthenticated(p, f.clone());
            format!("REFUSED {} {}", r.status().as_u16(), r.code())
        }
    };
    format!("{} ({kind}, header {}): {verdict}", p.name, p.header)
}
