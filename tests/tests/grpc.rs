//! gRPC through the sidecar, with a client and a server Warden did not write (grpcio's C
//! core, `tools/grpc_peer.py`): the four call kinds with metadata and trailers, refusals
//! in gRPC's own terms, the caller's deadline, and TLS to the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use warden_e2e::tls::cert;
use warden_e2e::{CallResult, GrpcServer, Sidecar, closed_port, grpc_calls};

/// A unary call named `name` to `service`'s `Unary` method.
fn unary(name: &str, service: &str) -> serde_json::Value {
    json!({"name": name, "method": format!("/{service}/Unary"), "messages": ["m"]})
}

fn by_name<'a>(results: &'a [CallResult], name: &str) -> &'a CallResult {
    results.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no result for {name}: {results:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_call_kinds_pass_with_metadata_trailers_and_status() {
    let server = GrpcServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = "service: orders
upstreams:
  app: { protocol: http2 }
routes:
  - name: echo
    match: { path_prefix: /warden.test.Echo }
";
    let sidecar = Sidecar::with_policy(dir.path(), policy, &server.addr.to_string()).await;
    let results = grpc_calls(
        sidecar.proxy,
        json!([
            {"name": "unary", "method": "/warden.test.Echo/Unary", "messages": ["hello"], "metadata": {"x-echo": "e1"}},
            {"name": "server", "method": "/warden.test.Echo/ServerStream", "kind": "server", "messages": ["50"]},
            {"name": "client", "method": "/warden.test.Echo/ClientStream", "kind": "client", "messages": ["a", "b", "c"]},
            {"name": "bidi", "method": "/warden.test.Echo/Bidi", "kind": "bidi", "messages": ["x", "y", "z"]},
            {"name": "app error", "method": "/warden.test.Echo/Unary", "messages": ["fail"]},
        ]),
    )
    .await;

    let unary = by_name(&results, "unary");
    assert_eq!((unary.code.as_str(), unary.responses.as_slice()), ("OK", ["hello".to_owned()].as_slice()));
    assert_eq!(unary.initial_metadata.get("x-echo").map(String::as_str), Some("e1"), "metadata reaches the app");
    assert_eq!(unary.trailing_metadata.get("x-trailer").map(String::as_str), Some("done"), "trailers come back");
    assert_eq!(
        unary.initial_metadata.get("x-seen-x-forwarded-for").map(String::as_str),
        Some("127.0.0.1"),
        "the app gets Warden's forwarding headers"
    );
    assert!(unary.initial_metadata.contains_key("x-request-id"), "the response carries the request id");

    let server_stream = by_name(&results, "server");
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!((server_stream.code.as_str(), &server_stream.responses), ("OK", &want));
    assert_eq!(server_stream.trailing_metadata.get("x-trailer").map(String::as_str), Some("streamed"));

    let client = by_name(&results, "client");
    assert_eq!((client.code.as_str(), client.responses.as_slice()), ("OK", ["a,b,c".to_owned()].as_slice()));
    assert_eq!(client.trailing_metadata.get("x-count").map(String::as_str), Some("3"));

    let bidi = by_name(&results, "bidi");
    assert_eq!((bidi.code.as_str(), bidi.responses.join("")), ("OK", "XYZ".to_owned()));

    let failed = by_name(&results, "app error");
    assert_eq!(failed.code, "NOT_FOUND", "the app's own status passes as it was");
    assert_eq!(failed.details.as_deref(), Some("nothing here \u{2713} 100%"), "grpc-message intact, encoding and all");
    assert_eq!(failed.trailing_metadata.get("x-trailer").map(String::as_str), Some("failed"));
    assert!(!failed.trailing_metadata.contains_key("x-warden-denied-by"), "an app's error is not Warden's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_speak_grpc_with_the_code_rule_and_reason() {
    let server = GrpcServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dead = closed_port();
    let policy = format!(
        "service: orders
upstreams:
  app: {{ protocol: http2 }}
  legacy: {{ endpoints: [\"127.0.0.1:{dead}\"] }}
  gone: {{ endpoints: [\"127.0.0.1:{dead}\"], protocol: http2 }}
auth:
  keys: {{ type: api_key, header: x-api-key }}
limits:
  one: {{ key: client_ip, rate: 1/min }}
routes:
  - name: locked
    match: {{ path_prefix: /warden.test.Locked }}
    auth: keys
  - name: private
    match: {{ path_prefix: /warden.test.Private }}
    access: {{ deny: [127.0.0.0/8] }}
  - name: limited
    match: {{ path_prefix: /warden.test.Limited }}
    limits: [one]
  - name: legacy
    match: {{ path_prefix: /warden.test.Legacy }}
    upstream: legacy
  - name: gone
    match: {{ path_prefix: /warden.test.Gone }}
    upstream: gone
"
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &server.addr.to_string()).await;
    let results = grpc_calls(
        sidecar.proxy,
        json!([
            unary("no credential", "warden.test.Locked"),
            unary("address", "warden.test.Private"),
            unary("first", "warden.test.Limited"),
            unary("limited", "warden.test.Limited"),
            unary("no route", "other.v1.Nothing"),
            unary("http1 upstream", "warden.test.Legacy"),
            unary("upstream down", "warden.test.Gone"),
        ]),
    )
    .await;

    // (call, gRPC status, the refusal's code, its rule)
    let want = [
        ("no credential", "UNAUTHENTICATED", "credential_missing", "keys"),
        ("address", "PERMISSION_DENIED", "address_denied", "routes.private.access.deny"),
        ("limited", "RESOURCE_EXHAUSTED", "rate_limited", "one"),
        ("no route", "UNIMPLEMENTED", "no_route", "no-route"),
        ("http1 upstream", "INTERNAL", "protocol_mismatch", "upstream:legacy"),
        ("upstream down", "UNAVAILABLE", "upstream_unreachable", "upstream:gone"),
    ];
    for (name, status, code, rule) in want {
        let r = by_name(&results, name);
        assert_eq!(r.code, status, "{name}: {r:#?}");
        let details = r.details.as_deref().unwrap_or_default();
        let prefix = format!("{code} (rule {rule}): ");
        assert!(details.starts_with(&prefix) && details.len() > prefix.len() + 10, "{name}: {details:?}");
        let denied_by = r.trailing_metadata.get("x-warden-denied-by").map(String::as_str);
        assert_eq!(denied_by, Some(rule), "{name}: {r:#?}");
        let proxy_status = r.trailing_metadata.get("proxy-status").map(String::as_str).unwrap_or_default();
        assert!(proxy_status.starts_with("warden-sidecar; error="), "{name}: {proxy_status}");
        assert!(r.seconds < 5.0, "{name} was answered at once, not after the client's deadline");
    }
    assert_eq!(by_name(&results, "first").code, "OK", "the limit's budget admits one");
    let limited = by_name(&results, "limited");
    assert!(limited.trailing_metadata.contains_key("retry-after"), "{limited:#?}");
    let missing = by_name(&results, "no credential").details.clone().unwrap_or_default();
    assert!(missing.contains("x-api-key"), "the reason says where the credential goes: {missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_is_capped_by_the_route_and_ends_the_call() {
    let server = GrpcServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = "service: orders
upstreams:
  app: { protocol: http2 }
routes:
  - name: capped
    match: { path_prefix: /warden.test.Capped }
    max_grpc_timeout: 300ms
  - name: echo
    match: { path_prefix: /warden.test.Echo }
";
    let sidecar = Sidecar::with_policy(dir.path(), policy, &server.addr.to_string()).await;
    let results = grpc_calls(
        sidecar.proxy,
        json!([
            {"name": "own", "method": "/warden.test.Echo/Deadline", "timeout": 20},
            {"name": "capped", "method": "/warden.test.Capped/Deadline", "timeout": 20},
            {"name": "slow stream", "method": "/warden.test.Capped/Bidi", "kind": "bidi", "timeout": 20,
             "messages": ["a"], "hold": true},
        ]),
    )
    .await;
    let left = |name: &str| by_name(&results, name).responses[0].parse::<u64>().unwrap();
    assert!((10_000..=20_100).contains(&left("own")), "the app gets the caller's deadline: {results:#?}");
    assert!(left("capped") <= 300, "the route caps it: {results:#?}");
    let slow = by_name(&results, "slow stream");
    assert_eq!(slow.code, "DEADLINE_EXCEEDED", "{slow:#?}");
    assert!(slow.seconds < 2.5, "ended at the capped deadline, not the caller's: {slow:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstreams_verify_the_server_and_present_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_cert = cert(&["grpc.internal"]);
    let client_cert = cert(&["orders.sidecar"]);
    let path = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (server_crt, server_key) =
        (path("server.crt", &server_cert.cert_pem), path("server.key", &server_cert.key_pem));
    let (client_crt, client_key) =
        (path("client.crt", &client_cert.cert_pem), path("client.key", &client_cert.key_pem));
    let server = GrpcServer::start_with(&["--tls", &server_crt, &server_key, "--client-ca", &client_crt]).await;
    let port = server.addr.port();
    let policy = format!(
        "service: orders
upstreams:
  secure:
    endpoints: [\"127.0.0.1:{port}\"]
    protocol: http2
    tls: {{ ca_file: {server_crt}, server_name: grpc.internal, cert_file: {client_crt}, key_file: {client_key} }}
  anonymous:
    endpoints: [\"127.0.0.1:{port}\"]
    protocol: http2
    tls: {{ ca_file: {server_crt}, server_name: grpc.internal }}
  misnamed:
    endpoints: [\"127.0.0.1:{port}\"]
    protocol: http2
    tls: {{ ca_file: {server_crt}, server_name: billing.internal, cert_file: {client_crt}, key_file: {client_key} }}
  public-roots:
    endpoints: [\"127.0.0.1:{port}\"]
    protocol: http2
    tls: {{ server_name: grpc.internal, cert_file: {client_crt}, key_file: {client_key} }}
routes:
  - {{ name: secure, match: {{ path_prefix: /warden.test.Secure }}, upstream: secure }}
  - {{ name: anonymous, match: {{ path_prefix: /warden.test.Anonymous }}, upstream: anonymous }}
  - {{ name: misnamed, match: {{ path_prefix: /warden.test.Misnamed }}, upstream: misnamed }}
  - {{ name: public-roots, match: {{ path_prefix: /warden.test.Public }}, upstream: public-roots }}
"
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &server.addr.to_string()).await;
    let results = grpc_calls(
        sidecar.proxy,
        json!([
            unary("secure", "warden.test.Secure"),
            unary("anonymous", "warden.test.Anonymous"),
            unary("misnamed", "warden.test.Misnamed"),
            unary("public roots", "warden.test.Public"),
        ]),
    )
    .await;
    let secure = by_name(&results, "secure");
    assert_eq!((secure.code.as_str(), secure.responses.as_slice()), ("OK", ["m".to_owned()].as_slice()));
    for (name, why) in [
        ("anonymous", "the server wants a client certificate"),
        ("misnamed", "the certificate does not name billing.internal"),
        ("public roots", "a self-signed certificate is not in the webpki roots"),
    ] {
        let r = by_name(&results, name);
        assert_eq!(r.code, "UNAVAILABLE", "{name}: {why}: {r:#?}");
        let details = r.details.as_deref().unwrap_or_default();
        let refused = details.starts_with("upstream_tls_error") || details.starts_with("upstream_error");
        assert!(refused, "{name}: {why}: {details}");
    }
    assert!(by_name(&results, "misnamed").details.as_deref().unwrap_or_default().starts_with("upstream_tls_error"));
}
