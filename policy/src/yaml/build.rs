//! The snapshot builder: a validated `Policy` → the proto `Snapshot` pushed to sidecars.
//!
//! Pure and deterministic: the same document and version always give the same bytes
//! (maps are sorted, units are resolved to milliseconds and bytes), so the control plane
//! builds once per service and version and every subscriber gets the same snapshot.

use std::time::Duration;

use sha2::{Digest, Sha256};
use warden_proto::v1 as pb;

use super::model::{
    APP_UPSTREAM, AccessSpec, AuthKind, AuthSpec, CorsSpec, EscapedSlashes, HeaderOpsSpec, HmacScheme, LimitSpec, Mode,
    Policy, Rate, RetriesSpec, RetryBudgetSpec, RetryOnSpec, RouteSpec, Scope, UpstreamProtocol,
};

/// The newest snapshot format this build writes and understands.
pub const SCHEMA: u32 = 7;
/// Clock skew allowed on a JWT's `exp` and `nbf` when the policy sets no `leeway`.
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(30);
/// How old a Stripe signature's timestamp may be when the policy sets no `tolerance`.
pub const DEFAULT_STRIPE_TOLERANCE: Duration = Duration::from_secs(300);
/// Where API keys and JWTs are read when the policy names no header.
pub const DEFAULT_AUTH_HEADER: &str = "authorization";
/// Used when the policy sets no `defaults.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Used when the policy sets no `defaults.max_body`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Outlier detection when an upstream says nothing of it: 5 failures in a row eject an
/// endpoint for 30 s (doubling each time after), at most half an upstream's endpoints.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTED_PERCENT: u32 = 50;
/// Used when an upstream sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Lowercase hex SHA-256 of a document's text: its identity in the store.
pub fn content_hash(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// Builds the snapshot for one policy document at one version.
pub fn build(policy: &Policy, source: &str, version: u64) -> pb::Snapshot {
    // The oldest format that serves this policy correctly: a sidecar too old for the
    // access rules must refuse the snapshot, not serve it without them.
    let uses_access =
        policy.client_ip.is_some() || policy.access.is_some() || policy.routes.iter().any(|r| r.access.is_some());
    let uses_protocols = policy.upstreams.iter().any(|(name, u)| {
        name == APP_UPSTREAM
            || u.protocol.is_some_and(|p| p != UpstreamProtocol::Http1)
            || u.tls.is_some()
            || u.max_concurrent_streams.is_some()
            || u.dns_refresh.is_some()
            || u.outlier.is_some()
            || u.retry_budget.is_some()
    }) || policy.defaults.retry_budget.is_some()
        || policy.routes.iter().any(|r| {
            r.max_grpc_timeout.is_some()
                || r.retries.is_some()
                || r.non_idempotent
                || r.idle_timeout.is_some()
                || r.upgrades
        });
    let uses_cors = policy.defaults.cors.is_some() || policy.routes.iter().any(|r| r.cors.is_some());
    let schema = if uses_cors {
        7
    } else if uses_protocols {
        6
    } else if !policy.limits.is_empty() {
        5
    } else if !policy.auth.is_empty() {
        4
    } else if policy.tls.is_some() {
        3
    } else if uses_access {
        2
    } else {
        1
    };
    pb::Snapshot {
        schema,
        service: policy.service.clone(),
        version,
        content_hash: content_hash(source),
        mode: match policy.mode {
            Mode::Enforce => pb::Mode::Enforce,
            Mode::DryRun => pb::Mode::DryRun,
        } as i32,
        upstreams: policy
            .upstreams
            .iter()
            .map(|(name, up)| pb::Upstream {
                name: name.clone(),
                endpoints: up.endpoints.clone(),
                connect_timeout_ms: millis(up.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0)),
                max_connections: up.max_connections.unwrap_or(0),
                max_pending: up.max_pending.unwrap_or(0),
                protocol: match up.protocol.unwrap_or_default() {
                    UpstreamProtocol::Http1 => pb::UpstreamProtocol::Unspecified,
                    UpstreamProtocol::Http2 => pb::UpstreamProtocol::Http2,
                    UpstreamProtocol::Auto => pb::UpstreamProtocol::Auto,
                } as i32,
                tls: up.tls.as_ref().map(|t| pb::UpstreamTls {
                    ca_file: t.ca_file.clone().unwrap_or_default(),
                    server_name: t.server_name.clone().unwrap_or_default(),
                    cert_file: t.cert_file.clone().unwrap_or_default(),
                    key_file: t.key_file.clone().unwrap_or_default(),
                }),
                max_concurrent_streams: up.max_concurrent_streams.unwrap_or(0),
                dns_refresh_ms: up.dns_refresh.map_or(0, |d| millis(d.0)),
                outlier: up.outlier.as_ref().map(|o| pb::Outlier {
                    consecutive_failures: o.consecutive_failures.unwrap_or(DEFAULT_CONSECUTIVE_FAILURES),
                    base_ejection_ms: millis(o.base_ejection.map_or(DEFAULT_BASE_EJECTION, |d| d.0)),
                    max_ejected_percent: o.max_ejected.map_or(DEFAULT_MAX_EJECTED_PERCENT, |p| p.0),
                }),
                retry_budget: up.retry_budget.as_ref().map(retry_budget),
            })
            .collect(),
        defaults: Some(pb::Defaults {
            timeout_ms: millis(policy.defaults.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0)),
            max_body_bytes: policy.defaults.max_body.map_or(DEFAULT_MAX_BODY, |s| s.0),
            escaped_slashes: escaped_slashes(Some(policy.defaults.escaped_slashes.unwrap_or_default())),
            case_insensitive_paths: policy.defaults.case_insensitive_paths,
            retry_budget: policy.defaults.retry_budget.as_ref().map(retry_budget),
        }),
        routes: policy.routes.iter().map(|r| route(r, policy.defaults.cors.as_ref())).collect(),
        source_yaml: source.to_owned(),
        client_ip: policy.client_ip.as_ref().map(|c| pb::ClientIp { trusted_proxies: c.trusted_proxies.clone() }),
        access: policy.access.as_ref().map(access),
        tls: policy.tls.as_ref().map(|t| pb::Tls {
            certificates: t
                .certificates
                .iter()
                .map(|c| pb::CertificateFiles { cert_file: c.cert.clone(), key_file: c.key.clone() })
                .collect(),
        }),
        auth: policy.auth.iter().map(|(name, spec)| auth_provider(name, spec)).collect(),
        limits: policy.limits.iter().map(|(name, spec)| limit(name, spec, policy.mode == Mode::DryRun)).collect(),
    }
}

