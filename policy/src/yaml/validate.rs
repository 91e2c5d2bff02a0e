//! Cross-field checks a policy must pass before it is stored or served: names, paths,
//! hosts, header names, and references between routes and upstreams. Also the
//! shadowed-route warning. Findings carry a path (`routes[2].upstream`); `parse.rs` turns
//! it into a line and column.

use std::collections::HashSet;

use http::{HeaderName, HeaderValue, Method};

use super::locate::Seg;
use super::model::{
    APP_UPSTREAM, AccessSpec, AuthKind, AuthSpec, CorsSpec, HeaderOpsSpec, HmacScheme, LimitSpec, MatchSpec, Policy,
    RetriesSpec, RetryOnSpec, RouteSpec, UpstreamTlsSpec,
};
use crate::ipset::parse_net;
use crate::normalize::{normalize_path, prefix_matches};

/// One finding: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: Vec<Seg>,
    pub message: String,
}

/// Headers a route may not set or remove: hop-by-hop ones, and the ones Warden owns.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

struct Checker {
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Checker {
    fn error(&mut self, path: Vec<Seg>, message: impl Into<String>) {
        self.errors.push(Finding { path, message: message.into() });
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn at(base: &[Seg], rest: &[&str]) -> Vec<Seg> {
    base.iter().cloned().chain(rest.iter().map(|k| key(k))).collect()
}

/// Checks a deserialized policy. Returns (errors, warnings).
pub fn validate(policy: &Policy) -> (Vec<Finding>, Vec<Finding>) {
    let mut c = Checker { errors: Vec::new(), warnings: Vec::new() };

    if !is_service_name(&policy.service) {
        c.error(vec![key("service")], "service must be 1-63 characters of a-z, 0-9 and '-'");
    }

    for (name, up) in &policy.upstreams {
        let base = vec![key("upstreams"), key(name)];
        if name == APP_UPSTREAM {
            if !up.endpoints.is_empty() {
                c.error(
                    at(&base, &["endpoints"]),
                    "'app' has no endpoints here: its one endpoint is always the sidecar's --upstream",
                );
            }
        } else if !is_name(name) {
            c.error(base.clone(), "upstream names are 1-63 characters of a-z, 0-9 and '-'");
        } else if up.endpoints.is_empty() {
            c.error(at(&base, &["endpoints"]), "an upstream needs at least one endpoint");
        }
        for (i, ep) in up.endpoints.iter().enumerate() {
            if let Err(msg) = check_endpoint(ep) {
                c.error([at(&base, &["endpoints"]), vec![Seg::Index(i)]].concat(), msg);
            }
        }
        if up.connect_timeout.is_some_and(|d| d.0.is_zero()) {
            c.error(at(&base, &["connect_timeout"]), "connect_timeout must be more than 0");
        }
        for (field, value, default) in [
            ("max_connections", up.max_connections, 1024),
            ("max_pending", up.max_pending, 1024),
            ("max_concurrent_streams", up.max_concurrent_streams, 100),
        ] {
            if value == Some(0) {
                c.error(
                    at(&base, &[field]),
                    format!("{field} must be more than 0 (omit it for the default, {default})"),
                );
            }
        }
        if let Some(tls) = &up.tls {
            check_upstream_tls(&mut c, &at(&base, &["tls"]), tls);
        }
        if up.dns_refresh.is_some_and(|d| d.0 < std::time::Duration::from_secs(1)) {
            c.error(at(&base, &["dns_refresh"]), "dns_refresh must be at least 1s");
        }
        if let Some(o) = &up.outlier {
            let ob = at(&base, &["outlier"]);
            if o.consecutive_failures == Some(0) {
                c.error(at(&ob, &["consecutive_failures"]), "consecutive_failures must be more than 0");
            }
            if o.base_ejection.is_some_and(|d| d.0.is_zero()) {
                c.error(at(&ob, &["base_ejection"]), "base_ejection must be more than 0");
            }
        }
    }

    if let Some(tls) = &policy.tls {
        if tls.certificates.is_empty() {
            c.error(vec![key("tls"), key("certificates")], "tls needs at least one certificate");
        }
        for (i, cert) in tls.certificates.iter().enumerate() {
            for (field, path) in [("cert", &cert.cert), ("key", &cert.key)] {
                if path.trim().is_empty() {
                    c.error(
                        vec![key("tls"), key("certificates"), Seg::Index(i), key(field)],
                        "a file path is required",
                    );
                }
            }
        }
    }
    if let Some(cip) = &policy.client_ip {
        check_nets(&mut c, &[key("client_ip"), key("trusted_proxies")], &cip.trusted_proxies);
    }
    if let Some(access) = &policy.access {
        check_access(&mut c, &[key("access")], access);
    }

    for (name, spec) in &policy.auth {
        check_auth(&mut c, name, spec);
        if !policy.routes.iter().any(|r| r.auth.as_deref() == Some(name.as_str())) {
            c.warnings.push(Finding {
                path: vec![key("auth"), key(name)],
                message: format!("auth '{name}' is not used by any route"),
            });
        }
    }

    for (name, spec) in &policy.limits {
        check_limit(&mut c, name, spec);
        if !policy.routes.iter().any(|r| r.limits.contains(name)) {
            c.warnings.push(Finding {
                path: vec![key("limits"), key(name)],
                message: format!("limit '{name}' is not used by any route"),
            });
        }
    }

    if policy.defaults.max_body.is_some_and(|s| s.0 == 0) {
        c.error(vec![key("defaults"), key("max_body")], "max_body must be more than 0");
    }
    if policy.defaults.timeout.is_some_and(|d| d.0.is_zero()) {
        c.error(vec![key("defaults"), key("timeout")], "timeout must be more than 0");
    }

    if let Some(cors) = &policy.defaults.cors {
        check_cors(&mut c, &[key("defaults"), key("cors")], cors, None);
    }

    if policy.routes.is_empty() {
        c.warnings.push(Finding {
            path: vec![key("service")],
            message: "the policy has no routes: every request gets 404".into(),
        });
    }

    let mut names = HashSet::new();
    for (i, route) in policy.routes.iter().enumerate() {
        let base = vec![key("routes"), Seg::Index(i)];
        if !is_route_name(&route.name) {
            c.error(at(&base, &["name"]), "route names are 1-63 characters of letters, digits, '-' and '_'");
        } else if !names.insert(route.name.as_str()) {
            c.error(at(&base, &["name"]), format!("route name '{}' is used twice", route.name));
        }
        check_route(&mut c, policy, &base, route);
    }

    for (j, later) in policy.routes.iter().enumerate() {
        if let Some(earlier) = policy.routes[..j].iter().find(|e| covers(&e.matches, &later.matches)) {
            c.warnings.push(Finding {
                path: vec![key("routes"), Seg::Index(j)],
                message: format!(
                    "route '{}' is shadowed by the earlier route '{}' and can never match",
                    later.name, earlier.name
                ),
            });
        }
    }

    (c.errors, c.warnings)
}

fn check_route(c: &mut Checker, policy: &Policy, base: &[Seg], route: &RouteSpec) {
    let m = &route.matches;
    let mb = at(base, &["match"]);
    if let Some(host) = &m.host
        && let Err(msg) = check_host_pattern(host)
    {
        c.error(at(&mb, &["host"]), msg);
    }
    match (&m.path, &m.path_prefix) {
        (Some(_), Some(_)) => c.error(mb.clone(), "use either path or path_prefix, not both"),
        (Some(p), None) => check_match_path(c, at(&mb, &["path"]), p),
        (None, Some(p)) => check_match_path(c, at(&mb, &["path_prefix"]), p),
        (None, None) => {}
    }
    for (i, method) in m.methods.iter().enumerate() {
        if Method::from_bytes(method.as_bytes()).is_err() || method.to_ascii_uppercase() != *method {
            c.error(
                [at(&mb, &["methods"]), vec![Seg::Index(i)]].concat(),
                format!("'{method}' is not an HTTP method: write it in capitals, like GET or POST"),
            );
        }
    }
    for (name, value) in &m.headers {
        let path = at(&mb, &["headers", name]);
        let checked = check_header(name, value)
            .and_then(|()| check_request_header_name(name))
            .and_then(|()| check_unique(m.headers.keys(), name));
        if let Err(msg) = checked {
            c.error(path, msg);
        }
    }

    if let Some(rw) = &route.rewrite {
        if let Some(p) = &rw.path_prefix {
            check_match_path(c, at(base, &["rewrite", "path_prefix"]), p);
        }
        if let Some(h) = &rw.host
            && (h.is_empty() || h.parse::<http::uri::Authority>().is_err())
        {
            c.error(at(base, &["rewrite", "host"]), format!("'{h}' is not a valid host"));
        }
    }
    for (field, ops) in [("request_headers", &route.request_headers), ("response_headers", &route.response_headers)] {
        if let Some(ops) = ops {
            check_header_ops(c, &at(base, &[field]), ops);
        }
    }
    if let Some(access) = &route.access {
        check_access(c, &at(base, &["access"]), access);
    }
    if route.max_body.is_some_and(|s| s.0 == 0) {
        c.error(at(base, &["max_body"]), "max_body must be more than 0 (omit it to use defaults.max_body)");
    }
    if route.timeout.is_some_and(|d| d.0.is_zero()) {
        c.error(at(base, &["timeout"]), "timeout must be more than 0");
    }
    for (i, name) in route.limits.iter().enumerate() {
        let path = [at(base, &["limits"]), vec![Seg::Index(i)]].concat();
        match policy.limits.get(name) {
            None => {
                let defined: Vec<&str> = policy.limits.keys().map(String::as_str).collect();
                let defined = if defined.is_empty() { "none".to_owned() } else { defined.join(", ") };
                c.error(path, format!("limit '{name}' is not defined under limits: (defined: {defined})"));
            }
            Some(_) if route.limits[..i].contains(name) => c.error(path, format!("limit '{name}' is listed twice")),
            Some(l) if l.key == "client_id" && route.auth.is_none() => c.error(
                path,
                format!(
                    "limit '{name}' counts per client_id, which only a route with auth knows: add auth to the route"
                ),
            ),
            Some(_) => {}
        }
    }
    match &route.auth {
        Some(name) if !policy.auth.contains_key(name) => {
            let defined: Vec<&str> = policy.auth.keys().map(String::as_str).collect();
            let defined = if defined.is_empty() { "none".to_owned() } else { defined.join(", ") };
            c.error(at(base, &["auth"]), format!("auth '{name}' is not defined under auth: (defined: {defined})"));
        }
        None if route.forward_credentials => {
            c.error(at(base, &["forward_credentials"]), "forward_credentials needs auth on the route");
        }
        _ => {}
    }
    if let Some(r) = &route.retries {
        check_retries(c, &at(base, &["retries"]), r);
    }
    if let Some(cors) = &route.cors {
        check_cors(c, &at(base, &["cors"]), cors, policy.defaults.cors.as_ref());
    }
    if route.idle_timeout.is_some_and(|d| d.0.is_zero()) {
        c.error(at(base, &["idle_timeout"]), "idle_timeout must be more than 0");
    }
    if route.max_grpc_timeout.is_some_and(|d| d.0.is_zero()) {
        c.error(at(base, &["max_grpc_timeout"]), "max_grpc_timeout must be more than 0 (omit it for no cap)");
    }
    if let Some(up) = &route.upstream
        && up != APP_UPSTREAM
        && !policy.upstreams.contains_key(up)
    {
        let mut defined: Vec<&str> =
            policy.upstreams.keys().map(String::as_str).filter(|n| *n != APP_UPSTREAM).collect();
        defined.insert(0, APP_UPSTREAM);
        c.error(at(base, &["upstream"]), format!("upstream '{up}' is not defined (defined: {})", defined.join(", ")));
    }
}

/// A CORS block's own fields, then the block over the defaults' (what the route will serve).
fn check_cors(c: &mut Checker, base: &[Seg], cors: &CorsSpec, defaults: Option<&CorsSpec>) {
    let item = |field: &str, i: usize| [at(base, &[field]), vec![Seg::Index(i)]].concat();
    let origins = cors.allow_origins.as_deref().unwrap_or_default();
    for (i, o) in origins.iter().enumerate() {
        if let Err(msg) = check_origin(o) {
            c.error(item("allow_origins", i), msg);
        } else if o == "*" && origins.len() > 1 {
            c.error(item("allow_origins", i), "'*' allows every origin: list it alone");
        }
    }
    for (i, m) in cors.allow_methods.iter().flatten().enumerate() {
        if Method::from_bytes(m.as_bytes()).is_err() || m.to_ascii_uppercase() != *m {
            c.error(
                item("allow_methods", i),
                format!("'{m}' is not an HTTP method: write it in capitals, like GET or POST"),
            );
        }
    }
    for (field, names) in [("allow_headers", &cors.allow_headers), ("expose_headers", &cors.expose_headers)] {
        for (i, h) in names.iter().flatten().enumerate() {
            if HeaderName::from_bytes(h.as_bytes()).is_err() {
                c.error(item(field, i), format!("'{h}' is not a valid header name"));
            }
        }
    }
    let merged = cors.over(defaults);
    let Some(all) = &merged.allow_origins else {
        let here = if defaults.is_some() { "here or in defaults.cors" } else { "here" };
        return c.error(base.to_vec(), format!("cors needs allow_origins ({here})"));
    };
    // Browsers refuse `access-control-allow-origin: *` on a call with credentials.
    if merged.allow_credentials == Some(true) && all.iter().any(|o| o == "*") {
        let msg = "'*' cannot be used with allow_credentials: true (browsers refuse it): list the origins";
        match origins.iter().position(|o| o == "*") {
            Some(i) => c.error(item("allow_origins", i), msg),
            None => c.error(at(base, &["allow_credentials"]), msg),
        }
    }
}

/// `*`, `https://app.example.com[:port]`, or `https://*.example.com[:port]`: what a
/// browser's `origin` header can be, with nothing after the host.
fn check_origin(o: &str) -> Result<(), String> {
    if o == "*" {
        return Ok(());
    }
    let Some((scheme, rest)) = o.split_once("://").filter(|(s, _)| matches!(*s, "http" | "https")) else {
        return Err(format!("'{o}' is not an origin: write the scheme and host, like https://app.example.com"));
    };
    if rest.contains(['/', '?', '#', '@']) {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        return Err(format!("'{o}': an origin has no path or user, only {scheme}://{host}"));
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    if host.is_empty() || host.contains('*') || host.parse::<http::uri::Authority>().is_err() {
        return Err(format!(
            "'{o}' is not an origin: a wildcard only stands for subdomains at the front, like https://*.example.com"
        ));
    }
    Ok(())
}

/// Most clock skew a JWT check may allow: more turns `exp` into a suggestion.
const MAX_JWT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(300);

fn check_auth(c: &mut Checker, name: &str, a: &AuthSpec) {
    let base = vec![key("auth"), key(name)];
    if !is_route_name(name) {
        c.error(base.clone(), "auth names are 1-63 characters of letters, digits, '-' and '_'");
    }
    let kind = match a.kind {
        AuthKind::ApiKey => "api_key",
        AuthKind::Jwt => "jwt",
        AuthKind::Hmac => "hmac",
    };
    // Fields that belong to another type are errors, not silently ignored settings.
    let jwt_only = [
        ("issuers", !a.issuers.is_empty()),
        ("audiences", !a.audiences.is_empty()),
        ("jwks", a.jwks.is_some()),
        ("jwks_file", a.jwks_file.is_some()),
        ("client_claim", a.client_claim.is_some()),
        ("plan_claim", a.plan_claim.is_some()),
        ("leeway", a.leeway.is_some()),
    ];
    let hmac_only =
        [("scheme", a.scheme.is_some()), ("secret", a.secret.is_some()), ("tolerance", a.tolerance.is_some())];
    let foreign: Vec<(&str, bool)> = match a.kind {
        AuthKind::ApiKey => jwt_only.iter().chain(&hmac_only).copied().collect(),
        AuthKind::Jwt => hmac_only.to_vec(),
        AuthKind::Hmac => jwt_only.iter().copied().chain([("header", a.header.is_some())]).collect(),
    };
    for (field, set) in foreign {
        if set {
            c.error(at(&base, &[field]), format!("'{field}' does not apply to type {kind}"));
        }
    }
    if let Some(h) = &a.header
        && let Err(msg) =
            check_header(h, "").and_then(|()| check_request_header_name(h)).and_then(|()| check_writable(h))
    {
        c.error(at(&base, &["header"]), msg);
    }
    match a.kind {
        AuthKind::ApiKey => {}
        AuthKind::Jwt => {
            match (&a.jwks, &a.jwks_file) {
                (None, None) => c.error(base.clone(), "a jwt provider needs jwks (inline) or jwks_file"),
                (Some(_), Some(_)) => c.error(at(&base, &["jwks_file"]), "use either jwks or jwks_file, not both"),
                (Some(jwks), None) => {
                    let json = super::build::jwks_json(jwks);
                    if let Err(msg) = crate::auth::parse_jwks(&json) {
                        c.error(at(&base, &["jwks"]), msg);
                    } else if crate::auth::has_symmetric_key(&json) {
                        c.error(
                            at(&base, &["jwks"]),
                            "a symmetric key (kty: oct, HS256) is a secret and a policy is not: put this JWKS in a jwks_file on the sidecar's host",
                        );
                    }
                }
                (None, Some(file)) if file.trim().is_empty() => {
                    c.error(at(&base, &["jwks_file"]), "a file path is required")
                }
                (None, Some(_)) => {}
            }
            for (field, list) in [("issuers", &a.issuers), ("audiences", &a.audiences)] {
                if let Some(i) = list.iter().position(|v| v.is_empty()) {
                    c.error([at(&base, &[field]), vec![Seg::Index(i)]].concat(), "must not be empty");
                }
            }
            for (field, claim) in [("client_claim", &a.client_claim), ("plan_claim", &a.plan_claim)] {
                if claim.as_ref().is_some_and(|v| v.is_empty()) {
                    c.error(at(&base, &[field]), "must not be empty");
                }
            }
            if a.leeway.is_some_and(|d| d.0 > MAX_JWT_LEEWAY) {
                c.error(at(&base, &["leeway"]), "leeway is at most 5m");
            }
            if a.issuers.is_empty() {
                c.warnings.push(Finding {
                    path: base.clone(),
                    message: "no issuers: a token from any issuer the JWKS keys signed is accepted".into(),
                });
            }
        }
        AuthKind::Hmac => {
            if a.scheme.is_none() {
                c.error(base.clone(), "an hmac provider needs scheme: github or stripe");
            }
            match &a.secret {
                None => {
                    c.error(base.clone(), "an hmac provider needs secret: the name given to `wardenctl secrets set`")
                }
                Some(s) if !is_secret_name(s) => c.error(
                    at(&base, &["secret"]),
                    "secret names are 1-63 characters of letters, digits, '-', '_' and '.'",
                ),
                Some(_) => {}
            }
            if a.tolerance.is_some() && a.scheme != Some(HmacScheme::Stripe) {
                c.error(at(&base, &["tolerance"]), "tolerance applies to scheme stripe (GitHub signs no timestamp)");
            }
            if a.tolerance.is_some_and(|d| d.0.as_secs() == 0) {
                c.error(at(&base, &["tolerance"]), "tolerance must be at least 1s");
            }
            if a.scheme == Some(HmacScheme::Github) {
                c.warnings.push(Finding {
                    path: at(&base, &["scheme"]),
                    message: "GitHub signs no timestamp, so a captured delivery verifies again if replayed: have the app drop repeated x-github-delivery ids".into(),
                });
            }
        }
    }
}

fn check_limit(c: &mut Checker, name: &str, l: &LimitSpec) {
    let base = vec![key("limits"), key(name)];
    if !is_route_name(name) {
        c.error(base.clone(), "limit names are 1-63 characters of letters, digits, '-' and '_'");
    }
    match l.key.as_str() {
        "client_ip" | "client_id" | "route" => {}
        other => match other.strip_prefix("header:").map(str::trim) {
            Some(h) if HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                if let Err(msg) = check_request_header_name(h) {
                    c.error(at(&base, &["key"]), msg);
                }
            }
            Some(h) => c.error(at(&base, &["key"]), format!("'{h}' is not a valid header name")),
            None => c.error(
                at(&base, &["key"]),
                format!("'{other}' is not a limit key: use client_ip, client_id, route or header:NAME"),
            ),
        },
    }
    match (&l.rate, l.plans.is_empty()) {
        (Some(_), false) => {
            c.error(base.clone(), "use either rate or plans, not both (default sets the rate for other plans)")
        }
        (None, true) => c.error(base.clone(), "a limit needs a rate, or plans"),
        _ => {}
    }
    if l.default.is_some() && l.plans.is_empty() {
        c.error(at(&base, &["default"]), "default is the rate for plans not listed: it needs plans");
    }
    if !l.plans.is_empty() && l.default.is_none() {
        c.warnings.push(Finding {
            path: at(&base, &["plans"]),
            message: "no default: clients without one of these plans are not limited by this limit".into(),
        });
    }
    for plan in l.plans.keys() {
        let ok =
            (1..=128).contains(&plan.len()) && plan.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b));
        if !ok {
            c.error(at(&base, &["plans", plan]), format!("'{plan}' is not a plan name"));
        }
    }
    if let Some(b) = l.burst
        && !(1..=1_000_000_000).contains(&b)
    {
        c.error(at(&base, &["burst"]), "burst is 1 to 1,000,000,000 requests");
    }
}

/// What a policy's `service` may be, and so what a sidecar may name in `--service` and
/// its Hello.
pub fn is_service_name(s: &str) -> bool {
    is_name(s)
}

/// What `wardenctl secrets set NAME` accepts, and so what a policy may name.
pub fn is_secret_name(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_access(c: &mut Checker, base: &[Seg], access: &AccessSpec) {
    check_nets(c, &at(base, &["allow"]), &access.allow);
    check_nets(c, &at(base, &["deny"]), &access.deny);
    if access.allow.is_empty() && access.deny.is_empty() {
        c.warnings
            .push(Finding { path: base.to_vec(), message: "access lists no networks: it admits everyone".into() });
    }
}

fn check_nets(c: &mut Checker, base: &[Seg], nets: &[String]) {
    for (i, net) in nets.iter().enumerate() {
        if let Err(msg) = parse_net(net) {
            c.error([base.to_vec(), vec![Seg::Index(i)]].concat(), msg);
        }
    }
}

fn check_match_path(c: &mut Checker, path: Vec<Seg>, p: &str) {
    match normalize_path(p) {
        Err(e) => c.error(path, format!("'{p}': {e}")),
        Ok(n) if n != p => c.error(path, format!("'{p}' is not a normalized path: write '{n}'")),
        Ok(_) if p.contains("%2F") => c.error(
            path,
            format!("'{p}': routes match paths with escaped slashes decoded, write '{}'", p.replace("%2F", "/")),
        ),
        Ok(_) if p.len() > 1 && p.ends_with('/') => c.error(
            path,
            format!("'{p}' ends with '/': prefixes match on segment boundaries, write '{}'", p.trim_end_matches('/')),
        ),
        Ok(_) => {}
    }
}

fn check_header_ops(c: &mut Checker, base: &[Seg], ops: &HeaderOpsSpec) {
    for (name, value) in &ops.set {
        let path = at(base, &["set", name]);
        let checked = check_header(name, value)
            .and_then(|()| check_writable(name))
            .and_then(|()| check_unique(ops.set.keys(), name));
        if let Err(msg) = checked {
            c.error(path, msg);
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        let path = [at(base, &["remove"]), vec![Seg::Index(i)]].concat();
        if let Err(msg) = check_header(name, "").and_then(|()| check_writable(name)) {
            c.error(path, msg);
        }
    }
}

/// The sidecar drops request headers whose names have anything but letters, digits and
/// `-` (they alias other headers in CGI-style apps), so a rule reading one never matches.
fn check_request_header_name(name: &str) -> Result<(), String> {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(format!(
            "'{name}': request headers whose names have characters other than letters, digits and '-' are dropped at the edge, so this could never match"
        ))
    }
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{name}' is not a valid header name"));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err(format!("the value of '{name}' has characters a header cannot carry"));
    }
    Ok(())
}

fn check_unique<'a>(mut names: impl Iterator<Item = &'a String>, name: &str) -> Result<(), String> {
    if names.any(|n| n != name && n.eq_ignore_ascii_case(name)) {
        return Err(format!("'{name}' is listed twice: header names are case-insensitive"));
    }
    Ok(())
}

