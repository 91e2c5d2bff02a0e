//! One request, top to bottom: load the active policy → `decide` (the policy crate's:
//! every check that can refuse a request before it is forwarded) → execute the decision:
//! read a signed body, forward, answer.
//!
//! Everything Warden refuses is answered by `deny.rs`; everything it forwards goes to the
//! route's upstream with hop-by-hop headers stripped, `x-forwarded-*` and `x-request-id`
//! set, the caller's identity (`x-warden-client`, `x-warden-plan`) added, and the route's
//! header edits applied. Bodies stream both ways; the one exception is a route whose
//! auth signs the body (webhooks), buffered up to its `max_body` and checked first
//! (`signed_body.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use warden_policy::auth::Identity;
use warden_policy::client_ip::ClientIp;
use warden_policy::cors::Cors;
use warden_policy::decide::{
    Action, BodyDecision, Decision, Env, Request as DecideRequest, body as policy_body, decide,
};
use warden_policy::grpc::{self, Caller};
use warden_policy::limits::{self, Counters, Shadowed};
use warden_policy::refusal::{DenyContext, RATELIMIT, RATELIMIT_POLICY, Refusal};
use warden_policy::snapshot::{HeaderOps, Route, Snapshot};

use crate::active::{Active, Policy};
use crate::exchange::{Exchange, Failed, Replay, exchange};
use crate::live::Live;
use crate::signed_body;
use crate::telemetry::{DecisionKind, Outcome, SampledHead, ShadowDecision};
use crate::tunnel;
use crate::upstream::{Affinity, Deadline, SendError, UpstreamBody};
use hyper::upgrade::OnUpgrade;

/// What a proxied response carries: the upstream's streamed body, or Warden's own.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// The downstream connection a request arrived on; one per accepted connection.
#[derive(Debug)]
pub struct Downstream {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The upstream connection this downstream connection used last.
    pub affinity: Arc<Affinity>,
    /// `x-forwarded-for` for every request on this connection, built once.
    forwarded_for: HeaderValue,
}