fn limit(name: &str, l: &LimitSpec, policy_dry_run: bool) -> pb::Limit {
    use pb::limit_key::Kind;
    let key = match l.key.as_str() {
        "client_ip" => Kind::ClientIp(true),
        "client_id" => Kind::ClientId(true),
        "route" => Kind::Route(true),
        other => Kind::Header(other.strip_prefix("header:").unwrap_or(other).trim().to_ascii_lowercase()),
    };
    let rate = |r: &Rate| pb::Rate { count: r.count, period_ms: millis(r.period) };
    let mut out = pb::Limit {
        name: name.to_owned(),
        key: Some(pb::LimitKey { kind: Some(key) }),
        rate: l.rate.as_ref().map(rate),
        burst: l.burst.unwrap_or(0),
        plans: l.plans.iter().map(|(plan, r)| pb::PlanRate { plan: plan.clone(), rate: Some(rate(r)) }).collect(),
        default: l.default.as_ref().map(rate),
        global: l.scope == Scope::Global,
        dry_run: l.mode.map_or(policy_dry_run, |m| m == Mode::DryRun),
        fingerprint: String::new(),
    };
    // What decides a request's verdict; a mode change alone keeps the counters.
    let definition = pb::Limit { dry_run: false, ..out.clone() };
    out.fingerprint = hex::encode(Sha256::digest(prost::Message::encode_to_vec(&definition)));
    out
}

fn auth_provider(name: &str, a: &AuthSpec) -> pb::AuthProvider {
    let header = a.header.as_deref().unwrap_or(DEFAULT_AUTH_HEADER).to_ascii_lowercase();
    let kind = match a.kind {
        AuthKind::ApiKey => pb::auth_provider::Kind::ApiKey(pb::ApiKeyAuth { header }),
        AuthKind::Jwt => pb::auth_provider::Kind::Jwt(pb::JwtAuth {
            issuers: a.issuers.clone(),
            audiences: a.audiences.clone(),
            jwks_json: a.jwks.as_ref().map(jwks_json).unwrap_or_default(),
            jwks_file: a.jwks_file.clone().unwrap_or_default(),
            client_claim: a.client_claim.clone().unwrap_or_else(|| "sub".into()),
            plan_claim: a.plan_claim.clone().unwrap_or_else(|| "plan".into()),
            leeway_ms: millis(a.leeway.map_or(DEFAULT_JWT_LEEWAY, |d| d.0)),
            header,
        }),
        AuthKind::Hmac => pb::auth_provider::Kind::Hmac(pb::HmacAuth {
            scheme: match a.scheme {
                Some(HmacScheme::Github) => pb::HmacScheme::Github,
                Some(HmacScheme::Stripe) => pb::HmacScheme::Stripe,
                None => pb::HmacScheme::Unspecified,
            } as i32,
            secret: a.secret.clone().unwrap_or_default(),
            tolerance_ms: millis(a.tolerance.map_or(DEFAULT_STRIPE_TOLERANCE, |d| d.0)),
        }),
    };
    pb::AuthProvider { name: name.to_owned(), kind: Some(kind) }
}

/// An inline JWKS as compact JSON: a YAML mapping is converted, a JSON string re-encoded
/// (serde_json's maps are sorted, so the output is deterministic).
pub(super) fn jwks_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(text) => serde_json::from_str::<serde_json::Value>(text)
            .map(|parsed| parsed.to_string())
            .unwrap_or_else(|_| text.clone()),
        other => other.to_string(),
    }
}

