//! Table tests for the policy model: what each kind of mistake says and where, what a
//! valid file yields, and that the builder is deterministic.

use super::*;

fn errors(yaml: &str) -> Vec<String> {
    match parse_file("p.yaml", yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn mistakes_are_reported_with_line_column_and_field() {
    let cases: &[(&str, &str)] = &[
        ("service: orders\nroutez: []\n", "p.yaml:2:1: unknown field `routez`"),
        ("service: orders\nmode: strict\n", "p.yaml:2:7: mode: unknown variant `strict`"),
        ("routes: []\n", "missing field `service`"),
        ("service: Orders\n", "p.yaml:1:10: service: service must be 1-63 characters"),
        (
            "service: o\nroutes:\n  - name: a\n    match: { path: /a, path_prefix: /a }\n",
            "p.yaml:4:12: routes[0].match: use either path or path_prefix, not both",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    match: { path_prefix: /a//b }\n",
            "p.yaml:4:27: routes[0].match.path_prefix: '/a//b' is not a normalized path: write '/a/b'",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    match: { path: api }\n",
            "routes[0].match.path: 'api': the request path must start with '/'",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    match: { host: API.example.com }\n",
            "p.yaml:4:20: routes[0].match.host: 'API.example.com' is not a host name",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    match: { methods: [get] }\n",
            "p.yaml:4:24: routes[0].match.methods[0]: 'get' is not an HTTP method",
        ),
        (
            "service: o\nroutes:\n  - name: a\n  - name: a\n",
            "p.yaml:4:11: routes[1].name: route name 'a' is used twice",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    upstream: billing\n",
            "p.yaml:4:15: routes[0].upstream: upstream 'billing' is not defined (defined: app)",
        ),
        (
            "service: o\nupstreams:\n  app: { endpoints: [\"127.0.0.1:1\"] }\n",
            "p.yaml:3:21: upstreams.app.endpoints: 'app' has no endpoints here",
        ),
        (
            "service: o\nupstreams:\n  g: { endpoints: [\"127.0.0.1:1\"], protocol: h2 }\n",
            "p.yaml:3:46: upstreams.g.protocol: unknown variant `h2`, expected one of `http1`, `http2`, `auto`",
        ),
        (
            "service: o\nupstreams:\n  g: { protocol: http2 }\n",
            "p.yaml:3:6: upstreams.g.endpoints: an upstream needs at least one endpoint",
        ),
        (
            "service: o\nupstreams:\n  g:\n    endpoints: [\"b.internal:443\"]\n    tls: { cert_file: /c.pem }\n",
            "p.yaml:5:23: upstreams.g.tls.cert_file: a client certificate needs its key_file",
        ),
        (
            "service: o\nupstreams:\n  g:\n    endpoints: [\"b.internal:443\"]\n    tls: { server_name: \"*.internal\" }\n",
            "p.yaml:5:25: upstreams.g.tls.server_name: '*.internal' is not a server name",
        ),
        (
            "service: o\nupstreams:\n  g:\n    endpoints: [\"b.internal:443\"]\n    tls: { ca: /ca.pem }\n",
            "p.yaml:5:12: upstreams.g.tls: unknown field `ca`",
        ),
        (
            "service: o\nupstreams:\n  g: { endpoints: [\"127.0.0.1:1\"], max_concurrent_streams: 0 }\n",
            "p.yaml:3:60: upstreams.g.max_concurrent_streams: max_concurrent_streams must be more than 0",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    retries: { attempts: 3, on: [reset, teapot] }\n",
            "p.yaml:4:41: routes[0].retries.on[1]: 'teapot' is not a retry condition",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    retries: { attempts: 9 }\n",
            "p.yaml:4:26: routes[0].retries.attempts: attempts counts every try, the first included: 1 to 5",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    retries: { attempts: 2, on: [302] }\n",
            "routes[0].retries.on[0]: '302' is not a retry condition",
        ),
        (
            "service: o\ndefaults:\n  retry_budget: { ratio: 120%, min_rate: 1/s }\n",
            "p.yaml:3:26: defaults.retry_budget.ratio: '120%' is not a percentage",
        ),
        (
            "service: o\nupstreams:\n  g: { endpoints: [\"127.0.0.1:1\"], outlier: { consecutive_failures: 0 } }\n",
            "upstreams.g.outlier.consecutive_failures: consecutive_failures must be more than 0",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    idle_timeout: 0s\n",
            "routes[0].idle_timeout: idle_timeout must be more than 0",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    max_grpc_timeout: 0s\n",
            "p.yaml:4:23: routes[0].max_grpc_timeout: max_grpc_timeout must be more than 0",
        ),
        (
            "service: o\ndefaults:\n  cors: { allow_origins: [\"*\"], allow_credentials: true }\n",
            "p.yaml:3:27: defaults.cors.allow_origins[0]: '*' cannot be used with allow_credentials: true",
        ),
        (
            "service: o\ndefaults:\n  cors: { allow_origins: [\"*\"] }\nroutes:\n  - name: a\n    cors: { allow_credentials: true }\n",
            "p.yaml:6:32: routes[0].cors.allow_credentials: '*' cannot be used with allow_credentials: true",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    cors: { allow_origins: [\"https://app.example.com/\"] }\n",
            "p.yaml:4:29: routes[0].cors.allow_origins[0]: 'https://app.example.com/': an origin has no path or user, only https://app.example.com",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    cors: { allow_origins: [\"https://app.*.com\"] }\n",
            "a wildcard only stands for subdomains at the front",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    cors: { allow_methods: [get] }\n",
            "routes[0].cors: cors needs allow_origins (here)",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    cors: { allow_origins: [\"app.example.com\"], expose_headers: [\"x y\"] }\n",
            "'app.example.com' is not an origin: write the scheme and host",
        ),
        (
            "service: o\nupstreams:\n  b: { endpoints: [\"nohost\"] }\n",
            "p.yaml:3:20: upstreams.b.endpoints[0]: 'nohost' must be host:port",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    request_headers: { set: { host: x } }\n",
            "routes[0].request_headers.set.host: 'host' is managed by the proxy",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    request_headers: { set: { x-warden-client: x } }\n",
            "x-warden-* headers are reserved for Warden",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    timeout: 5 sec\n",
            "p.yaml:4:14: routes[0].timeout: '5 sec' is not a duration",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    match: { headers: { X-A: \"1\", x-a: \"2\" } }\n",
            "routes[0].match.headers.X-A: 'X-A' is listed twice: header names are case-insensitive",
        ),
        (
            "service: o\naccess: { deny: [10.0.0.1/8] }\n",
            "p.yaml:2:18: access.deny[0]: '10.0.0.1/8' has host bits set: write 10.0.0.0/8",
        ),
        (
            "service: o\nclient_ip: { trusted_proxies: [lb.internal] }\n",
            "client_ip.trusted_proxies[0]: 'lb.internal' is not an IP address or CIDR",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    access: { allow: [300.0.0.0/8] }\n",
            "routes[0].access.allow[0]: '300.0.0.0/8' is not an IP address or CIDR",
        ),
        ("service: o\naccess: { alow: [] }\n", "unknown field `alow`"),
        ("service: o\ndefaults: { max_body: 1TB }\n", "p.yaml:2:23: defaults.max_body: '1TB' is not a size"),
        ("service: o\nroutes: [\n", "p.yaml:3:1"),
        ("service: a\n---\nservice: a\n", "service 'a' appears in more than one document"),
        ("# nothing here\n", "the file holds no policy document"),
        (
            "service: o\nroutes:\n  - name: a\n    auth: keys\n",
            "p.yaml:4:11: routes[0].auth: auth 'keys' is not defined under auth: (defined: none)",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    forward_credentials: true\n",
            "routes[0].forward_credentials: forward_credentials needs auth on the route",
        ),
        ("service: o\nauth:\n  k: { type: apikey }\n", "p.yaml:3:14: auth.k.type: unknown variant `apikey`"),
        (
            "service: o\nauth:\n  k: { type: api_key, secret: s }\n",
            "p.yaml:3:31: auth.k.secret: 'secret' does not apply to type api_key",
        ),
        ("service: o\nauth:\n  k: { type: api_key, header: x-warden-key }\n", "x-warden-* headers are reserved"),
        ("service: o\nauth:\n  j: { type: jwt }\n", "auth.j: a jwt provider needs jwks (inline) or jwks_file"),
        (
            "service: o\nauth:\n  j: { type: jwt, jwks: { keys: [] } }\n",
            "p.yaml:3:25: auth.j.jwks: the JWKS has no keys",
        ),
        (
            "service: o\nauth:\n  j:\n    type: jwt\n    jwks: { keys: [ { kty: RSA, n: \"!!\", e: AQAB } ] }\n",
            "auth.j.jwks: key #0:",
        ),
        ("service: o\nauth:\n  j: { type: jwt, jwks_file: /j, leeway: 1h }\n", "auth.j.leeway: leeway is at most 5m"),
        (
            "service: o\nauth:\n  j: { type: jwt, jwks: { keys: [ { kty: oct, k: c2VjcmV0 } ] } }\n",
            "auth.j.jwks: a symmetric key (kty: oct, HS256) is a secret and a policy is not",
        ),
        ("service: o\nauth:\n  h: { type: hmac, secret: s }\n", "auth.h: an hmac provider needs scheme"),
        ("service: o\nauth:\n  h: { type: hmac, scheme: stripe }\n", "an hmac provider needs secret"),
        (
            "service: o\nauth:\n  h: { type: hmac, scheme: github, secret: s, tolerance: 5m }\n",
            "auth.h.tolerance: tolerance applies to scheme stripe",
        ),
        ("service: o\nauth:\n  h: { type: hmac, scheme: github, secret: \"a b\" }\n", "auth.h.secret: secret names"),
        (
            "service: o\nlimits:\n  l: { key: client_ip, rate: 5/week }\n",
            "p.yaml:3:30: limits.l.rate: '5/week' is not a rate",
        ),
        ("service: o\nlimits:\n  l: { key: ip, rate: 5/s }\n", "limits.l.key: 'ip' is not a limit key"),
        ("service: o\nlimits:\n  l: { key: client_ip }\n", "limits.l: a limit needs a rate, or plans"),
        (
            "service: o\nlimits:\n  l: { key: client_id, rate: 1/s, plans: { free: 1/s } }\n",
            "limits.l: use either rate or plans",
        ),
        (
            "service: o\nlimits:\n  l: { key: client_ip, rate: 1/s, default: 1/s }\n",
            "limits.l.default: default is the rate",
        ),
        ("service: o\nlimits:\n  l: { key: client_ip, rate: 1/s, burst: 0 }\n", "limits.l.burst: burst is 1 to"),
        (
            "service: o\nroutes:\n  - name: a\n    limits: [nope]\n",
            "p.yaml:4:14: routes[0].limits[0]: limit 'nope' is not defined under limits: (defined: none)",
        ),
        (
            "service: o\nroutes:\n  - name: a\n    limits: [l]\nlimits:\n  l: { key: client_id, rate: 1/s }\n",
            "routes[0].limits[0]: limit 'l' counts per client_id, which only a route with auth knows",
        ),
    ];
    for (yaml, want) in cases {
        let got = errors(yaml);
        assert!(got.iter().any(|e| e.contains(want)), "for:\n{yaml}\nwanted {want:?}\ngot {got:#?}");
    }
}

#[test]
fn documents_keep_their_own_text_and_file_line_numbers() {
    let file = "# two services\nservice: a\n---\nservice: b\nroutes:\n  - name: x\n    upstream: nope\n";
    let err = parse_file("f.yaml", file).unwrap_err();
    assert_eq!(err.0[0].line, 7, "{err}");
    let ok = parse_file("f.yaml", &file.replace("    upstream: nope\n", "")).unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].source, "service: b\nroutes:\n  - name: x\n");
    assert_eq!(
        parse_service("f.yaml", &file.replace("    upstream: nope\n", ""), Some("b")).unwrap().policy.service,
        "b"
    );
}

#[test]
fn shadowed_routes_are_warnings() {
    let cases = [
        ("{ path_prefix: /api }", "{ path_prefix: /api/v1 }", true),
        ("{ path_prefix: /api }", "{ path_prefix: /apix }", false),
        ("{}", "{ path: /x }", true),
        ("{ host: \"*.example.com\" }", "{ host: a.example.com, path: /x }", true),
        ("{ host: a.example.com }", "{ host: b.example.com }", false),
        ("{ methods: [GET, POST] }", "{ methods: [GET] }", true),
        ("{ methods: [GET] }", "{ methods: [GET, POST] }", false),
        ("{ methods: [GET] }", "{}", false),
        ("{ headers: { x-a: \"1\" } }", "{ headers: { x-a: \"1\", x-b: \"2\" } }", true),
        ("{ headers: { x-a: \"1\" } }", "{}", false),
    ];
    for (first, second, shadowed) in cases {
        let yaml = format!(
            "service: o\nroutes:\n  - name: first\n    match: {first}\n  - name: second\n    match: {second}\n"
        );
        let docs = parse_file("p.yaml", &yaml).unwrap();
        let warned =
            docs[0].warnings.iter().any(|w| w.message.contains("'second' is shadowed by the earlier route 'first'"));
        assert_eq!(warned, shadowed, "{first} then {second}");
    }
}

#[test]
fn the_builder_is_deterministic_and_resolves_units() {
    let yaml = "service: orders
upstreams:
  zeta: { endpoints: [\"10.0.0.2:80\", \"10.0.0.3:80\"] }
  alpha: { endpoints: [\"10.0.0.1:80\"], connect_timeout: 250ms }
defaults: { timeout: 2s, max_body: 512KiB }
routes:
  - name: r
    match: { host: \"*.example.com\", path_prefix: /api, methods: [GET], headers: { X-B: \"2\", x-a: \"1\" } }
    rewrite: { path_prefix: /v2 }
    request_headers: { set: { X-Z: z, x-y: y }, remove: [Cookie] }
    timeout: 1m
    upstream: zeta
";
    let parsed = parse_service("p.yaml", yaml, None).unwrap();
    let a = build(&parsed.policy, &parsed.source, 7);
    let b = build(&parse_service("p.yaml", yaml, None).unwrap().policy, yaml, 7);
    assert_eq!(a, b);
    assert_eq!(prost::Message::encode_to_vec(&a), prost::Message::encode_to_vec(&b));
    assert_eq!(a.upstreams.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alpha", "zeta"]);
    assert_eq!(a.upstreams[0].connect_timeout_ms, 250);
    assert_eq!(a.upstreams[1].connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT.as_millis() as u64);
    let d = a.defaults.unwrap();
    assert_eq!((d.timeout_ms, d.max_body_bytes), (2_000, 512 * 1024));
    let r = &a.routes[0];
    assert_eq!(r.timeout_ms, 60_000);
    let m = r.r#match.as_ref().unwrap();
    assert_eq!(m.headers.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["x-a", "x-b"]);
    assert_eq!(r.request_headers.as_ref().unwrap().remove, ["cookie"]);
    assert_eq!(a.content_hash, content_hash(yaml));
    assert_eq!(a.schema, 1, "a routing-only policy is readable by every sidecar");
    let with_access = format!("{yaml}access: {{ deny: [203.0.113.0/24] }}\n");
    let p = parse_service("p.yaml", &with_access, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, 2, "access rules need a sidecar that enforces them");
    let with_tls = format!("{yaml}tls: {{ certificates: [{{ cert: /c.pem, key: /k.pem }}] }}\n");
    let p = parse_service("p.yaml", &with_tls, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, 3, "a sidecar without TLS must not serve plain HTTP instead");
    let with_auth = format!("{yaml}auth: {{ k: {{ type: api_key }} }}\n");
    let p = parse_service("p.yaml", &with_auth, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, 4, "a sidecar without auth must not let everyone in");
    let with_limits = format!("{yaml}limits: {{ l: {{ key: client_ip, rate: 5/min }} }}\n");
    let p = parse_service("p.yaml", &with_limits, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, 5, "nor one without limits serve unlimited");
    let http1 = yaml.replace("connect_timeout: 250ms", "connect_timeout: 250ms, protocol: http1");
    let p = parse_service("p.yaml", &http1, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, 1, "saying the default needs nothing new");
    for (change, why) in [
        (
            "connect_timeout: 250ms, protocol: http2",
            "an HTTP/1.1-only sidecar must not speak HTTP/1.1 to a gRPC server",
        ),
        ("connect_timeout: 250ms, tls: {}", "nor plain TCP to a TLS upstream"),
    ] {
        let p = parse_service("p.yaml", &yaml.replace("connect_timeout: 250ms", change), None).unwrap();
        assert_eq!(build(&p.policy, &p.source, 7).schema, 6, "{why}");
    }
    let app = yaml.replace("upstreams:\n", "upstreams:\n  app: { protocol: http2 }\n");
    let p = parse_service("p.yaml", &app, None).unwrap();
    let built = build(&p.policy, &p.source, 7);
    assert_eq!(built.schema, 6, "nor ignore the app's own settings");
    assert_eq!(built.upstreams[1].name, "app", "listed, in name order");
    let compiled = crate::snapshot::Snapshot::try_from(&built).unwrap();
    assert_eq!(compiled.upstreams[0].protocol, crate::snapshot::Protocol::Http2, "app is still first");
    assert!(compiled.upstreams[0].endpoints.is_empty());
    assert_eq!(compiled.upstreams.len(), 3);
    let cors =
        yaml.replace("max_body: 512KiB }", "max_body: 512KiB, cors: { allow_origins: [\"https://a.example.com\"] } }");
    let p = parse_service("p.yaml", &cors, None).unwrap();
    assert_eq!(build(&p.policy, &p.source, 7).schema, SCHEMA, "a sidecar without CORS would forward preflights");
}
