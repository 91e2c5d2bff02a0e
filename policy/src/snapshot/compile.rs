//! proto `Snapshot` → domain `Snapshot`, refusing anything the request path could not
//! serve. Every refusal is a typed `InvalidSnapshot` whose text goes back to the control
//! plane in the NACK, so `wardenctl status` can say exactly why a sidecar kept its old
//! policy.

use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method};
use warden_proto::v1 as pb;

use crate::auth::AuthProvider;
use crate::cors::{Cors, CorsFields, InvalidCors};
use crate::ipset::IpSet;
use crate::limits::limit::Limit;
use crate::snapshot::compiled::{Mode, Snapshot};
use crate::snapshot::route::Retries;
use crate::snapshot::route::{AccessRule, EscapedSlashes, HeaderOps, HostMatch, PathMatch, Route};
use crate::snapshot::route_index::RouteIndex;
use crate::snapshot::upstream::{
    DEFAULT_DNS_REFRESH, DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_RETRY_BUDGET, Outlier, Protocol, RetryBudget,
    Upstream, UpstreamTls,
};
use crate::yaml::build::{
    DEFAULT_BASE_EJECTION, DEFAULT_CONNECT_TIMEOUT, DEFAULT_CONSECUTIVE_FAILURES, DEFAULT_MAX_EJECTED_PERCENT, SCHEMA,
};
use crate::yaml::model::APP_UPSTREAM;

/// Why a snapshot cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSnapshot {
    #[error("snapshot schema {got} is newer than this sidecar understands ({max}): upgrade the sidecar")]
    SchemaTooNew { got: u32, max: u32 },
    #[error("snapshot is for service '{got}' but this sidecar serves '{want}'")]
    WrongService { got: String, want: String },
    #[error("snapshot has no {0}")]
    Missing(&'static str),
    #[error("unknown mode {0}")]
    Mode(i32),
    #[error("unknown escaped_slashes {0}")]
    EscapedSlashes(i32),
    #[error("upstream '{upstream}': {error}")]
    Upstream { upstream: String, error: InvalidUpstream },
    #[error("route '{route}': {error}")]
    Route { route: String, error: InvalidRoute },
    #[error(transparent)]
    Networks(#[from] InvalidNetworks),
    #[error("tls: {0}")]
    Tls(String),
    #[error("auth '{provider}': {reason}")]
    Auth { provider: String, reason: String },
    #[error("limit '{limit}': {reason}")]
    Limit { limit: String, reason: String },
}

/// Why an upstream cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpstream {
    #[error("'app' has no endpoints: its one endpoint is the sidecar's --upstream")]
    Reserved,
    #[error("unknown protocol {0}")]
    Protocol(i32),
    /// Bad TLS settings, or (the sidecar's check) files that do not load.
    #[error("tls: {0}")]
    Tls(String),
    #[error("no endpoints")]
    NoEndpoints,
    #[error("connect timeout is 0")]
    ZeroConnectTimeout,
    #[error("endpoint '{0}' is not host:port")]
    Endpoint(String),
}

/// Why a route cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRoute {
    #[error("bad host pattern '{0}'")]
    HostPattern(String),
    #[error("path '{0}' must start with '/'")]
    NotAbsolute(String),
    #[error("bad method '{0}'")]
    Method(String),
    #[error("bad header name '{0}'")]
    HeaderName(String),
    #[error("bad value for header '{0}'")]
    HeaderValue(String),
    #[error("bad rewrite host '{0}'")]
    RewriteHost(String),
    #[error("upstream '{0}' is not defined")]
    UnknownUpstream(String),
    #[error("auth '{0}' is not defined")]
    UnknownAuth(String),
    #[error("limit '{0}' is not defined")]
    UnknownLimit(String),
    #[error("unknown escaped_slashes {0}")]
    EscapedSlashes(i32),
    #[error("retries: {0} is not a status to retry on")]
    RetryOn(u32),
    #[error(transparent)]
    Networks(#[from] InvalidNetworks),
    #[error(transparent)]
    Cors(#[from] InvalidCors),
}

/// An address list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidNetworks {
    /// `access.allow`, `routes.admin.access.deny`, `client_ip.trusted_proxies`.
    pub field: String,
    pub reason: String,
}

impl TryFrom<&pb::Snapshot> for Snapshot {
    type Error = InvalidSnapshot;

