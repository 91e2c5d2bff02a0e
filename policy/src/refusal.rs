//! Every response Warden itself generates, in one place: the status, the JSON body with a
//! reason a customer can read, and the headers that tell a proxy answer from an app answer
//! (`x-warden-denied-by`, `x-request-id`, RFC 9209 `proxy-status`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::auth::{AuthFailure, AuthProvider};
use crate::grpc;
use crate::host::HostError;
use crate::normalize::PathError;
use crate::yaml::units::{format_duration, format_size};

/// The IETF rate limit fields (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The layer name every Warden-generated response carries.
pub const LAYER: &str = "warden-sidecar";

/// What went wrong talking to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Nothing listens there (connection refused, reset, unreachable, unresolvable).
    Refused,
    /// The TCP connect did not finish within `connect_timeout`.
    ConnectTimeout,
    /// The upstream broke the HTTP exchange.
    Protocol,
    /// The TLS handshake with the upstream failed (its certificate, or no common ground).
    Tls,
}

/// The `RateLimit-Policy` and `RateLimit` fields of the limit closest to refusing: on a 429,
/// and on an admitted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub policy: HeaderValue,
    pub limit: HeaderValue,
}

/// Why Warden answered instead of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No policy has been loaded yet.
    NotReady,
    /// The request path could not be normalized.
    BadPath(PathError),
    /// No route matches.
    NoRoute,
    /// The client's address is not allowed (`access` lists).
    AddressDenied { rule: String, ip: std::net::IpAddr },
    /// The request body is larger than the route's `max_body`.
    BodyTooLarge { limit: u64 },
    /// The request body was malformed or cut off by the client.
    BadBody,
    /// The client did not send the whole body (which had to be read first) in time.
    BodyTimeout { after: Duration },
    /// The sidecar is already holding as many buffered bodies as `--max-buffered-bytes` allows.
    BufferFull,
    /// More than one Host header.
    DuplicateHost,
    /// The `Host` header or the request's authority is not a valid `host[:port]`.
    BadHost(HostError),
    /// A standard method spelled in another case (`post`): apps upper-case it, routes do not.
    BadMethod,
    /// A trusted proxy's nearest `x-forwarded-for` hop that is not an address.
    BadForwardedFor,
    /// The request target is longer than `--max-uri-bytes`.
    UriTooLong { limit: usize },
    /// The request's header block is larger than `--max-header-bytes`.
    HeadersTooLarge { limit: usize },
    /// The upstream could not be reached or failed.
    Upstream { upstream: String, failure: UpstreamFailure },
    /// The upstream did not answer within the route's timeout.
    UpstreamTimeout { upstream: String, after: Duration },
    /// The endpoint's circuit breakers are open (`max_connections` busy, `max_pending` waiting).
    UpstreamOverloaded { upstream: String },
    /// The upstream has no endpoints now: its names resolve to no address.
    NoEndpoints { upstream: String },
    /// The sidecar already has `--max-in-flight` requests waiting on upstreams.
    Overloaded,
    /// A gRPC call routed to an upstream that speaks only HTTP/1.1: never sent, since
    /// HTTP/1.1 cannot carry its trailers.
    ProtocolMismatch { upstream: String },
    /// A CORS preflight from an origin the route's `cors` does not allow.
    CorsOriginNotAllowed {
        route: std::sync::Arc<str>,
        /// As sent, escaped and cut short (it is the caller's text).
        origin: String,
    },
    /// A limit's budget for this caller is spent.
    RateLimited {
        rule: std::sync::Arc<str>,
        /// "Client 'acme' reached its limit of 100 requests per minute. Retry in 12 s."
        message: String,
        /// Whole seconds, at least 1.
        retry_after: u64,
        headers: Box<RateLimitHeaders>,
    },
    /// The route's auth provider refused the caller's credential.
    Unauthenticated {
        rule: std::sync::Arc<str>,
        failure: AuthFailure,
        /// Where the credential is expected.
        header: HeaderName,
        /// The provider's `www-authenticate` challenge, if it has one.
        challenge: Option<HeaderValue>,
    },
}