fn check_writable(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "'{name}' is managed by the proxy and cannot be set or removed here (use rewrite.host for Host)"
        ));
    }
    if lower.starts_with("x-warden-") {
        return Err(format!("'{name}': x-warden-* headers are reserved for Warden"));
    }
    Ok(())
}

/// Most tries a route may make for one request.
const MAX_ATTEMPTS: u32 = 5;

/// The words `retries.on` takes besides status codes and gRPC status names.
pub const RETRY_ON_WORDS: [&str; 4] = ["connect-failure", "reset", "refused-stream", "5xx"];

fn check_retries(c: &mut Checker, base: &[Seg], r: &RetriesSpec) {
    if !(1..=MAX_ATTEMPTS).contains(&r.attempts) {
        c.error(at(base, &["attempts"]), format!("attempts counts every try, the first included: 1 to {MAX_ATTEMPTS}"));
    }
    if r.per_try_timeout.is_some_and(|d| d.0.is_zero()) {
        c.error(at(base, &["per_try_timeout"]), "per_try_timeout must be more than 0");
    }
    for (i, on) in r.on.iter().enumerate() {
        let (ok, what) = match on {
            RetryOnSpec::Status(code) => ((400..=599).contains(code), code.to_string()),
            RetryOnSpec::Word(w) => {
                (RETRY_ON_WORDS.contains(&w.as_str()) || crate::grpc::code_of(w).is_some_and(|c| c > 0), w.clone())
            }
        };
        if !ok {
            c.error(
                [at(base, &["on"]), vec![Seg::Index(i)]].concat(),
                format!(
                    "'{what}' is not a retry condition: use {}, a status code 400-599, or a gRPC status name like unavailable",
                    RETRY_ON_WORDS.join(", ")
                ),
            );
        }
    }
}

