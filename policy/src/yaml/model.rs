//! The policy document as operators write it: serde types that mirror the YAML exactly.
//!
//! Unknown fields are refused (`deny_unknown_fields`) so a misspelt key is an error with
//! its line and column, never a silently ignored rule. Units are parsed here, while the
//! deserializer still knows where the value sits. Cross-field rules live in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::units;

/// One service's policy: one YAML document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub service: String,
    #[serde(default)]
    pub mode: Mode,
    /// Named upstreams besides `app`, which is always the sidecar's `--upstream`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Absent: plain HTTP on `--listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpSpec>,
    /// Checked for every request, before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    #[serde(default)]
    pub defaults: DefaultsSpec,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Named ways to authenticate callers; routes refer to them by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auth: BTreeMap<String, AuthSpec>,
    /// Named rate limits and quotas; routes refer to them by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, LimitSpec>,
}

/// Where a limit is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each sidecar counts on its own.
    #[default]
    Local,
    /// One quota across every sidecar (of every service) whose policy has this limit.
    Global,
}

/// One rate limit or quota.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// `client_ip`, `client_id`, `route` or `header:NAME`: what is counted separately.
    pub key: String,
    /// The rate for everyone (without `plans`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Requests allowed at once on top of the rate; default the rate's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// The rate per authenticated plan.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, Rate>,
    /// With `plans`: the rate for clients whose plan is not listed, or who have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Rate>,
    #[serde(default)]
    pub scope: Scope,
    /// `dry_run`: decide and report, deny nothing. Default: the policy's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// A rate written as `100/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period: Duration,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate like 100/min, 5/s, 10/hour or 1000/day")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                units::parse_rate(v).map(|(count, period)| Rate { count, period }).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_rate(self.count, self.period))
    }
}

/// Which kind of credential an auth provider checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// Keys made with `wardenctl keys create`.
    ApiKey,
    /// Signed tokens checked against a JWKS.
    Jwt,
    /// Signed webhook bodies.
    Hmac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacScheme {
    Github,
    Stripe,
}

/// One auth provider. One flat struct rather than an enum per `type`, so a field that does
/// not belong to the type is reported at its own line (`validate.rs`), not as a
/// confusing "unknown variant".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// api_key, jwt: where the credential is; default `authorization` (`Bearer ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// jwt: accepted `iss` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<String>,
    /// jwt: accepted `aud` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// jwt: an inline JWKS (a YAML mapping, or a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// jwt: a JWKS file on the sidecar's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// jwt: the claim naming the client; default `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_claim: Option<String>,
    /// jwt: the claim naming the plan; default `plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_claim: Option<String>,
    /// jwt: clock skew allowed on `exp` and `nbf`; default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<Dur>,
    /// hmac: how the signature is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<HmacScheme>,
    /// hmac: the name of a secret set with `wardenctl secrets set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// hmac (stripe): how old a signed timestamp may be; default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Dur>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// SNI picks among them by the names in each certificate.
    pub certificates: Vec<CertSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertSpec {
    /// PEM chain, leaf first; a path on the sidecar's host.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpSpec {
    /// CIDRs whose `x-forwarded-for` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// Deny wins; a non-empty allow list admits only its networks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deny what the rules deny.
    #[default]
    Enforce,
    /// Decide and log, never deny.
    DryRun,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// `host:port` each; none for `app`, whose one endpoint is the sidecar's `--upstream`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Open connections per endpoint at most (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests per endpoint waiting for a connection at most (default 1024); past it, 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<u32>,
    /// What is spoken to it (default `http1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<UpstreamProtocol>,
    /// Present: TLS to every endpoint (`tls: {}` trusts the bundled webpki roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsSpec>,
    /// Requests at once on one HTTP/2 connection (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// How often endpoint names are resolved again (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<Dur>,
    /// Passive outlier detection (on by default: 5 failures, 30s, 50%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierSpec>,
    /// Overrides `defaults.retry_budget` for this upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudgetSpec>,
}

/// When an endpoint is taken out of rotation for failing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSpec {
    /// Failures in a row that eject an endpoint (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The first ejection's length, doubled for each one after (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection: Option<Dur>,
    /// The most of an upstream's endpoints ejected at once, rounded down (default 50%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejected: Option<Percent>,
}