/// Whose doing a refusal is. It picks the status class, labels the deny metrics, and
/// decides what goes to the review queue: a policy's refusals and a client's malformed
/// requests are decisions to review; upstream failures and local overload are counted
/// and alerted on, never queued (and, later, are what a retry may try again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request itself is malformed or too big for the sidecar's caps (4xx).
    Client,
    /// A rule of the policy refused it (4xx).
    Policy,
    /// The upstream could not be reached, failed, was too slow or is full (5xx).
    Upstream,
    /// The sidecar itself: no policy yet, overloaded, a secret not set (503).
    Local,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Policy => "policy",
            Fault::Upstream => "upstream",
            Fault::Local => "local",
        }
    }

    /// Whether a refusal of this fault goes to the review queue.
    pub fn reviewed(self) -> bool {
        matches!(self, Fault::Client | Fault::Policy)
    }
}

/// One refusal's row in the table of Warden's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub status: StatusCode,
    /// Stable, machine-readable: the `code` of the JSON body.
    pub code: &'static str,
    /// The RFC 9209 `proxy-status` error type.
    pub proxy_error: &'static str,
    pub fault: Fault,
    /// What a gRPC caller is told instead of `status`.
    pub grpc: grpc::Status,
}

/// Request facts a refusal's body names, and how the caller is answered.
pub struct DenyContext<'a> {
    pub service: Option<&'a str>,
    pub route: Option<&'a str>,
    pub request_id: &'a HeaderValue,
    /// A gRPC caller gets a gRPC status (HTTP 200, `grpc-status`, `grpc-message`).
    pub grpc: Option<grpc::Caller>,
}

impl Refusal {
    pub fn unauthenticated(provider: &AuthProvider, failure: AuthFailure) -> Refusal {
        Refusal::Unauthenticated {
            rule: provider.name.clone(),
            failure,
            header: provider.header.clone(),
            challenge: provider.challenge.clone(),
        }
    }