fn access(a: &AccessSpec) -> pb::Access {
    pb::Access { allow: a.allow.clone(), deny: a.deny.clone() }
}

fn route(r: &RouteSpec, default_cors: Option<&CorsSpec>) -> pb::Route {
    let m = &r.matches;
    pb::Route {
        name: r.name.clone(),
        r#match: Some(pb::RouteMatch {
            host: m.host.clone().unwrap_or_default(),
            path: match (&m.path, &m.path_prefix) {
                (Some(p), _) => Some(pb::route_match::Path::Exact(p.clone())),
                (None, Some(p)) => Some(pb::route_match::Path::Prefix(p.clone())),
                (None, None) => None,
            },
            methods: m.methods.clone(),
            headers: headers(&m.headers),
        }),
        rewrite: r.rewrite.as_ref().map(|rw| pb::Rewrite {
            path_prefix: rw.path_prefix.clone().unwrap_or_default(),
            host: rw.host.clone().unwrap_or_default(),
        }),
        request_headers: r.request_headers.as_ref().map(header_ops),
        response_headers: r.response_headers.as_ref().map(header_ops),
        timeout_ms: r.timeout.map_or(0, |d| millis(d.0)),
        upstream: r.upstream.clone().unwrap_or_default(),
        access: r.access.as_ref().map(access),
        max_body_bytes: r.max_body.map_or(0, |s| s.0),
        auth: r.auth.clone().unwrap_or_default(),
        forward_credentials: r.forward_credentials,
        limits: r.limits.clone(),
        escaped_slashes: escaped_slashes(r.escaped_slashes),
        max_grpc_timeout_ms: r.max_grpc_timeout.map_or(0, |d| millis(d.0)),
        retries: r.retries.as_ref().map(retries),
        non_idempotent: r.non_idempotent,
        idle_timeout_ms: r.idle_timeout.map_or(0, |d| millis(d.0)),
        upgrades: r.upgrades,
        cors: r.cors.as_ref().map(|c| c.over(default_cors)).or_else(|| default_cors.cloned()).map(|c| pb::Cors {
            allow_origins: c.allow_origins.unwrap_or_default(),
            allow_methods: c.allow_methods.unwrap_or_default(),
            allow_headers: c.allow_headers.unwrap_or_default().iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers: c.expose_headers.unwrap_or_default().iter().map(|h| h.to_ascii_lowercase()).collect(),
            max_age_ms: c.max_age.map_or(0, |d| millis(d.0)),
            allow_credentials: c.allow_credentials.unwrap_or(false),
        }),
    }
}

fn retry_budget(b: &RetryBudgetSpec) -> pb::RetryBudget {
    pb::RetryBudget {
        ratio_percent: b.ratio.0,
        min_rate: Some(pb::Rate { count: b.min_rate.count, period_ms: millis(b.min_rate.period) }),
    }
}

fn retries(r: &RetriesSpec) -> pb::Retries {
    let mut out = pb::Retries {
        attempts: r.attempts,
        per_try_timeout_ms: r.per_try_timeout.map_or(0, |d| millis(d.0)),
        ..pb::Retries::default()
    };
    for on in &r.on {
        match on {
            RetryOnSpec::Status(code) => out.on_status.push(u32::from(*code)),
            RetryOnSpec::Word(w) => match w.as_str() {
                "connect-failure" => out.on_connect_failure = true,
                "reset" => out.on_reset = true,
                "refused-stream" => out.on_refused_stream = true,
                "5xx" => out.on_5xx = true,
                name => out.on_grpc_status.extend(crate::grpc::code_of(name).map(u32::from)),
            },
        }
    }
    out.on_status.sort_unstable();
    out.on_status.dedup();
    out.on_grpc_status.sort_unstable();
    out.on_grpc_status.dedup();
    out
}

fn escaped_slashes(e: Option<EscapedSlashes>) -> i32 {
    let e = match e {
        None => pb::EscapedSlashes::Unspecified,
        Some(EscapedSlashes::Reject) => pb::EscapedSlashes::Reject,
        Some(EscapedSlashes::Decode) => pb::EscapedSlashes::Decode,
    };
    e as i32
}

fn header_ops(ops: &HeaderOpsSpec) -> pb::HeaderOps {
    pb::HeaderOps { set: headers(&ops.set), remove: ops.remove.iter().map(|h| h.to_ascii_lowercase()).collect() }
}

/// Header names are case-insensitive: lower-case them, then sort, so `X-B` and `x-a`
/// always come out as `x-a`, `x-b` (validation refuses names that differ only in case).
fn headers(map: &std::collections::BTreeMap<String, String>) -> Vec<pb::Header> {
    let mut out: Vec<pb::Header> =
        map.iter().map(|(k, v)| pb::Header { name: k.to_ascii_lowercase(), value: v.clone() }).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