impl Downstream {
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let forwarded_for = HeaderValue::try_from(warden_policy::ipset::canonical(peer.ip()).to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Downstream { peer, tls, affinity: Arc::default(), forwarded_for }
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_WARDEN_CLIENT: HeaderName = HeaderName::from_static("x-warden-client");
const X_WARDEN_PLAN: HeaderName = HeaderName::from_static("x-warden-plan");
const X_WARDEN_AUTH: HeaderName = HeaderName::from_static("x-warden-auth");

/// Forwarding and rewrite headers apps honour (`Forwarded` in Spring, `X-Original-URL` in
/// some Symfony versions, ...), removed when they come from anyone but a trusted proxy.
const UNTRUSTED_FORWARDING: [HeaderName; 7] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

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

/// Handles one request, and records how it ended (metrics, access log, deny record).
pub async fn handle(live: &Arc<Live>, req: Request<Incoming>, conn: &Downstream) -> Response<ProxyBody> {
    let started = std::time::Instant::now();
    let mut out = Outcome { method: req.method().clone(), client_ip: Some(conn.peer.ip()), ..Outcome::default() };
    // CORS is set on the way out, on the app's answers and on Warden's own alike.
    let mut cors = None;
    let mut resp = decide_and_forward(live, req, conn, &mut out, &mut cors).await;
    if let Some((c, origin)) = cors {
        c.apply(origin.as_ref(), resp.headers_mut());
    }
    let bytes = http_body::Body::size_hint(resp.body()).exact();
    live.telemetry().record(out, resp.status(), started.elapsed(), bytes);
    resp
}

async fn decide_and_forward(
    live: &Arc<Live>,
    req: Request<Incoming>,
    conn: &Downstream,
    out: &mut Outcome,
    cors: &mut Option<(Arc<Cors>, Option<HeaderValue>)>,
) -> Response<ProxyBody> {
    let (request_id, from_client) = request_id(req.headers());
    out.request_id = Some(request_id.clone());
    out.request_id_from_client = from_client;
    live.telemetry().start_span(req.headers(), out);
    let caller = Caller::of(req.headers());
    // The whole call's deadline runs from its arrival.
    let grpc_timeout = caller.and_then(|_| grpc::timeout(req.headers()));
    let arrived = tokio::time::Instant::now();
    let refuse = |out: &mut Outcome, r: &Refusal, snapshot: Option<&Arc<Snapshot>>| {
        answer_refusal(out, r, snapshot, &request_id, caller)
    };
    let active = live.active();
    let Some(policy) = &active.policy else {
        return refuse(out, &Refusal::NotReady, None);
    };
    let snapshot = &policy.snapshot;
    let (mut parts, body) = req.into_parts();
    let head = DecideRequest { method: &parts.method, uri: &parts.uri, headers: &parts.headers, peer: conn.peer.ip() };
    let decision = {
        // The limit view lives for the call only: it is not Send, and the decision keeps
        // nothing of it.
        let now = std::time::Instant::now();
        let counters = Counters { buckets: &policy.limits, quotas: live.quotas(), now, now_ns: limits::now_ns() };
        let env = Env {
            snapshot,
            creds: &active.credentials,
            caps: live.limits().head,
            limits: &counters,
            now_ms: now_unix_ms(),
            recorded: None,
        };
        decide(&env, &head, None)
    };
    if let Some(shadow) = &active.shadow {
        out.shadow = shadow_decision(live, &active, shadow, &head, &decision);
    }
    out.route = decision.route.map(|r| r.name.clone());
    if let Some(h) = &decision.host {
        out.host = h.name().to_owned();
    }
    if let Some(p) = &decision.path {
        out.path = p.to_string();
    }
    if let Some(c) = decision.client {
        out.client_ip = Some(c.ip);
    }
    for r in &decision.would_deny {
        log_would_deny(out, r, &request_id);
    }
    out.policy_version = snapshot.version;
    if let Some(id) = &decision.identity {
        out.client = Some(id.client.clone());
    }
    // A drawn request and every refusal keep the headers the policy reads (no credential)
    // and who the caller proved to be. A sample is taken now, as decided: kept when its
    // answer is known, a slow answer would miss its second.
    let pick = live.telemetry().samples.pick(out.route.as_ref());
    if pick.is_some() || decision.refusal().is_some() || !decision.would_deny.is_empty() || out.shadow.is_some() {
        if let Some(id) = &decision.identity {
            out.auth_provider = decision.route.and_then(|r| r.auth.as_ref()).map(|a| a.name.clone());
            out.key_id.clone_from(&id.key_id);
            out.plan.clone_from(&id.plan);
        }
        let (headers, credential_headers) = policy.sampled.capture(&parts.headers);
        let head = SampledHead { headers, credential_headers };
        if let Some(pick) = pick {
            let preflight = matches!(decision.action, Action::Preflight(_));
            live.telemetry().keep_sample(out, pick, decision.refusal(), preflight, &head);
        }
        out.head = Some(Box::new(head));
    }
    // The route's CORS and the request's origin, read only on a route that has CORS.
    *cors = decision.route.and_then(|r| r.cors.clone()).map(|c| (c, parts.headers.get(header::ORIGIN).cloned()));
    let fwd = match decision.action {
        Action::Forward(fwd) => fwd,
        Action::Deny(r) => return refuse(out, &r, Some(snapshot)),
        Action::Preflight(p) => {
            // Answered here, whole: nothing of it goes to the app.
            *cors = None;
            if out.decision == DecisionKind::Forward {
                out.decision = DecisionKind::Preflight;
            }
            return p.cors.preflight_response(p.origin.as_ref(), &request_id).map(|b| Either::Right(Full::new(b)));
        }
    };
    let (route, client) = (fwd.route, decision.client.unwrap_or(ClientIp { ip: conn.peer.ip(), peer_trusted: false }));
    // The app is told the host that was routed on, spelled as routes spell it.
    let canonical_host = match &decision.host {
        Some(h) if !h.unchanged() || parts.uri.authority().is_some() => HeaderValue::from_str(h.as_str()).ok(),
        _ => None,
    };
    let path_and_query = match fwd.path_and_query {
        Some(pq) => pq,
        None => parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    let mut identity = decision.identity;

    // Reading a signed body counts against the route's timeout: the whole exchange gets it.
    // The body whole when it is (none, or a signed body read already): a retry can resend it.
    let (body, _held, timeout, whole) = match fwd.body_check {
        None => {
            let whole = http_body::Body::is_end_stream(&body).then(Bytes::new);
            (Either::Left(body), None, route.timeout, whole)
        }
        Some(check) => {
            let started = std::time::Instant::now();
            let budget = live.buffer_budget();
            let buffered = match Box::pin(signed_body::read(body, route.max_body, route.timeout, &budget)).await {
                Ok(b) => b,
                Err(f) => return refuse(out, &f.refusal(), Some(snapshot)),
            };
            match policy_body(snapshot, route, check, &buffered.bytes) {
                BodyDecision::Passed(id) => {
                    out.client = Some(id.client.clone());
                    out.auth_provider = route.auth.as_ref().map(|a| a.name.clone());
                    out.plan.clone_from(&id.plan);
                    identity = Some(id);
                }
                BodyDecision::Refused(r) => return refuse(out, &r, Some(snapshot)),
                BodyDecision::WouldDeny(r) => log_would_deny(out, &r, &request_id),
            }
            let left = route.timeout.saturating_sub(started.elapsed());
            let whole = Some(buffered.bytes.clone());
            (Either::Right(Full::new(buffered.bytes.clone())), Some(buffered), left, whole)
        }
    };

    // A WebSocket on a route that takes them: the client's side of the tunnel, for later.
    let websocket = route.upgrades && parts.version == Version::HTTP_11 && tunnel::wants_websocket(&parts.headers);
    let client_upgrade = websocket.then(|| parts.extensions.remove::<OnUpgrade>()).flatten();
    let upstream = policy.upstream(&route.upstream);
    let endpoints = upstream.set.current();
    let Some(first) = upstream.pick(&endpoints, &[]) else {
        return refuse(out, &Refusal::NoEndpoints { upstream: upstream.name.to_string() }, Some(snapshot));
    };
    let endpoint = &endpoints[first];
    // A WebSocket handshake is HTTP/1.1 on both sides.
    let version = if websocket { Version::HTTP_11 } else { upstream.protocol.version_for(parts.version) };
    // HTTP/2 allows `te: trailers` alone, and gRPC servers want it.
    let te_trailers = version == Version::HTTP_2 && asks_for_trailers(&parts.headers);
    let target = Target { route, host: canonical_host, endpoint: endpoint.authority() };
    prepare_request_headers(&mut parts.headers, target, conn, client, &request_id);
    set_identity(&mut parts.headers, route, identity);
    if client_upgrade.is_some() {
        set_upgrade(&mut parts.headers);
    }
    if let (Some(t), Some(cx)) = (&live.telemetry().traces, &out.trace) {
        t.inject(cx, &mut parts.headers);
    }
    // The caller's deadline, capped by the route's; the app is told the one that holds.
    let deadline = grpc_timeout.map(|t| route.max_grpc_timeout.map_or(t, |max| t.min(max)));
    if let Some(d) = deadline
        && let Ok(v) = HeaderValue::try_from(grpc::timeout_value(d))
    {
        parts.headers.insert(grpc::GRPC_TIMEOUT, v);
    }
    parts.version = version;
    parts.uri = match version {
        Version::HTTP_2 => {
            // `:scheme` and `:authority` come from the URI; `Host` must not disagree.
            let authority = parts.headers.remove(header::HOST).and_then(|h| Authority::try_from(h.as_bytes()).ok());
            let authority = authority.unwrap_or_else(|| endpoint.authority().clone());
            let scheme = if endpoint.tls() { Scheme::HTTPS } else { Scheme::HTTP };
            if te_trailers {
                parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
            }
            Uri::from_parts({
                let mut p = http::uri::Parts::default();
                p.scheme = Some(scheme);
                p.authority = Some(authority);
                p.path_and_query = Some(path_and_query);
                p
            })
            .unwrap_or_default()
        }
        _ => Uri::from(path_and_query),
    };

    let replay = Replay::new(route, &parts, whole.as_ref());
    let req = Request::from_parts(parts, body);
    let Ok(in_flight) = live.in_flight().try_acquire() else {
        return refuse(out, &Refusal::Overloaded, Some(snapshot));
    };
    let asked = std::time::Instant::now();
    // Until the response head: the route's timeout, or what is left of the call's deadline.
    let call_left = deadline.map(|d| (arrived + d).saturating_duration_since(tokio::time::Instant::now()));
    let wait = call_left.map_or(timeout, |left| left.min(timeout));
    // How long a streamed response or a tunnel may go quiet here.
    let idle = route.idle_timeout.unwrap_or(live.limits().stream_idle_timeout);
    let x = Exchange {
        upstream,
        endpoints: &endpoints,
        first,
        affinity: &conn.affinity,
        route,
        stream_idle_timeout: idle,
        deadline: tokio::time::Instant::now() + wait,
        replay,
    };
    // Boxed: the exchange's state machine is large, and this future is moved whole into
    // the task an HTTP/2 stream runs in (a memcpy per request that showed in profiles).
    let exchanged = Box::pin(exchange(x, req)).await;
    drop(in_flight);
    out.upstream_time = Some(asked.elapsed());
    out.attempts = exchanged.attempts;
    live.telemetry().metrics.upstream_events(
        &upstream.name,
        exchanged.attempts.saturating_sub(1),
        exchanged.budget_refused,
        &exchanged.ejected,
    );
    let mut resp = match exchanged.result {
        Ok(resp) => resp,
        Err(Failed::Send(e)) => {
            let r = match e {
                SendError::BodyTooLarge => Refusal::BodyTooLarge { limit: route.max_body },
                SendError::BadRequestBody => Refusal::BadBody,
                SendError::Overloaded => Refusal::UpstreamOverloaded { upstream: upstream.name.to_string() },
                SendError::Upstream(failure) => Refusal::Upstream { upstream: upstream.name.to_string(), failure },
            };
            return refuse(out, &r, Some(snapshot));
        }
        Err(Failed::Timeout) => {
            let after = if wait < timeout { deadline.unwrap_or(wait) } else { route.timeout };
            let r = Refusal::UpstreamTimeout { upstream: upstream.name.to_string(), after };
            return refuse(out, &r, Some(snapshot));
        }
    };
    // Past the head, the deadline still holds: the call ends DEADLINE_EXCEEDED.
    if let Some(d) = deadline {
        let r = Refusal::UpstreamTimeout { upstream: upstream.name.to_string(), after: d };
        let mut trailers = HeaderMap::with_capacity(2);
        trailers.insert(grpc::GRPC_STATUS, HeaderValue::from(u16::from(r.row().grpc.code())));
        if let Ok(v) = HeaderValue::try_from(grpc::encode_message(&r.grpc_message(Some(&snapshot.service)))) {
            trailers.insert(grpc::GRPC_MESSAGE, v);
        }
        resp = resp.map(|b| b.with_deadline(Deadline { at: arrived + d, trailers }));
    }

    let tunnel = match client_upgrade {
        Some(client) if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
            // The close is logged, traced and counted against the upgrade request.
            let (held, out, open) = (live.clone(), out.clone(), live.telemetry().metrics.tunnel_opened());
            tunnel::join(live.tunnels(), client, hyper::upgrade::on(&mut resp), idle, move |stats| {
                drop(open);
                held.telemetry().tunnel_closed(out, stats);
            });
            true
        }
        _ => false,
    };
    let headers = resp.headers_mut();
    strip_headers(headers, Strip::Response);
    if tunnel {
        set_upgrade(headers);
    }
    apply_ops(headers, &route.response_headers);
    if let Some(t) = fwd.ratelimit {
        headers.insert(RATELIMIT_POLICY, t.policy);
        headers.insert(RATELIMIT, t.limit);
    }
    headers.insert(X_REQUEST_ID, request_id);
    resp.map(Either::Left)
}

/// The candidate in shadow decides the same head with its own limit buckets; only a
/// different outcome is kept (a refusal one side has and the other has not). The body
/// phase (a signed webhook's signature) is the live version's alone.
fn shadow_decision(
    live: &Live,
    active: &Active,
    shadow: &Policy,
    head: &DecideRequest<'_>,
    decision: &Decision<'_, '_>,
) -> Option<Box<ShadowDecision>> {
    let now = std::time::Instant::now();
    let counters = Counters { buckets: &shadow.limits, quotas: live.quotas(), now, now_ns: limits::now_ns() };
    let counters = Shadowed(counters);
    let env = Env {
        snapshot: &shadow.snapshot,
        creds: &active.credentials,
        caps: live.limits().head,
        limits: &counters,
        now_ms: now_unix_ms(),
        recorded: None,
    };
    let candidate = decide(&env, head, None);
    let version = shadow.snapshot.version;
    let (denied, r) = match (decision.refusal(), candidate.refusal()) {
        (None, Some(r)) => (true, r),
        (Some(r), None) => (false, r),
        _ => return None,
    };
    let route = candidate.route.map(|r| r.name.clone());
    let shadow = ShadowDecision { denied, route, rule: r.rule(), code: r.code(), status: r.status().as_u16(), version };
    live.telemetry().metrics.shadow_decision(&shadow);
    Some(Box::new(shadow))
}

fn log_would_deny(out: &mut Outcome, r: &Refusal, request_id: &HeaderValue) {
    // The first rule that would have refused is the one reported.
    if out.decision != DecisionKind::WouldDeny {
        out.decision = DecisionKind::WouldDeny;
        out.rule = Some(r.rule());
        out.code = Some(r.code());
        out.fault = Some(r.fault());
    }
    tracing::info!(
        request_id = request_id.to_str().unwrap_or_default(),
        route = out.route.as_deref().unwrap_or_default(),
        rule = r.rule(),
        code = r.code(),
        client_ip = ?out.client_ip,
        "dry run: would deny"
    );
}

fn now_unix_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Tells the app who is calling and which auth provider vouched for it (an API key's
/// client and a JWT's subject may share a name), and takes the credential away from it
/// unless the route forwards it. (Any `x-warden-*` the client sent is already gone.)
fn set_identity(headers: &mut HeaderMap, route: &Route, identity: Option<Identity>) {
    let Some(provider) = &route.auth else { return };
    if !route.forward_credentials {
        headers.remove(&provider.header);
    }
    let Some(id) = identity else { return };
    if let Ok(v) = HeaderValue::from_str(&provider.name) {
        headers.insert(X_WARDEN_AUTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id.client) {
        headers.insert(X_WARDEN_CLIENT, v);
    }
    if let Some(v) = id.plan.and_then(|p| HeaderValue::from_str(&p).ok()) {
        headers.insert(X_WARDEN_PLAN, v);
    }
}

/// Answers for Warden, in the caller's protocol, and notes why. The route, if one matched,
/// is already in `out`.
fn answer_refusal(
    out: &mut Outcome,
    r: &Refusal,
    snapshot: Option<&Arc<Snapshot>>,
    request_id: &HeaderValue,
    grpc: Option<Caller>,
) -> Response<ProxyBody> {
    out.decision = DecisionKind::Deny;
    out.rule = Some(r.rule());
    out.code = Some(r.code());
    out.fault = Some(r.fault());
    out.grpc_status = grpc.map(|_| r.row().grpc.code());
    let ctx = DenyContext { service: snapshot.map(|s| &*s.service), route: out.route.as_deref(), request_id, grpc };
    r.response(&ctx).map(|b| Either::Right(Full::new(b)))
}

/// Where a request is going, for the header edits.
struct Target<'a> {
    route: &'a Route,
    /// The canonical host routed on, when the `Host` header does not already say it
    /// (HTTP/2 and absolute-form requests carry it in the URI; other spellings differ).
    host: Option<HeaderValue>,
    /// The upstream endpoint picked.
    endpoint: &'a http::uri::Authority,
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    target: Target<'_>,
    conn: &Downstream,
    client: ClientIp,
    request_id: &HeaderValue,
) {
    let (route, endpoint) = (target.route, target.endpoint);
    // Identity headers are Warden's to set; a client must never be able to forge them.
    strip_headers(headers, Strip::Request { peer_trusted: client.peer_trusted });
    // The body's framing is re-derived from the body itself (hyper sets the length from
    // it, or chunks), so no client-sent length can disagree with what is sent.
    headers.remove(header::CONTENT_LENGTH);
    // Room for the headers added below, so the map grows once, not per insert.
    headers.reserve(5 + route.request_headers.set.len());

    // HTTP/2 and absolute-form requests carry the host in the URI, and routing used it:
    // it replaces any Host header (RFC 9112 §3.2.2) so the app sees the host that was
    // routed on, in its canonical spelling. An HTTP/1.0 request may name no host at all;
    // then the upstream is named.
    match target.host {
        Some(v) => {
            headers.insert(header::HOST, v);
        }
        None if !headers.contains_key(header::HOST) => {
            if let Ok(v) = HeaderValue::from_str(endpoint.as_str()) {
                headers.insert(header::HOST, v);
            }
        }
        None => {}
    }
    set_forwarded(headers, conn, client);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if let Some(h) = &route.rewrite_host {
        headers.insert(header::HOST, h.clone());
    }
    apply_ops(headers, &route.request_headers);
}

/// `x-forwarded-for`, `-proto` and `-host` for the app. From a trusted proxy the chain it
/// sent is kept and its own address appended, and its `-proto`/`-host` are kept; from
/// anyone else whatever the client wrote is replaced, never believed.
fn set_forwarded(headers: &mut HeaderMap, conn: &Downstream, client: ClientIp) {
    let ours_proto = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
    if client.peer_trusted {
        let chain: Vec<&str> = headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        if !chain.is_empty() {
            let joined = format!("{}, {}", chain.join(", "), warden_policy::ipset::canonical(conn.peer.ip()));
            if let Ok(v) = HeaderValue::try_from(joined) {
                headers.insert(X_FORWARDED_FOR, v);
            }
        } else {
            headers.insert(X_FORWARDED_FOR, conn.forwarded_for.clone());
        }
        let proto_ok = headers.get(X_FORWARDED_PROTO).is_some_and(|v| v == "https" || v == "http");
        if !proto_ok {
            headers.insert(X_FORWARDED_PROTO, ours_proto);
        }
        if !headers.contains_key(X_FORWARDED_HOST)
            && let Some(host) = headers.get(header::HOST).cloned()
        {
            headers.insert(X_FORWARDED_HOST, host);
        }
        return;
    }
    headers.insert(X_FORWARDED_FOR, conn.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, ours_proto);
    match headers.get(header::HOST).cloned() {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

/// What `strip_headers` removes besides hop-by-hop headers.
#[derive(Debug, Clone, Copy)]
enum Strip {
    Response,
    /// Also every `x-warden-*`, and from an untrusted peer the forwarding headers.
    Request {
        peer_trusted: bool,
    },
}

/// Removes hop-by-hop headers, the headers `Connection` names, and what `which` adds.
/// Nothing is copied or collected unless a request carries a forged name (rare).
fn strip_headers(headers: &mut HeaderMap, which: Strip) {
    // The names `Connection` lists are hop-by-hop too. Its values are shared with the
    // parsed head (a clone copies nothing), and a name looked up as `&str` is not copied.
    let mut i = 0;
    while let Some(listed) = headers.get_all(header::CONNECTION).iter().nth(i).cloned() {
        i += 1;
        for name in listed.to_str().unwrap_or_default().split(',').map(str::trim) {
            if !name.eq_ignore_ascii_case(header::CONNECTION.as_str()) {
                headers.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let Strip::Request { peer_trusted } = which else { return };
    let forged = |name: &HeaderName| {
        !plain_name(name)
            || name.as_str().starts_with("x-warden-")
            || (!peer_trusted && UNTRUSTED_FORWARDING.contains(name))
    };
    if headers.keys().any(forged) {
        let doomed: Vec<HeaderName> = headers.keys().filter(|n| forged(n)).cloned().collect();
        for name in doomed {
            headers.remove(name);
        }
    }
}

/// Letters, digits and `-` only. CGI, WSGI, Rack and PHP turn `-` into `_` and drop the
/// case, so `x_warden_client` and `X-Warden.Client` reach an app as the very variable
/// `x-warden-client` does (`HTTP_X_WARDEN_CLIENT`), and a forged copy can shadow the one
/// Warden set, or an `x-forwarded-*` a trusted proxy set. Any header the app trusts has
/// such twins, so, like nginx's default (`underscores_in_headers off`,
/// `ignore_invalid_headers on`), request headers with other characters are dropped.
fn plain_name(name: &HeaderName) -> bool {
    name.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn apply_ops(headers: &mut HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        headers.remove(name);
    }
    for (name, value) in &ops.set {
        headers.insert(name.clone(), value.clone());
    }
}

/// The headers a WebSocket handshake carries across (hop-by-hop everywhere else).
fn set_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Whether the client's `te` asks for trailers (a gRPC client's always does).
fn asks_for_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers")))
}

/// Keeps a well-formed incoming `x-request-id` (1-128 of `[A-Za-z0-9._:-]`: nothing a log,
/// a JSON string or a terminal could misread) so a client can correlate; otherwise makes
/// a new ULID. True when the id is the client's.
fn request_id(headers: &HeaderMap) -> (HeaderValue, bool) {
    if let Some(v) = headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        let plain = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-');
        if (1..=128).contains(&b.len()) && b.iter().all(plain) {
            return (v.clone(), true);
        }
    }
    let mut buf = [0u8; ulid::ULID_LEN];
    ulid::Ulid::new().array_to_str(&mut buf);
    // One allocation that every clone of the id (the response's, the log's) shares; a
    // copied string would be copied again at its first clone.
    let id =
        HeaderValue::from_maybe_shared(Bytes::from_owner(buf)).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    (id, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_forged_identity_headers_are_stripped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-warden-client", "forged"),
            ("x-warden-plan", "forged"),
            ("x_warden_client", "forged"),
            ("x.warden.client", "forged"),
            ("x_forwarded_for", "10.0.0.1"),
            ("accept", "*/*"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let mut response = h.clone();
        h.append("x-original-url", HeaderValue::from_static("/admin"));
        let mut trusted = h.clone();
        strip_headers(&mut h, Strip::Request { peer_trusted: false });
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["accept"]);
        strip_headers(&mut trusted, Strip::Request { peer_trusted: true });
        assert!(trusted.contains_key("x-original-url"), "a trusted proxy's forwarding headers are kept");
        assert!(!trusted.contains_key("x_forwarded_for"), "not even from a trusted proxy");
        strip_headers(&mut response, Strip::Response);
        let mut left: Vec<&str> = response.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["accept", "x-warden-client", "x-warden-plan", "x.warden.client", "x_forwarded_for", "x_warden_client"]
        );
    }

    #[test]
    fn request_ids_are_kept_when_well_formed() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123.X_9:z"));
        assert_eq!(request_id(&h), (HeaderValue::from_static("abc-123.X_9:z"), true));
        for bad in ["has space", "a\"b", "<script>", "a/b", "é"] {
            h.insert(X_REQUEST_ID, HeaderValue::from_bytes(bad.as_bytes()).unwrap());
            let (id, from_client) = request_id(&h);
            assert!(!from_client && id != bad && id.len() == ulid::ULID_LEN, "{bad}");
        }
        h.insert(X_REQUEST_ID, HeaderValue::from_str(&"a".repeat(129)).unwrap());
        assert!(!request_id(&h).1);
        assert_eq!(request_id(&HeaderMap::new()).0.len(), ulid::ULID_LEN);
    }
}