/// How many retries an upstream takes on top of its requests (Linkerd's and Finagle's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetSpec {
    /// Retries as a share of requests (default 20%).
    pub ratio: Percent,
    /// Retries a second allowed whatever the ratio (default 10/s).
    pub min_rate: Rate,
}

/// Which attempts a route makes again, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesSpec {
    /// Tries in all, the first included (gRPC's `maxAttempts`).
    pub attempts: u32,
    /// `connect-failure`, `reset`, `refused-stream`, `5xx`, a status code, a gRPC status name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<RetryOnSpec>,
    /// The longest one try may take until its response head (default: the route's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Dur>,
}

/// One `retries.on` entry: a word, or a status code written as a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RetryOnSpec {
    Status(u16),
    Word(String),
}

/// A share written `20%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u32);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage like 20%")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
                let n = v.trim().strip_suffix('%').and_then(|n| n.trim().parse::<u32>().ok());
                match n {
                    Some(n) if n <= 100 => Ok(Percent(n)),
                    _ => Err(E::custom(format!("'{v}' is not a percentage: write 0% to 100%, like 20%"))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0))
    }
}

/// The upstream every sidecar has: its `--upstream`.
pub const APP_UPSTREAM: &str = "app";

/// What the sidecar speaks to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2: prior knowledge on plain TCP, ALPN `h2` with TLS. gRPC needs it.
    Http2,
    /// HTTP/2 when the downstream request is HTTP/2, else HTTP/1.1.
    Auto,
}

/// TLS to an upstream. Paths are on the sidecar's host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// PEM roots to trust instead of the bundled webpki roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The name the endpoint's certificate must carry (default: the endpoint's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// A client certificate (PEM chain) to present, with `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
    /// What a path with `%2F` gets (default `reject`); a route may say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped_slashes: Option<EscapedSlashes>,
    /// Routes match paths ignoring ASCII case (for apps that route that way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive_paths: bool,
    /// Every upstream's retry budget unless it sets its own (default 20%, 10/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudgetSpec>,
    /// CORS for every route; a route's `cors` overrides it field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
}

/// Which browser origins may call, answered by Warden (`docs/cors.md`). Every field is
/// optional so a route's block can override the defaults' field by field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// `https://app.example.com`, `https://*.example.com` (subdomains only), or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<String>>,
    /// Default: GET, HEAD, POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// How long a browser may reuse a preflight's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

impl CorsSpec {
    /// This block over `base`, field by field.
    pub fn over(&self, base: Option<&CorsSpec>) -> CorsSpec {
        let Some(b) = base else { return self.clone() };
        CorsSpec {
            allow_origins: self.allow_origins.clone().or_else(|| b.allow_origins.clone()),
            allow_methods: self.allow_methods.clone().or_else(|| b.allow_methods.clone()),
            allow_headers: self.allow_headers.clone().or_else(|| b.allow_headers.clone()),
            expose_headers: self.expose_headers.clone().or_else(|| b.expose_headers.clone()),
            max_age: self.max_age.or(b.max_age),
            allow_credentials: self.allow_credentials.or(b.allow_credentials),
        }
    }
}

/// A path with an escaped slash (`%2F`) is routed as the app sees it, decoded; then it is
/// refused (`reject`) or forwarded decoded (`decode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    #[default]
    Reject,
    Decode,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderOpsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderOpsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Checked after the route matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    /// The largest request body this route accepts; default `defaults.max_body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
    /// The auth provider callers must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Keep the credential header for the app; by default it is removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_credentials: bool,
    /// Limits checked, in order, after auth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Overrides `defaults.escaped_slashes` for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped_slashes: Option<EscapedSlashes>,
    /// The longest deadline a gRPC caller's `grpc-timeout` may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grpc_timeout: Option<Dur>,
    /// Tries made again when an attempt fails (a request never sent always is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetriesSpec>,
    /// Retries may repeat POST, PATCH and other non-idempotent methods on this route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,
    /// The longest a streamed response (a gRPC stream, server-sent events) may go quiet;
    /// overrides `--stream-idle-timeout` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    /// WebSocket upgrades are tunnelled to the app on this route (default: stripped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upgrades: bool,
    /// Overrides `defaults.cors` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header name → exact value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsSpec {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A duration written as `250ms`, `5s`, `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// A size written as `512KiB`, `1MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor so an error carries the value's own line and column.
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 250ms, 5s or 1m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                units::parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A bare YAML number is a byte count; anything else must carry a unit.
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 512KiB or 1MiB")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                units::parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}