    /// Validates and compiles a pushed snapshot. Pure: nothing is bound or read. The
    /// sidecar then binds upstreams to pools and limits to counters, and reads the files
    /// the policy names on its host (`jwks_file`, certificates).
    fn try_from(s: &pb::Snapshot) -> Result<Snapshot, InvalidSnapshot> {
        if s.schema > SCHEMA {
            return Err(InvalidSnapshot::SchemaTooNew { got: s.schema, max: SCHEMA });
        }
        let mode = match pb::Mode::try_from(s.mode) {
            Ok(pb::Mode::Enforce | pb::Mode::Unspecified) => Mode::Enforce,
            Ok(pb::Mode::DryRun) => Mode::DryRun,
            Err(_) => return Err(InvalidSnapshot::Mode(s.mode)),
        };
        let defaults = s.defaults.as_ref().ok_or(InvalidSnapshot::Missing("defaults"))?;
        let escaped_slashes = escaped_slashes(defaults.escaped_slashes)?.unwrap_or(EscapedSlashes::Reject);

        // `app` comes first, with the policy's settings if it gives any.
        let default_budget = defaults.retry_budget.as_ref().map_or(DEFAULT_RETRY_BUDGET, retry_budget);
        let app = match s.upstreams.iter().find(|u| u.name == APP_UPSTREAM) {
            Some(u) => upstream(u, 0, default_budget)?,
            None => Upstream {
                name: APP_UPSTREAM.into(),
                index: 0,
                endpoints: Vec::new(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                max_connections: 0,
                max_pending: 0,
                protocol: Protocol::Http1,
                max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
                tls: None,
                dns_refresh: DEFAULT_DNS_REFRESH,
                outlier: DEFAULT_OUTLIER,
                retry_budget: default_budget,
            },
        };
        let mut upstreams = vec![Arc::new(app)];
        for u in s.upstreams.iter().filter(|u| u.name != APP_UPSTREAM) {
            upstreams.push(Arc::new(upstream(u, upstreams.len(), default_budget)?));
        }

        let auth = s
            .auth
            .iter()
            .map(|p| {
                AuthProvider::compile(p, &s.service)
                    .map(Arc::new)
                    .map_err(|reason| InvalidSnapshot::Auth { provider: p.name.clone(), reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = s
            .limits
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Limit::compile(l, i)
                    .map(Arc::new)
                    .map_err(|reason| InvalidSnapshot::Limit { limit: l.name.clone(), reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let named = Named { upstreams: &upstreams, auth: &auth, limits: &limits };
        let routes = s
            .routes
            .iter()
            .map(|r| {
                route(r, &named, defaults, escaped_slashes)
                    .map_err(|error| InvalidSnapshot::Route { route: r.name.clone(), error })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Snapshot {
            service: s.service.as_str().into(),
            version: s.version,
            content_hash: s.content_hash.clone(),
            mode,
            case_insensitive_paths: defaults.case_insensitive_paths,
            route_index: RouteIndex::new(&routes),
            routes,
            upstreams,
            default_timeout: Duration::from_millis(defaults.timeout_ms),
            default_max_body: defaults.max_body_bytes,
            source_yaml: s.source_yaml.clone(),
            trusted_proxies: match &s.client_ip {
                Some(c) => IpSet::parse(&c.trusted_proxies)
                    .map_err(|reason| InvalidNetworks { field: "client_ip.trusted_proxies".into(), reason })?,
                None => IpSet::default(),
            },
            access: s.access.as_ref().map(|a| access("access", a)).transpose()?,
            auth,
            limits,
        })
    }
}

/// What a policy that says nothing of outlier detection gets.
const DEFAULT_OUTLIER: Outlier = Outlier {
    consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
    base_ejection: DEFAULT_BASE_EJECTION,
    max_ejected_percent: DEFAULT_MAX_EJECTED_PERCENT,
};

fn cors(c: &pb::Cors) -> Result<Cors, InvalidCors> {
    Cors::compile(&CorsFields {
        allow_origins: &c.allow_origins,
        allow_methods: &c.allow_methods,
        allow_headers: &c.allow_headers,
        expose_headers: &c.expose_headers,
        max_age_secs: (c.max_age_ms > 0).then_some(c.max_age_ms / 1000),
        allow_credentials: c.allow_credentials,
    })
}

fn retry_budget(b: &pb::RetryBudget) -> RetryBudget {
    let (min_count, min_period) = b
        .min_rate
        .as_ref()
        .map_or((0, Duration::from_secs(1)), |r| (r.count, Duration::from_millis(r.period_ms.max(1))));
    RetryBudget { ratio_percent: b.ratio_percent.min(100), min_count, min_period }
}

fn upstream(u: &pb::Upstream, index: usize, default_budget: RetryBudget) -> Result<Upstream, InvalidSnapshot> {
    let err = |error| InvalidSnapshot::Upstream { upstream: u.name.clone(), error };
    match (u.name == APP_UPSTREAM, u.endpoints.is_empty()) {
        (true, false) => return Err(err(InvalidUpstream::Reserved)),
        (false, true) => return Err(err(InvalidUpstream::NoEndpoints)),
        _ => {}
    }
    let timeout = Duration::from_millis(u.connect_timeout_ms);
    if timeout.is_zero() {
        return Err(err(InvalidUpstream::ZeroConnectTimeout));
    }
    let endpoints = u
        .endpoints
        .iter()
        .map(|e| match e.parse::<Authority>() {
            Ok(a) if a.port_u16().is_some() => Ok(a),
            _ => Err(err(InvalidUpstream::Endpoint(e.clone()))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Upstream {
        name: u.name.as_str().into(),
        index,
        endpoints,
        connect_timeout: timeout,
        max_connections: u.max_connections,
        max_pending: u.max_pending,
        protocol: match pb::UpstreamProtocol::try_from(u.protocol) {
            Ok(pb::UpstreamProtocol::Unspecified | pb::UpstreamProtocol::Http1) => Protocol::Http1,
            Ok(pb::UpstreamProtocol::Http2) => Protocol::Http2,
            Ok(pb::UpstreamProtocol::Auto) => Protocol::Auto,
            Err(_) => return Err(err(InvalidUpstream::Protocol(u.protocol))),
        },
        max_concurrent_streams: match u.max_concurrent_streams {
            0 => DEFAULT_MAX_CONCURRENT_STREAMS,
            n => n,
        },
        tls: u.tls.as_ref().map(upstream_tls).transpose().map_err(err)?,
        dns_refresh: match u.dns_refresh_ms {
            0 => DEFAULT_DNS_REFRESH,
            ms => Duration::from_millis(ms),
        },
        outlier: u.outlier.as_ref().map_or(DEFAULT_OUTLIER, |o| Outlier {
            consecutive_failures: o.consecutive_failures.max(1),
            base_ejection: Duration::from_millis(o.base_ejection_ms.max(1)),
            max_ejected_percent: o.max_ejected_percent.min(100),
        }),
        retry_budget: u.retry_budget.as_ref().map_or(default_budget, retry_budget),
    })
}

fn retries(r: &pb::Retries) -> Result<Retries, InvalidRoute> {
    let narrow = |v: &[u32], max: u32| -> Result<Vec<_>, InvalidRoute> {
        v.iter().map(|&n| if n <= max { Ok(n) } else { Err(InvalidRoute::RetryOn(n)) }).collect()
    };
    Ok(Retries {
        attempts: r.attempts.clamp(1, 5),
        on_connect_failure: r.on_connect_failure,
        on_reset: r.on_reset,
        on_refused_stream: r.on_refused_stream,
        on_5xx: r.on_5xx,
        on_status: narrow(&r.on_status, 599)?.into_iter().map(|n| n as u16).collect(),
        on_grpc_status: narrow(&r.on_grpc_status, 16)?.into_iter().map(|n| n as u8).collect(),
        per_try_timeout: (r.per_try_timeout_ms > 0).then(|| Duration::from_millis(r.per_try_timeout_ms)),
    })
}

fn upstream_tls(t: &pb::UpstreamTls) -> Result<UpstreamTls, InvalidUpstream> {
    let given = |s: &String| (!s.is_empty()).then(|| s.clone());
    let client_cert = match (given(&t.cert_file), given(&t.key_file)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(InvalidUpstream::Tls("a client certificate needs both cert_file and key_file".into())),
    };
    Ok(UpstreamTls { ca_file: given(&t.ca_file), server_name: given(&t.server_name), client_cert })
}

/// What routes refer to by name.
struct Named<'a> {
    upstreams: &'a [Arc<Upstream>],
    auth: &'a [Arc<AuthProvider>],
    limits: &'a [Arc<Limit>],
}

fn route(
    r: &pb::Route,
    named: &Named<'_>,
    defaults: &pb::Defaults,
    default_escaped_slashes: EscapedSlashes,
) -> Result<Route, InvalidRoute> {
    let m = r.r#match.clone().unwrap_or_default();
    // Matching ignores case by comparing lower-cased paths with lower-cased patterns.
    let fold = |p: String| if defaults.case_insensitive_paths { p.to_ascii_lowercase() } else { p };
    let host = match m.host.as_str() {
        "" => HostMatch::Any,
        h => match h.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => HostMatch::Suffix(suffix.to_owned()),
            Some(_) => return Err(InvalidRoute::HostPattern(h.to_owned())),
            None => HostMatch::Exact(h.to_ascii_lowercase()),
        },
    };
    let path = match m.path {
        None => PathMatch::Any,
        Some(pb::route_match::Path::Exact(p)) => PathMatch::Exact(fold(absolute(p)?)),
        Some(pb::route_match::Path::Prefix(p)) => PathMatch::Prefix(fold(absolute(p)?)),
    };
    let methods = m
        .methods
        .iter()
        .map(|x| Method::from_bytes(x.as_bytes()).map_err(|_| InvalidRoute::Method(x.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let headers = m.headers.iter().map(header).collect::<Result<Vec<_>, _>>()?;
    let (rewrite_path, rewrite_host) = match &r.rewrite {
        None => (None, None),
        Some(rw) => (
            (!rw.path_prefix.is_empty()).then(|| absolute(rw.path_prefix.clone())).transpose()?,
            (!rw.host.is_empty())
                .then(|| HeaderValue::from_str(&rw.host).map_err(|_| InvalidRoute::RewriteHost(rw.host.clone())))
                .transpose()?,
        ),
    };
    let wanted = if r.upstream.is_empty() { APP_UPSTREAM } else { r.upstream.as_str() };
    let upstream = named
        .upstreams
        .iter()
        .find(|u| &*u.name == wanted)
        .cloned()
        .ok_or_else(|| InvalidRoute::UnknownUpstream(wanted.to_owned()))?;
    let access = r.access.as_ref().map(|a| access(&format!("routes.{}.access", r.name), a)).transpose()?;
    let auth = match r.auth.as_str() {
        "" => None,
        name => Some(
            named
                .auth
                .iter()
                .find(|p| &*p.name == name)
                .cloned()
                .ok_or_else(|| InvalidRoute::UnknownAuth(name.to_owned()))?,
        ),
    };
    let limits = r
        .limits
        .iter()
        .map(|name| {
            named
                .limits
                .iter()
                .find(|l| &*l.name == name)
                .cloned()
                .ok_or_else(|| InvalidRoute::UnknownLimit(name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route {
        limits,
        auth,
        forward_credentials: r.forward_credentials,
        access,
        max_body: if r.max_body_bytes == 0 { defaults.max_body_bytes } else { r.max_body_bytes },
        escaped_slashes: escaped_slashes(r.escaped_slashes)
            .map_err(|_| InvalidRoute::EscapedSlashes(r.escaped_slashes))?
            .unwrap_or(default_escaped_slashes),
        name: r.name.as_str().into(),
        max_grpc_timeout: (r.max_grpc_timeout_ms > 0).then(|| Duration::from_millis(r.max_grpc_timeout_ms)),
        retries: r.retries.as_ref().map(retries).transpose()?,
        non_idempotent: r.non_idempotent,
        idle_timeout: (r.idle_timeout_ms > 0).then(|| Duration::from_millis(r.idle_timeout_ms)),
        upgrades: r.upgrades,
        cors: r.cors.as_ref().map(cors).transpose()?.map(Arc::new),
        host,
        path,
        methods,
        headers,
        rewrite_path,
        rewrite_host,
        request_headers: header_ops(r.request_headers.as_ref())?,
        response_headers: header_ops(r.response_headers.as_ref())?,
        timeout: if r.timeout_ms == 0 {
            Duration::from_millis(defaults.timeout_ms)
        } else {
            Duration::from_millis(r.timeout_ms)
        },
        upstream,
    })
}

fn access(name: &str, a: &pb::Access) -> Result<AccessRule, InvalidNetworks> {
    let set = |list: &[String], which: &str| {
        IpSet::parse(list).map_err(|reason| InvalidNetworks { field: format!("{name}.{which}"), reason })
    };
    Ok(AccessRule { name: name.into(), allow: set(&a.allow, "allow")?, deny: set(&a.deny, "deny")? })
}

fn escaped_slashes(value: i32) -> Result<Option<EscapedSlashes>, InvalidSnapshot> {
    match pb::EscapedSlashes::try_from(value) {
        Ok(pb::EscapedSlashes::Unspecified) => Ok(None),
        Ok(pb::EscapedSlashes::Reject) => Ok(Some(EscapedSlashes::Reject)),
        Ok(pb::EscapedSlashes::Decode) => Ok(Some(EscapedSlashes::Decode)),
        Err(_) => Err(InvalidSnapshot::EscapedSlashes(value)),
    }
}

fn absolute(p: String) -> Result<String, InvalidRoute> {
    if p.starts_with('/') { Ok(p) } else { Err(InvalidRoute::NotAbsolute(p)) }
}

fn header(h: &pb::Header) -> Result<(HeaderName, HeaderValue), InvalidRoute> {
    let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| InvalidRoute::HeaderName(h.name.clone()))?;
    let value = HeaderValue::from_str(&h.value).map_err(|_| InvalidRoute::HeaderValue(h.name.clone()))?;
    Ok((name, value))
}

fn header_ops(ops: Option<&pb::HeaderOps>) -> Result<HeaderOps, InvalidRoute> {
    let Some(ops) = ops else {
        return Ok(HeaderOps::default());
    };
    Ok(HeaderOps {
        set: ops.set.iter().map(header).collect::<Result<_, _>>()?,
        remove: ops
            .remove
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| InvalidRoute::HeaderName(n.clone())))
            .collect::<Result<_, _>>()?,
    })
}