    /// The refusal's row in the one table of Warden's answers (docs/responses.md).
    pub fn row(&self) -> Row {
        use Fault::{Client, Local, Policy, Upstream};
        use StatusCode as S;
        use grpc::Status as G;
        let row = |status, code, proxy_error, fault, grpc| Row { status, code, proxy_error, fault, grpc };
        match self {
            Refusal::NotReady => {
                row(S::SERVICE_UNAVAILABLE, "not_ready", "destination_unavailable", Local, G::Unavailable)
            }
            Refusal::BadPath(_) => row(S::BAD_REQUEST, "bad_path", "http_request_error", Client, G::InvalidArgument),
            Refusal::NoRoute => row(S::NOT_FOUND, "no_route", "destination_not_found", Policy, G::Unimplemented),
            Refusal::AddressDenied { .. } => {
                row(S::FORBIDDEN, "address_denied", "http_request_denied", Policy, G::PermissionDenied)
            }
            // gRPC's own word for a message over the size limit.
            Refusal::BodyTooLarge { .. } => {
                row(S::PAYLOAD_TOO_LARGE, "body_too_large", "http_request_denied", Policy, G::ResourceExhausted)
            }
            Refusal::BadBody => row(S::BAD_REQUEST, "bad_body", "http_request_error", Client, G::InvalidArgument),
            Refusal::BodyTimeout { .. } => {
                row(S::REQUEST_TIMEOUT, "body_timeout", "http_request_error", Client, G::DeadlineExceeded)
            }
            Refusal::BufferFull => {
                row(S::SERVICE_UNAVAILABLE, "buffer_full", "destination_unavailable", Local, G::Unavailable)
            }
            Refusal::DuplicateHost => {
                row(S::BAD_REQUEST, "duplicate_host", "http_request_error", Client, G::InvalidArgument)
            }
            Refusal::BadHost(_) => row(S::BAD_REQUEST, "bad_host", "http_request_error", Client, G::InvalidArgument),
            Refusal::BadMethod => row(S::BAD_REQUEST, "bad_method", "http_request_error", Client, G::InvalidArgument),
            Refusal::BadForwardedFor => {
                row(S::BAD_REQUEST, "bad_forwarded_for", "http_request_error", Client, G::InvalidArgument)
            }
            Refusal::UriTooLong { .. } => {
                row(S::URI_TOO_LONG, "uri_too_long", "http_request_denied", Client, G::InvalidArgument)
            }
            Refusal::HeadersTooLarge { .. } => row(
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "http_request_denied",
                Client,
                G::InvalidArgument,
            ),
            Refusal::Upstream { failure: UpstreamFailure::Refused, .. } => {
                row(S::BAD_GATEWAY, "upstream_unreachable", "connection_refused", Upstream, G::Unavailable)
            }
            Refusal::Upstream { failure: UpstreamFailure::ConnectTimeout, .. } => {
                row(S::GATEWAY_TIMEOUT, "upstream_connect_timeout", "connection_timeout", Upstream, G::Unavailable)
            }
            Refusal::Upstream { failure: UpstreamFailure::Protocol, .. } => {
                row(S::BAD_GATEWAY, "upstream_error", "http_protocol_error", Upstream, G::Unavailable)
            }
            Refusal::Upstream { failure: UpstreamFailure::Tls, .. } => {
                row(S::BAD_GATEWAY, "upstream_tls_error", "tls_protocol_error", Upstream, G::Unavailable)
            }
            Refusal::UpstreamTimeout { .. } => {
                row(S::GATEWAY_TIMEOUT, "upstream_timeout", "http_response_timeout", Upstream, G::DeadlineExceeded)
            }
            Refusal::UpstreamOverloaded { .. } => {
                row(S::SERVICE_UNAVAILABLE, "upstream_overloaded", "connection_limit_reached", Upstream, G::Unavailable)
            }
            Refusal::NoEndpoints { .. } => {
                row(S::SERVICE_UNAVAILABLE, "no_endpoints", "destination_ip_unroutable", Upstream, G::Unavailable)
            }
            Refusal::Overloaded => {
                row(S::SERVICE_UNAVAILABLE, "overloaded", "proxy_internal_error", Local, G::Unavailable)
            }
            Refusal::ProtocolMismatch { .. } => {
                row(S::BAD_GATEWAY, "protocol_mismatch", "http_protocol_error", Upstream, G::Internal)
            }
            Refusal::CorsOriginNotAllowed { .. } => {
                row(S::FORBIDDEN, "cors_origin_not_allowed", "http_request_denied", Policy, G::PermissionDenied)
            }
            Refusal::RateLimited { .. } => {
                row(S::TOO_MANY_REQUESTS, "rate_limited", "http_request_denied", Policy, G::ResourceExhausted)
            }
            // A secret that is not set is the operator's to fix, not the caller's.
            Refusal::Unauthenticated { failure: f @ AuthFailure::SecretNotSet { .. }, .. } => {
                row(f.status(), f.code(), "destination_unavailable", Local, G::Unavailable)
            }
            Refusal::Unauthenticated { failure: f, .. } => {
                row(f.status(), f.code(), "http_request_denied", Policy, G::Unauthenticated)
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        self.row().status
    }

    /// Stable machine-readable reason.
    pub fn code(&self) -> &'static str {
        self.row().code
    }

    /// Whose doing the refusal is.
    pub fn fault(&self) -> Fault {
        self.row().fault
    }

    /// The rule that answered, for `x-warden-denied-by`.
    pub fn rule(&self) -> String {
        match self {
            Refusal::NotReady => "no-policy".into(),
            Refusal::BadPath(_) => "path-normalization".into(),
            Refusal::BadBody | Refusal::DuplicateHost | Refusal::BadHost(_) | Refusal::BadMethod => {
                "http-framing".into()
            }
            Refusal::BadForwardedFor => "client_ip.trusted_proxies".into(),
            Refusal::BodyTimeout { .. } => "timeout".into(),
            Refusal::BufferFull => "max_buffered_bytes".into(),
            Refusal::NoRoute => "no-route".into(),
            Refusal::AddressDenied { rule, .. } => rule.clone(),
            Refusal::Unauthenticated { rule, .. } | Refusal::RateLimited { rule, .. } => rule.to_string(),
            Refusal::BodyTooLarge { .. } => "max_body".into(),
            Refusal::UriTooLong { .. } => "max_uri_bytes".into(),
            Refusal::HeadersTooLarge { .. } => "max_header_bytes".into(),
            Refusal::Upstream { upstream, .. }
            | Refusal::UpstreamTimeout { upstream, .. }
            | Refusal::UpstreamOverloaded { upstream }
            | Refusal::NoEndpoints { upstream } => format!("upstream:{upstream}"),
            Refusal::Overloaded => "max_in_flight".into(),
            Refusal::ProtocolMismatch { upstream } => format!("upstream:{upstream}"),
            Refusal::CorsOriginNotAllowed { route, .. } => format!("routes.{route}.cors"),
        }
    }

    /// What a customer reads.
    pub fn message(&self, service: Option<&str>) -> String {
        let service = service.unwrap_or("this service");
        match self {
            Refusal::NotReady => "The proxy has not loaded its policy yet. Retry in a few seconds.".into(),
            Refusal::BadPath(e) => format!("The request was refused: {e}."),
            Refusal::BadBody => "The request body was malformed or ended early.".into(),
            Refusal::BufferFull => {
                "The proxy is holding too many request bodies right now. Retry in a few seconds.".into()
            }
            Refusal::BodyTimeout { after } => {
                format!("The request body did not arrive within {}.", format_duration(*after))
            }
            Refusal::DuplicateHost => "The request has more than one Host header.".into(),
            Refusal::BadHost(e) => format!("The request was refused: {e}."),
            Refusal::BadMethod => {
                "The request method must be written in capitals (GET, POST, ...): methods are case-sensitive.".into()
            }
            Refusal::BadForwardedFor => {
                "The x-forwarded-for header from a trusted proxy has a hop that is not an IP address.".into()
            }
            Refusal::NoRoute => format!("No route of '{service}' matches this request."),
            Refusal::AddressDenied { ip, .. } => format!("Requests from {ip} are not allowed to '{service}'."),
            Refusal::Unauthenticated { failure, header, .. } => failure.message(header.as_str()),
            Refusal::RateLimited { message, .. } => message.clone(),
            Refusal::BodyTooLarge { limit } => {
                format!("The request body is larger than '{service}' accepts here ({}).", format_size(*limit))
            }
            Refusal::UriTooLong { limit } => {
                format!("The request URI is longer than {} bytes.", limit)
            }
            Refusal::HeadersTooLarge { limit } => {
                format!("The request headers are larger than {} in total.", format_size(*limit as u64))
            }
            Refusal::Upstream { upstream, failure: UpstreamFailure::Refused } => {
                format!("'{service}' could not be reached (upstream '{upstream}' refused the connection).")
            }
            Refusal::Upstream { upstream, failure: UpstreamFailure::ConnectTimeout } => {
                format!("'{service}' could not be reached in time (connecting to upstream '{upstream}' timed out).")
            }
            Refusal::Upstream { upstream, failure: UpstreamFailure::Protocol } => {
                format!("'{service}' failed to answer (upstream '{upstream}' broke the connection).")
            }
            Refusal::Upstream { upstream, failure: UpstreamFailure::Tls } => {
                format!("'{service}' could not be reached securely (TLS to upstream '{upstream}' failed).")
            }
            Refusal::UpstreamOverloaded { upstream } => format!(
                "'{service}' is busy: upstream '{upstream}' has as many requests as it may take at once. Retry in a few seconds."
            ),
            Refusal::Overloaded => {
                "The proxy is handling as many requests as it may at once. Retry in a few seconds.".into()
            }
            Refusal::NoEndpoints { upstream } => {
                format!("'{service}' has no endpoints right now (upstream '{upstream}' resolves to no address).")
            }
            Refusal::ProtocolMismatch { upstream } => format!(
                "'{service}' is not set up for gRPC here: upstream '{upstream}' speaks HTTP/1.1 (give it protocol: http2)."
            ),
            Refusal::CorsOriginNotAllowed { origin, .. } => {
                format!("Pages at {origin} may not call '{service}' here (CORS).")
            }
            Refusal::UpstreamTimeout { upstream, after } => {
                format!("'{service}' did not answer within {} (upstream '{upstream}').", format_duration(*after))
            }
        }
    }

    /// What a gRPC caller reads in `grpc-message`: `<code> (rule <rule>): <message>`.
    pub fn grpc_message(&self, service: Option<&str>) -> String {
        format!("{} (rule {}): {}", self.code(), self.rule(), self.message(service))
    }

    /// The full response: JSON with the row's status, or to a gRPC caller a Trailers-Only
    /// answer (HTTP 200, no body, `grpc-status` and `grpc-message` in the head).
    pub fn response(&self, ctx: &DenyContext<'_>) -> Response<Bytes> {
        let rule = self.rule();
        let mut resp = match ctx.grpc {
            None => {
                let body = serde_json::json!({
                    "error": {
                        "code": self.code(),
                        "message": self.message(ctx.service),
                        "rule": rule,
                        "route": ctx.route,
                        "service": ctx.service,
                        "layer": LAYER,
                        "request_id": ctx.request_id.to_str().unwrap_or_default(),
                    }
                });
                let mut body = serde_json::to_vec(&body).unwrap_or_default();
                body.push(b'\n');
                let mut resp = Response::new(Bytes::from(body));
                *resp.status_mut() = self.status();
                resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            Some(caller) => {
                let mut resp = Response::new(Bytes::new());
                let h = resp.headers_mut();
                let content_type = match caller {
                    grpc::Caller::Native => "application/grpc",
                    grpc::Caller::Web => "application/grpc-web+proto",
                };
                h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                h.insert(grpc::GRPC_STATUS, HeaderValue::from(u16::from(self.row().grpc.code())));
                if let Ok(v) = HeaderValue::try_from(grpc::encode_message(&self.grpc_message(ctx.service))) {
                    h.insert(grpc::GRPC_MESSAGE, v);
                }
                resp
            }
        };
        let h = resp.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-request-id", ctx.request_id.clone());
        if let Ok(v) = HeaderValue::from_str(&rule) {
            h.insert("x-warden-denied-by", v);
        }
        if let Refusal::Unauthenticated { failure, challenge: Some(c), .. } = self
            && failure.status() == StatusCode::UNAUTHORIZED
        {
            // RFC 6750 §3.1: a Bearer challenge says what was wrong with what was sent.
            let bearer = c.as_bytes().starts_with(b"Bearer ");
            let value = match failure.bearer_error().filter(|_| bearer) {
                Some(error) => HeaderValue::try_from(format!("{}, error=\"{error}\"", c.to_str().unwrap_or_default()))
                    .unwrap_or_else(|_| c.clone()),
                None => c.clone(),
            };
            h.insert(WWW_AUTHENTICATE, value);
        }
        if let Refusal::RateLimited { retry_after, headers, .. } = self {
            h.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            h.insert(RATELIMIT_POLICY, headers.policy.clone());
            h.insert(RATELIMIT, headers.limit.clone());
        }
        let status = format!("{LAYER}; error={}; details=\"rule {}\"", self.row().proxy_error, rule.replace('"', ""));
        if let Ok(v) = HeaderValue::from_str(&status) {
            h.insert("proxy-status", v);
        }
        resp
    }
}
