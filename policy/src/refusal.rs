//! Every response Warden itself generates, in one place: the status, the JSON body with a
//! reason a customer can read, and the headers that tell a proxy answer from an app answer
//! (`x-warden-denied-by`, `x-request-id`, RFC 9209 `proxy-status`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::auth::{AuthFailure, AuthProvider};
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
    /// The sidecar already has `--max-in-flight` requests waiting on upstreams.
    Overloaded,
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

/// Request facts a refusal's body names.
pub struct DenyContext<'a> {
    pub service: Option<&'a str>,
    pub route: Option<&'a str>,
    pub request_id: &'a HeaderValue,
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

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated { failure, .. } => failure.status(),
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::NotReady | Refusal::BufferFull | Refusal::UpstreamOverloaded { .. } | Refusal::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::BadPath(_)
            | Refusal::BadBody
            | Refusal::DuplicateHost
            | Refusal::BadHost(_)
            | Refusal::BadMethod
            | Refusal::BadForwardedFor => StatusCode::BAD_REQUEST,
            Refusal::NoRoute => StatusCode::NOT_FOUND,
            Refusal::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Refusal::AddressDenied { .. } => StatusCode::FORBIDDEN,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Refusal::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::Upstream { failure: UpstreamFailure::ConnectTimeout, .. } | Refusal::UpstreamTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Refusal::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Stable machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated { failure, .. } => failure.code(),
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::NotReady => "not_ready",
            Refusal::BadPath(_) => "bad_path",
            Refusal::BadBody => "bad_body",
            Refusal::BodyTimeout { .. } => "body_timeout",
            Refusal::BufferFull => "buffer_full",
            Refusal::DuplicateHost => "duplicate_host",
            Refusal::BadHost(_) => "bad_host",
            Refusal::BadMethod => "bad_method",
            Refusal::BadForwardedFor => "bad_forwarded_for",
            Refusal::NoRoute => "no_route",
            Refusal::AddressDenied { .. } => "address_denied",
            Refusal::BodyTooLarge { .. } => "body_too_large",
            Refusal::UriTooLong { .. } => "uri_too_long",
            Refusal::HeadersTooLarge { .. } => "headers_too_large",
            Refusal::Upstream { failure: UpstreamFailure::Refused, .. } => "upstream_unreachable",
            Refusal::Upstream { failure: UpstreamFailure::ConnectTimeout, .. } => "upstream_connect_timeout",
            Refusal::Upstream { failure: UpstreamFailure::Protocol, .. } => "upstream_error",
            Refusal::UpstreamTimeout { .. } => "upstream_timeout",
            Refusal::UpstreamOverloaded { .. } => "upstream_overloaded",
            Refusal::Overloaded => "overloaded",
        }
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
            | Refusal::UpstreamOverloaded { upstream } => format!("upstream:{upstream}"),
            Refusal::Overloaded => "max_in_flight".into(),
        }
    }

    /// The RFC 9209 error type.
    fn proxy_error(&self) -> &'static str {
        match self {
            Refusal::NotReady | Refusal::BufferFull => "destination_unavailable",
            Refusal::BadPath(_)
            | Refusal::BadBody
            | Refusal::DuplicateHost
            | Refusal::BadHost(_)
            | Refusal::BadMethod
            | Refusal::BadForwardedFor
            | Refusal::BodyTimeout { .. } => "http_request_error",
            Refusal::NoRoute => "destination_not_found",
            Refusal::Unauthenticated { failure: AuthFailure::SecretNotSet { .. }, .. } => "destination_unavailable",
            Refusal::AddressDenied { .. }
            | Refusal::Unauthenticated { .. }
            | Refusal::RateLimited { .. }
            | Refusal::BodyTooLarge { .. }
            | Refusal::UriTooLong { .. }
            | Refusal::HeadersTooLarge { .. } => "http_request_denied",
            Refusal::Upstream { failure: UpstreamFailure::Refused, .. } => "connection_refused",
            Refusal::Upstream { failure: UpstreamFailure::ConnectTimeout, .. } => "connection_timeout",
            Refusal::Upstream { failure: UpstreamFailure::Protocol, .. } => "http_protocol_error",
            Refusal::UpstreamTimeout { .. } => "http_response_timeout",
            Refusal::UpstreamOverloaded { .. } => "connection_limit_reached",
            Refusal::Overloaded => "proxy_internal_error",
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
            Refusal::UpstreamOverloaded { upstream } => format!(
                "'{service}' is busy: upstream '{upstream}' has as many requests as it may take at once. Retry in a few seconds."
            ),
            Refusal::Overloaded => {
                "The proxy is handling as many requests as it may at once. Retry in a few seconds.".into()
            }
            Refusal::UpstreamTimeout { upstream, after } => {
                format!("'{service}' did not answer within {} (upstream '{upstream}').", format_duration(*after))
            }
        }
    }

    /// The full response.
    pub fn response(&self, ctx: &DenyContext<'_>) -> Response<Bytes> {
        let rule = self.rule();
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
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
        let status = format!("{LAYER}; error={}; details=\"rule {}\"", self.proxy_error(), rule.replace('"', ""));
        if let Ok(v) = HeaderValue::from_str(&status) {
            h.insert("proxy-status", v);
        }
        resp
    }
}
