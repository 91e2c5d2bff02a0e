//! Routing through a real sidecar: what the app receives, what the client gets back, and
//! the refusals Warden answers itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use warden_e2e::stack::BASIC;
use warden_e2e::{Client, Stack, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn an_applied_policy_routes_within_one_second() {
    let s = Stack::start_without_policy().await;

    // Before any policy: 503 from Warden, and not ready.
    let r = s.get("/orders").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "not_ready");
    assert_eq!(s.client.get(&s.sidecar.admin_url("/readyz")).await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);

    s.apply(BASIC).await;
    let applied = Instant::now();
    eventually("the policy routes", Duration::from_secs(1), || async {
        s.get("/orders").await.status == StatusCode::OK
    })
    .await;
    eprintln!("apply -> routed in {:?}", applied.elapsed());
    assert_eq!(s.client.get(&s.sidecar.admin_url("/readyz")).await.unwrap().status, StatusCode::OK);
}

const REWRITES: &str = "service: orders
routes:
  - name: partner-api
    match: { host: api.example.com, path_prefix: /api/v1 }
    rewrite: { path_prefix: /v2, host: partner.internal }
    request_headers: { set: { x-api-version: \"1\" }, remove: [cookie] }
    response_headers: { set: { x-served-by: warden }, remove: [x-app] }
  - name: wildcard
    match: { host: \"*.example.com\", path_prefix: /api }
  - name: canary
    match: { path_prefix: /orders, headers: { x-canary: \"true\" } }
    rewrite: { path_prefix: /canary/orders }
  - name: orders-write
    match: { path_prefix: /orders, methods: [POST] }
    rewrite: { path_prefix: /write }
  - name: orders
    match: { path_prefix: /orders }
  - name: exact
    match: { path: /exact }
";

#[tokio::test(flavor = "multi_thread")]
async fn the_app_receives_the_normalized_rewritten_request_with_forwarding_headers() {
    let s = Stack::start(REWRITES).await;
    let r = s
        .client
        .send(
            Method::GET,
            &s.sidecar.url("/api/v1//items/./../orders/%7E1?q=a%2Fb"),
            &[
                ("host", "API.example.com"),
                ("cookie", "session=secret"),
                ("x-warden-client", "forged"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-request-id", "client-chosen-id-1"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "must not pass"),
            ],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-served-by"), Some("warden"));
    assert_eq!(r.header("x-app"), None, "response_headers.remove");
    assert_eq!(r.header("x-request-id"), Some("client-chosen-id-1"));

    let seen = s.app.last();
    assert_eq!(seen.path_and_query, "/v2/orders/~1?q=a%2Fb");
    let h = |k: &str| seen.headers.get(k).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("host").as_deref(), Some("partner.internal"));
    assert_eq!(h("x-api-version").as_deref(), Some("1"));
    assert_eq!(h("cookie"), None);
    assert_eq!(h("x-warden-client"), None, "client-sent x-warden-* must never reach the app");
    assert_eq!(h("x-forwarded-for").as_deref(), Some("127.0.0.1"), "a client's x-forwarded-for is not believed");
    assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(h("x-forwarded-host").as_deref(), Some("api.example.com"), "the canonical host");
    assert_eq!(h("x-request-id").as_deref(), Some("client-chosen-id-1"));
    assert_eq!(h("x-hop"), None, "headers named in Connection are hop-by-hop");

    // Wildcard host, header match, method match, exact path; segment-boundary prefixes.
    // (method, path, headers, status, what the app sees)
    type Case = (Method, &'static str, &'static [(&'static str, &'static str)], u16, &'static str);
    let cases: [Case; 7] = [
        (Method::GET, "/api/x", &[("host", "eu.example.com")], 200, "/api/x"),
        (Method::GET, "/api/x", &[("host", "example.com")], 404, ""),
        (Method::GET, "/orders/7", &[("x-canary", "true")], 200, "/canary/orders/7"),
        (Method::POST, "/orders", &[], 200, "/write"),
        (Method::GET, "/orders", &[], 200, "/orders"),
        (Method::GET, "/ordersx", &[], 404, ""),
        (Method::GET, "/exact/more", &[], 404, ""),
    ];
    for (method, path, headers, status, app_path) in cases {
        let before = s.app.requests().len();
        let r = s.client.send(method.clone(), &s.sidecar.url(path), headers, Bytes::new()).await.unwrap();
        assert_eq!(r.status.as_u16(), status, "{method} {path} {headers:?}: {}", r.text());
        if status == 200 {
            assert_eq!(s.app.last().path_and_query, app_path, "{method} {path}");
        } else {
            assert_eq!(s.app.requests().len(), before, "a refused request must not reach the app");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_say_why_and_which_layer() {
    let policy = format!(
        "{BASIC}  - name: gone
    match: {{ path_prefix: /gone }}
    upstream: nowhere
upstreams:
  nowhere: {{ endpoints: [\"127.0.0.1:1\"] }}
"
    );
    let s = Stack::start(&policy).await;

    let r = s.get("/missing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "no_route");
    assert_eq!(e["layer"], "warden-sidecar");
    assert_eq!(e["service"], "orders");
    assert_eq!(e["request_id"].as_str(), r.header("x-request-id"));
    assert_eq!(r.header("x-warden-denied-by"), Some("no-route"));
    assert!(r.header("proxy-status").unwrap().starts_with("warden-sidecar; error=destination_not_found"));

    let r = s.get("/slow/2000").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    assert_eq!(r.json()["error"]["route"], "slow");
    assert!(r.header("proxy-status").unwrap().contains("error=http_response_timeout"));

    let r = s.get("/gone").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    assert!(r.header("proxy-status").unwrap().contains("error=connection_refused"));
    assert_eq!(r.header("x-warden-denied-by"), Some("upstream:nowhere"));

    let r = s.get("/orders/%zz").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "bad_path");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_and_large_bodies_stream_both_ways() {
    let s = Stack::start(BASIC).await;

    let h2 = Client::h2();
    let r = h2.get(&s.sidecar.url("/orders/h2")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.app.last().path_and_query, "/orders/h2");
    assert_eq!(s.app.last().headers.get("host").unwrap(), &s.sidecar.proxy.to_string());

    let r = s.get("/stream/512").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 512 * 1024);

    let body = Bytes::from(vec![7u8; 3 << 20]);
    for client in [&s.client, &h2] {
        let r = client.send(Method::POST, &s.sidecar.url("/orders/upload"), &[], body.clone()).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["body_len"], 3 << 20);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_head_passes_up_to_64_kib_and_a_larger_one_is_a_502() {
    let s = Stack::start("service: orders\nroutes:\n  - name: all\n    match: { path_prefix: / }\n").await;
    let r = s.get("/big-head/60").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-filler-59").map(str::len), Some(1000));
    let r = s.get("/big-head/80").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_error");
    // The connection that failed is not reused: the next request is fine.
    assert_eq!(s.get("/big-head/1").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_sees_the_host_that_was_routed_on() {
    let s = Stack::start(REWRITES).await;
    // Absolute-form: the URI's host decides the route and replaces a conflicting Host.
    let raw = s
        .sidecar
        .raw(b"GET http://eu.example.com/api/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
        .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let seen = s.app.last();
    assert_eq!(seen.path_and_query, "/api/x");
    assert_eq!(seen.headers.get("host").unwrap(), "eu.example.com");
}
