//! Compiling snapshots and matching requests against compiled routes.

use http::{HeaderMap, HeaderValue, Method};
use warden_proto::v1 as pb;

use super::*;
use crate::auth::Credentials;
use crate::decide::{Action, Decision, Env, HeadCaps, Request, decide};
use crate::limits::Known;
use crate::yaml::{SCHEMA, build, parse_service};

fn compile(yaml: &str) -> Result<Snapshot, InvalidSnapshot> {
    let p = parse_service("p.yaml", yaml, None).unwrap();
    compile_proto(&build(&p.policy, &p.source, 1))
}

fn compile_proto(s: &pb::Snapshot) -> Result<Snapshot, InvalidSnapshot> {
    Snapshot::try_from(s)
}

const POLICY: &str = "service: orders
upstreams:
  admin: { endpoints: [\"127.0.0.1:9090\", \"127.0.0.1:9091\"] }
routes:
  - name: partner
    match: { host: api.example.com, path_prefix: /api/v1 }
    rewrite: { path_prefix: /v2 }
  - name: wild
    match: { host: \"*.example.com\" }
  - name: exact
    match: { path: /login, methods: [POST] }
    rewrite: { path_prefix: /auth/login }
  - name: admin
    match: { path_prefix: /admin, headers: { x-admin: \"yes\" } }
    upstream: admin
  - name: root
    match: { path_prefix: / }
    rewrite: { path_prefix: /app }
";

/// Decides a GET-like request for `path` (a URI path) from `ip`, with a `Host` header
/// when `host` is not empty, and describes the decision with `f`.
fn run(
    s: &Snapshot,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&'static str, &'static str)],
    ip: &str,
    f: impl FnOnce(&Decision<'_, '_>) -> String,
) -> String {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_static(v));
    }
    if !host.is_empty() {
        h.insert("host", HeaderValue::from_str(host).unwrap());
    }
    let uri: http::Uri = path.parse().unwrap();
    let creds = Credentials::default();
    let env = Env {
        snapshot: s,
        creds: &creds,
        caps: HeadCaps::default(),
        limits: &Known::default(),
        now_ms: 0,
        recorded: None,
    };
    let req = Request { method: &method, uri: &uri, headers: &h, peer: ip.parse().unwrap() };
    f(&decide(&env, &req, None))
}

/// The upstream target a forward sends: its own, or the request's path.
fn target(d: &Decision<'_, '_>, fwd: &crate::decide::Forward<'_>) -> String {
    match &fwd.path_and_query {
        Some(pq) => pq.to_string(),
        None => d.path.as_deref().unwrap_or_default().to_owned(),
    }
}

fn route_for(
    s: &Snapshot,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> (String, String) {
    let out = run(s, method, host, path, headers, "127.0.0.1", |d| match &d.action {
        Action::Forward(f) => format!("{}\n{}", f.route.name, target(d, f)),
        Action::Deny(r) => format!("deny:{}\n", r.code()),
        Action::Preflight(_) => "preflight\n".into(),
    });
    let (route, path) = out.split_once('\n').unwrap();
    (route.to_owned(), path.to_owned())
}

#[test]
fn first_match_wins_and_rewrites_replace_the_matched_part() {
    let s = compile(POLICY).unwrap();
    // (method, host, path, headers, route, path the upstream gets)
    type Case =
        (Method, &'static str, &'static str, &'static [(&'static str, &'static str)], &'static str, &'static str);
    let cases: &[Case] = &[
        (Method::GET, "api.example.com", "/api/v1/orders", &[], "partner", "/v2/orders"),
        (Method::GET, "api.example.com", "/api/v1", &[], "partner", "/v2"),
        (Method::GET, "api.example.com", "/api/v10", &[], "wild", "/api/v10"),
        (Method::GET, "eu.example.com", "/x", &[], "wild", "/x"),
        (Method::GET, "example.com", "/x", &[], "root", "/app/x"),
        (Method::POST, "", "/login", &[], "exact", "/auth/login"),
        (Method::GET, "", "/login", &[], "root", "/app/login"),
        (Method::GET, "", "/admin/users", &[("x-admin", "yes")], "admin", "/admin/users"),
        (Method::GET, "", "/admin/users", &[("x-admin", "no")], "root", "/app/admin/users"),
        (Method::GET, "", "/", &[], "root", "/app/"),
    ];
    for (method, host, path, headers, route, upstream_path) in cases {
        let got = route_for(&s, method.clone(), host, path, headers);
        assert_eq!(got, (route.to_string(), upstream_path.to_string()), "{method} {host}{path} {headers:?}");
    }
}

#[test]
fn no_route_is_a_refusal_and_upstreams_keep_their_order() {
    let s = compile("service: orders\nroutes:\n  - name: a\n    match: { path: /a }\n").unwrap();
    assert_eq!(route_for(&s, Method::GET, "", "/b", &[]).0, "deny:no_route");

    let s = compile(POLICY).unwrap();
    let admin = s.upstreams.iter().find(|u| &*u.name == "admin").unwrap();
    let endpoints: Vec<String> = admin.endpoints.iter().map(ToString::to_string).collect();
    assert_eq!(endpoints, ["127.0.0.1:9090", "127.0.0.1:9091"]);
    assert_eq!((&*s.upstreams[0].name, s.upstreams[0].endpoints.len()), ("app", 0), "app's endpoint is the sidecar's");
    assert!(s.upstreams.iter().enumerate().all(|(i, u)| u.index == i));
}

#[test]
fn snapshots_a_sidecar_cannot_serve_are_refused_with_a_reason() {
    let p = parse_service("p.yaml", POLICY, None).unwrap();
    let good = build(&p.policy, &p.source, 1);

    let mut s = good.clone();
    s.schema = 99;
    assert_eq!(compile_proto(&s).unwrap_err(), InvalidSnapshot::SchemaTooNew { got: 99, max: SCHEMA });

    let mut s = good.clone();
    s.routes[0].upstream = "ghost".into();
    assert_eq!(compile_proto(&s).unwrap_err().to_string(), "route 'partner': upstream 'ghost' is not defined");

    let mut s = good.clone();
    s.upstreams[0].endpoints = vec!["no-port".into()];
    assert_eq!(compile_proto(&s).unwrap_err().to_string(), "upstream 'admin': endpoint 'no-port' is not host:port");

    let mut s = good;
    s.defaults = None;
    assert_eq!(compile_proto(&s).unwrap_err(), InvalidSnapshot::Missing("defaults"));
}

const ACCESS: &str = "service: orders
client_ip: { trusted_proxies: [10.0.0.0/8] }
access: { deny: [203.0.113.0/24, \"2001:db8:bad::/48\"] }
routes:
  - name: admin
    match: { path_prefix: /admin }
    access: { allow: [10.0.0.0/8, 192.168.0.0/16], deny: [10.6.6.0/24] }
  - name: app
    match: { path_prefix: / }
";

fn decide_for(s: &Snapshot, ip: &str, path: &str) -> String {
    run(s, Method::GET, "", path, &[], ip, |d| match (&d.action, d.would_deny.first()) {
        (Action::Forward(f), None) => format!("forward:{}", f.route.name),
        (Action::Forward(f), Some(r)) => format!("forward:{} would-deny:{}", f.route.name, r.rule()),
        (Action::Deny(r), _) => format!("{} {} {:?}", r.status().as_u16(), r.rule(), d.route.map(|r| &*r.name)),
        (Action::Preflight(_), _) => "preflight".into(),
    })
}

#[test]
fn access_rules_run_before_and_after_routing() {
    let s = compile(ACCESS).unwrap();
    let cases = [
        ("198.51.100.1", "/x", "forward:app"),
        ("203.0.113.9", "/x", "403 access.deny None"),
        ("203.0.113.9", "/admin", "403 access.deny None"),
        ("::ffff:203.0.113.9", "/x", "403 access.deny None"),
        ("2001:db8:bad::1", "/x", "403 access.deny None"),
        ("10.1.2.3", "/admin", "forward:admin"),
        ("192.168.4.4", "/admin/users", "forward:admin"),
        ("198.51.100.1", "/admin", "403 routes.admin.access.allow Some(\"admin\")"),
        ("10.6.6.6", "/admin", "403 routes.admin.access.deny Some(\"admin\")"),
    ];
    for (ip, path, want) in cases {
        assert_eq!(decide_for(&s, ip, path), want, "{ip} {path}");
    }
}

#[test]
fn dry_run_reports_what_it_would_deny_and_forwards() {
    let s = compile(&ACCESS.replace("service: orders\n", "service: orders\nmode: dry_run\n")).unwrap();
    assert_eq!(decide_for(&s, "203.0.113.9", "/admin"), "forward:admin would-deny:access.deny");
    assert_eq!(decide_for(&s, "10.1.2.3", "/admin"), "forward:admin");
    // Routing itself is not a rule: no route is still 404.
    let s = compile("service: orders\nmode: dry_run\nroutes:\n  - name: a\n    match: { path: /a }\n").unwrap();
    assert_eq!(decide_for(&s, "10.1.2.3", "/b"), "404 no-route None");
}

#[test]
fn auth_runs_after_routing_and_access_and_dry_run_only_reports_it() {
    let yaml = "service: orders
routes:
  - name: private
    match: { path_prefix: /private }
    access: { deny: [10.0.0.0/8] }
    auth: keys
  - name: open
    match: { path_prefix: / }
auth:
  keys: { type: api_key, header: x-api-key }
";
    let decide_for = |s: &Snapshot, path: &str, ip: &str| {
        run(s, Method::GET, "", path, &[], ip, |d| match &d.action {
            Action::Forward(f) => format!(
                "forward:{}:{}:{}",
                f.route.name,
                d.identity.is_some(),
                d.would_deny.first().map_or("-", |r| r.code())
            ),
            Action::Deny(r) => format!("deny:{}", r.code()),
            Action::Preflight(_) => "preflight".into(),
        })
    };
    let s = compile(yaml).unwrap();
    assert_eq!(decide_for(&s, "/private/x", "192.0.2.1"), "deny:credential_missing");
    assert_eq!(decide_for(&s, "/private/x", "10.1.1.1"), "deny:address_denied", "access is checked before auth");
    assert_eq!(decide_for(&s, "/other", "192.0.2.1"), "forward:open:false:-", "routes without auth need nothing");

    let s = compile(&format!("mode: dry_run\n{yaml}")).unwrap();
    assert_eq!(
        decide_for(&s, "/private/x", "192.0.2.1"),
        "forward:private:false:credential_missing",
        "dry run forwards, without an identity, and reports what it would have refused"
    );
}

#[test]
fn a_thousand_routes_match_as_a_scan_in_file_order_would() {
    let mut yaml = String::from("service: orders\nroutes:\n");
    for i in 0..1000 {
        yaml += &format!("  - name: r{i}\n    match: {{ path_prefix: /r{i} }}\n");
        if i == 500 {
            yaml += "  - name: by-host\n    match: { host: h.example.com }\n";
            yaml += "  - name: exact\n    match: { path: /r7/x }\n";
        }
    }
    yaml += "  - name: nested\n    match: { path_prefix: /r3/deep }\n  - name: rest\n    match: { path_prefix: / }\n";
    let s = compile(&yaml).unwrap();
    let scan = |host: &str, path: &str| {
        s.routes.iter().find(|r| r.mismatch(&Method::GET, host, path, &HeaderMap::new()).is_none()).map(|r| &r.name)
    };
    for host in ["", "h.example.com"] {
        for path in ["/r0", "/r999/x", "/r7/x", "/r3/deep", "/r3%2Fx", "/r10", "/r1000", "/", "/x/r1", "/r600"] {
            let indexed = s.route_for(&Method::GET, host, path, &HeaderMap::new()).map(|r| &r.name);
            assert_eq!(indexed, scan(host, path), "{host}{path}");
        }
    }
    assert_eq!(route_for(&s, Method::GET, "h.example.com", "/r600", &[]).0, "by-host", "an any-path route in between");
    assert_eq!(route_for(&s, Method::GET, "h.example.com", "/r400", &[]).0, "r400");
    assert_eq!(route_for(&s, Method::GET, "", "/r3%2Fx", &[]).0, "deny:bad_path");
    assert_eq!(route_for(&s, Method::GET, "", "/nope", &[]).0, "rest");
}

const SPELLINGS: &str = "service: orders
defaults: { escaped_slashes: reject }
routes:
  - name: admin
    match: { path_prefix: /internal/admin }
  - name: login
    match: { path: /auth/login, methods: [POST] }
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
    rewrite: { path_prefix: /store }
  - name: rest
    match: { path_prefix: / }
";

#[test]
fn escaped_slashes_route_as_decoded_then_the_route_decides() {
    let s = compile(SPELLINGS).unwrap();
    // (method, path, route or refusal, path the upstream gets)
    let cases = [
        (Method::GET, "/internal%2Fadmin/users", "deny:bad_path", ""),
        (Method::POST, "/auth%2Flogin", "deny:bad_path", ""),
        (Method::GET, "/files%2Fa%2Fb", "files", "/store/a/b"),
        (Method::GET, "/files/a%2Fb", "files", "/store/a/b"),
        (Method::GET, "/docs/a%2Fb", "deny:bad_path", ""),
        // normalize_path refuses this one (dots behind escaped slashes); were it to get
        // here, decoding cannot resolve it, and the escaped path must still be refused.
        (Method::GET, "/internal%2F...%2Fadmin", "deny:bad_path", ""),
    ];
    for (method, path, want, upstream) in cases {
        assert_eq!(route_for(&s, method.clone(), "", path, &[]), (want.to_owned(), upstream.to_owned()), "{path}");
    }
    let s = compile(&SPELLINGS.replace("escaped_slashes: reject", "escaped_slashes: decode")).unwrap();
    assert_eq!(route_for(&s, Method::GET, "", "/internal%2Fadmin/users", &[]).0, "admin");
    assert_eq!(route_for(&s, Method::GET, "", "/docs/a%2Fb", &[]), ("rest".into(), "/docs/a/b".into()));
}

#[test]
fn exact_paths_take_one_trailing_slash_and_case_folds_only_when_asked() {
    let s = compile(SPELLINGS).unwrap();
    assert_eq!(route_for(&s, Method::POST, "", "/auth/login/", &[]).0, "login");
    assert_eq!(route_for(&s, Method::POST, "", "/auth/login/x", &[]).0, "rest");
    assert_eq!(route_for(&s, Method::GET, "", "/INTERNAL/Admin", &[]).0, "rest", "case counts by default");

    let s = compile(&SPELLINGS.replace("defaults: {", "defaults: { case_insensitive_paths: true,")).unwrap();
    assert_eq!(route_for(&s, Method::GET, "", "/INTERNAL/Admin/x", &[]).0, "admin");
    assert_eq!(route_for(&s, Method::POST, "", "/Auth/LOGIN/", &[]).0, "login");
    // The upstream still gets the case the client sent.
    assert_eq!(route_for(&s, Method::GET, "", "/Files/Report", &[]), ("files".into(), "/store/Report".into()));
}

#[test]
fn preflights_are_answered_by_the_route_of_the_method_they_ask_about() {
    let yaml = "service: orders
defaults:
  cors: { allow_origins: [\"https://app.example.com\"], allow_methods: [GET, PUT], allow_credentials: true }
routes:
  - name: admin
    match: { path_prefix: /api/admin }
    access: { allow: [10.0.0.0/8] }
  - name: put
    match: { path_prefix: /api, methods: [PUT] }
    auth: keys
    cors: { allow_origins: [\"https://*.example.com\"] }
  - name: options
    match: { path_prefix: /own, methods: [OPTIONS] }
    cors: { allow_origins: [\"https://app.example.com\"] }
  - name: app
    match: { path_prefix: / }
auth:
  keys: { type: api_key, header: x-api-key }
";
    let preflight = |s: &Snapshot, path: &str, origin: &'static str, ip: &str| {
        let h = [("origin", origin), ("access-control-request-method", "PUT")];
        run(s, Method::OPTIONS, "", path, &h, ip, |d| match &d.action {
            Action::Preflight(p) => format!(
                "preflight:{}:{}:{}",
                d.route.map_or("-", |r| &*r.name),
                p.origin.as_ref().map_or("-", |o| o.to_str().unwrap()),
                d.would_deny.first().map_or("-".into(), |r| r.rule())
            ),
            Action::Forward(f) => format!("forward:{}", f.route.name),
            Action::Deny(r) => format!("deny:{}:{}", r.code(), r.rule()),
        })
    };
    let s = compile(yaml).unwrap();
    let ok = "https://a.example.com";
    assert_eq!(preflight(&s, "/api/x", ok, "192.0.2.1"), "preflight:put:https://a.example.com:-", "no key needed");
    assert_eq!(preflight(&s, "/api/x", "https://evil.io", "192.0.2.1"), "deny:cors_origin_not_allowed:routes.put.cors");
    assert_eq!(
        preflight(&s, "/api/admin/x", "https://app.example.com", "192.0.2.1"),
        "deny:address_denied:routes.admin.access.allow",
        "access lists hold"
    );
    assert_eq!(
        preflight(&s, "/api/admin/x", "https://app.example.com", "10.0.0.1"),
        "preflight:admin:https://app.example.com:-",
        "the defaults' CORS"
    );
    assert_eq!(
        preflight(&s, "/own", "https://app.example.com", "192.0.2.1"),
        "preflight:app:https://app.example.com:-"
    );
    let defaults = "defaults:\n  cors: { allow_origins: [\"https://app.example.com\"], allow_methods: [GET, PUT], allow_credentials: true }\n";
    let own = compile(&yaml.replace(defaults, "")).unwrap();
    assert_eq!(
        preflight(&own, "/own", ok, "192.0.2.1"),
        "forward:options",
        "PUT's route has no CORS: the app's OPTIONS"
    );
    // An actual call from a browser goes through auth as always.
    let put = run(&s, Method::PUT, "", "/api/x", &[("origin", ok)], "192.0.2.1", |d| match &d.action {
        Action::Deny(r) => r.code().to_owned(),
        _ => "other".into(),
    });
    assert_eq!(put, "credential_missing");

    let dry = compile(&format!("mode: dry_run\n{yaml}")).unwrap();
    assert_eq!(
        preflight(&dry, "/api/x", "https://evil.io", "192.0.2.1"),
        "preflight:put:-:routes.put.cors",
        "answered without CORS"
    );
}
