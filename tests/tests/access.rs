//! Client IP and access rules through a real sidecar: who the client is behind a trusted
//! proxy, what the app is told, 403s that say which rule refused, and dry run.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use warden_e2e::{Resp, Stack, wardenctl, write_policy};

// The test client connects from 127.0.0.1, so that is the "load balancer" here.
const POLICY: &str = "service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
access: { deny: [203.0.113.0/24] }
routes:
  - name: admin
    match: { path_prefix: /admin }
    access: { allow: [10.0.0.0/8] }
  - name: orders
    match: { path_prefix: /orders }
";

async fn get_from(s: &Stack, path: &str, xff: &str) -> Resp {
    s.get_with(path, &[("x-forwarded-for", xff)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn access_rules_use_the_client_behind_trusted_proxies() {
    let s = Stack::start(POLICY).await;

    let r = get_from(&s, "/orders/1", "6.6.6.6, 198.51.100.7").await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = s.app.last();
    let h = |k: &str| seen.headers.get(k).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("x-forwarded-for"), "6.6.6.6, 198.51.100.7, 127.0.0.1", "a trusted proxy's chain is kept");

    let r = get_from(&s, "/orders/1", "203.0.113.50").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "address_denied");
    assert_eq!(e["rule"], "access.deny");
    assert_eq!(e["layer"], "warden-sidecar");
    assert!(e["message"].as_str().unwrap().contains("203.0.113.50"), "{e}");
    assert_eq!(r.header("x-warden-denied-by"), Some("access.deny"));
    assert_eq!(
        r.header("proxy-status"),
        Some("warden-sidecar; error=http_request_denied; details=\"rule access.deny\"")
    );

    // A client cannot hide behind its own x-forwarded-for: the rightmost untrusted hop counts.
    let r = get_from(&s, "/orders/1", "10.0.0.1, 203.0.113.50").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    assert_eq!(get_from(&s, "/admin/users", "10.1.2.3").await.status, StatusCode::OK);
    let r = get_from(&s, "/admin/users", "198.51.100.7").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["rule"], "routes.admin.access.allow");
    assert_eq!(r.json()["error"]["route"], "admin");

    // explain derives the same client and shows both access steps.
    let file = write_policy(s.dir.path(), "explain.yaml", POLICY);
    let out = wardenctl(
        "http://127.0.0.1:1",
        &[
            "explain",
            "-f",
            &file,
            "GET",
            "/admin/users",
            "--client-ip",
            "127.0.0.1",
            "-H",
            "x-forwarded-for: 198.51.100.7",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    for want in [
        "198.51.100.7 (peer 127.0.0.1 is a trusted proxy; from x-forwarded-for)",
        "198.51.100.7 allowed by access",
        "198.51.100.7 refused by routes.admin.access.allow",
        "DENY 403 address_denied",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?} in\n{}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_logs_what_it_would_deny_and_serves() {
    let s = Stack::start(&POLICY.replace("service: orders\n", "service: orders\nmode: dry_run\n")).await;
    let r = get_from(&s, "/admin/users", "203.0.113.50").await;
    assert_eq!(r.status, StatusCode::OK, "dry run never denies");
    let line = s
        .sidecar
        .proc
        .wait_for_json("would-deny access log line", Duration::from_secs(5), |v| v["decision"] == "would_deny")
        .await;
    assert_eq!(
        (line["rule"].as_str(), line["client_ip"].as_str()),
        (Some("access.deny"), Some("203.0.113.50")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trusted_proxies_a_clients_forwarding_headers_are_replaced() {
    let s = Stack::start("service: orders\naccess: { deny: [203.0.113.0/24] }\nroutes:\n  - name: all\n").await;
    let r = s
        .client
        .send(
            Method::GET,
            &s.sidecar.url("/x"),
            &[("x-forwarded-for", "203.0.113.50"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.test")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "a forged x-forwarded-for neither blocks nor impersonates");
    let seen = s.app.last();
    let h = |k: &str| seen.headers.get(k).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("x-forwarded-for"), "127.0.0.1");
    assert_eq!(h("x-forwarded-proto"), "http");
    assert_eq!(h("x-forwarded-host"), s.sidecar.proxy.to_string());
}