fn check_upstream_tls(c: &mut Checker, base: &[Seg], tls: &UpstreamTlsSpec) {
    for (field, path) in [("ca_file", &tls.ca_file), ("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
        if path.as_ref().is_some_and(|p| p.trim().is_empty()) {
            c.error(at(base, &[field]), "a file path is required (omit the field instead)");
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => c.error(at(base, &["cert_file"]), "a client certificate needs its key_file"),
        (None, Some(_)) => c.error(at(base, &["key_file"]), "a client key needs its cert_file"),
        _ => {}
    }
    if let Some(name) = &tls.server_name
        && name.parse::<std::net::IpAddr>().is_err()
        && (name.starts_with("*.") || check_host_pattern(name).is_err())
    {
        c.error(
            at(base, &["server_name"]),
            format!(
                "'{name}' is not a server name: use a lower-case host name like billing.internal, or an IP address"
            ),
        );
    }
}

fn check_endpoint(ep: &str) -> Result<(), String> {
    let auth: http::uri::Authority = ep.parse().map_err(|_| format!("'{ep}' is not host:port"))?;
    if auth.port_u16().is_none() || auth.host().is_empty() || ep.contains('@') {
        return Err(format!("'{ep}' must be host:port, like 127.0.0.1:9090"));
    }
    Ok(())
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{host}' is not a host name: use lower-case names like api.example.com, or *.example.com for any subdomain, without a port"
        ))
    }
}

fn is_name(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_route_name(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True when every request `inner` matches is also matched by `outer`.
fn covers(outer: &MatchSpec, inner: &MatchSpec) -> bool {
    let host = match (&outer.host, &inner.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => o == i || o.strip_prefix("*.").is_some_and(|suffix| i.ends_with(&format!(".{suffix}"))),
    };
    let path = match (&outer.path, &outer.path_prefix) {
        (None, None) => true,
        (Some(o), _) => inner.path.as_ref() == Some(o),
        (None, Some(o)) => match (&inner.path, &inner.path_prefix) {
            (Some(i), _) | (None, Some(i)) => prefix_matches(i, o),
            (None, None) => o == "/",
        },
    };
    let methods = outer.methods.is_empty()
        || (!inner.methods.is_empty() && inner.methods.iter().all(|m| outer.methods.contains(m)));
    let headers = outer.headers.iter().all(|(k, v)| inner.headers.get(k) == Some(v));
    host && path && methods && headers
}
