//! The invariant, tested differentially: the proxy and the app never disagree on which
//! route a request took, and nobody but Warden speaks for Warden. Hostile spellings of
//! paths, hosts, methods and header names (the harness's generator) go through a real
//! sidecar to a real lenient app in another language (Python's wsgiref, which decodes
//! `%2F` and maps `x_warden_client` onto `X-Warden-Client`). For every request the app
//! answers, the route it takes on what it received must be the route Warden took (each
//! route tells the app its name in `x-test-route`), and no header variable it sees may
//! carry a client's forgery. Guarded routes admit no one from 127.0.0.1, so a spelling that
//! slipped past one would show up as the app routing to it; `login` and `login-other`
//! differ only by method, so a method the two read differently shows up too.

// A test: failing loudly at the spot is what it is for (the helper below is not a #[test]).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use warden_e2e::hostile::{self, Rng};
use warden_e2e::{Client, LenientApp, Sidecar, eventually, write_policy};

const POLICY: &str = "service: orders
defaults: { escaped_slashes: ESCAPED, case_insensitive_paths: FOLD }
routes:
  - name: admin-host
    match: { host: admin.example.com }
    access: { allow: [10.0.0.0/8] }
  - name: internal
    match: { path_prefix: /internal/admin }
    access: { allow: [10.0.0.0/8] }
  - name: login
    match: { path: /auth/login, methods: [POST] }
    request_headers: { set: { x-test-route: login } }
  - name: login-other
    match: { path: /auth/login }
    request_headers: { set: { x-test-route: login-other } }
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
    request_headers: { set: { x-test-route: files } }
  - name: api
    match: { host: api.example.com, path_prefix: /v1/orders }
    request_headers: { set: { x-test-route: api } }
  - name: rest
    request_headers: { set: { x-test-route: rest } }
";

/// The same routes, for the app.
fn app_routes() -> serde_json::Value {
    json!([
        {"name": "admin-host", "host": "admin.example.com"},
        {"name": "internal", "prefix": "/internal/admin"},
        {"name": "login", "exact": "/auth/login", "methods": ["POST"]},
        {"name": "login-other", "exact": "/auth/login"},
        {"name": "files", "prefix": "/files"},
        {"name": "api", "host": "api.example.com", "prefix": "/v1/orders"},
        {"name": "rest"},
    ])
}

/// What the requests are spelled from: (method, path, host).
const BASES: &[(&str, &str, &str)] = &[
    ("GET", "/internal/admin/users", "orders.example.com"),
    ("POST", "/auth/login", "orders.example.com"),
    ("GET", "/auth/login", "orders.example.com"),
    ("GET", "/files/a/b.txt", "orders.example.com"),
    ("GET", "/v1/orders/7", "api.example.com"),
    ("GET", "/v1/orders", "admin.example.com"),
    ("DELETE", "/internal/admin", "api.example.com"),
    ("GET", "/public/page", "orders.example.com"),
];

async fn differential(seed: u64, escaped: &str, fold: bool, requests: usize) {
    let dir = tempfile::tempdir().unwrap();
    let policy = POLICY.replace("ESCAPED", escaped).replace("FOLD", &fold.to_string());
    let file = write_policy(dir.path(), "p.yaml", &policy);
    let app = LenientApp::start(&app_routes(), fold).await;
    let sidecar = Sidecar::start(&["--policy-file", &file, "--upstream", &app.addr.to_string()]).await;
    let client = Client::default();
    eventually("the policy serves", Duration::from_secs(10), || async {
        client.get(&sidecar.url("/public")).await.is_ok_and(|r| r.status == 200)
    })
    .await;
    // The warm-up's 200 came from the app, whose log line may trail its answer: counted
    // before the requests under test, not among them.
    eventually("the app logged the warm-up", Duration::from_secs(20), || async { !app.answered().is_empty() }).await;
    let warmup = app.answered().len();

    let mut rng = Rng::new(seed);
    let (mut forwarded, mut refused, mut disagreements) = (0, 0, Vec::new());
    // Forwarded, but the app answered too late (a loaded machine): Warden's 502/504.
    let mut upstream_failed = 0;
    for _ in 0..requests {
        let (method, path, host) = *rng.pick(BASES);
        let req = hostile::spelling(&mut rng, method, path, host);
        let raw = sidecar.raw(&req.to_bytes()).await;
        let status = hostile::status(&raw);
        if status == 200 {
            forwarded += 1;
            let seen: serde_json::Value = serde_json::from_str(hostile::body(&raw)).unwrap_or_default();
            let agree = seen["app_route"].is_string() && seen["app_route"] == seen["warden_route"];
            let forged = seen["forged"].as_array().is_none_or(|f| !f.is_empty());
            if !agree || forged {
                disagreements.push(format!("{req:?}\n  -> app saw {seen}"));
            }
        } else {
            refused += 1;
            upstream_failed += usize::from(matches!(status, 502 | 504));
            // Whatever was refused, Warden refused it and said so: the app never answers
            // anything but 200 here.
            if hostile::header(&raw, "x-warden-denied-by").is_none() && status != 400 {
                disagreements.push(format!("{req:?}\n  -> {status} without x-warden-denied-by:\n{raw}"));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "seed {seed}, escaped_slashes {escaped}, case_insensitive {fold}: {} of {requests} requests disagree; first ones:\n{}",
        disagreements.len(),
        disagreements.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    // Not vacuous: plenty of both outcomes.
    assert!(forwarded >= requests / 10 && refused >= requests / 10, "forwarded {forwarded}, refused {refused}");
    // Exactly the forwarded requests reached the app: none that Warden refused. (Its log
    // lines trail its answers; on a loaded machine by seconds.)
    eventually("the app's log catches up", Duration::from_secs(20), || async {
        app.answered().len() - warmup >= forwarded
    })
    .await;
    let reached = app.answered().len() - warmup;
    assert!(
        reached <= forwarded + upstream_failed,
        "the app answered {reached} requests; Warden forwarded {forwarded} ({upstream_failed} more timed out upstream)"
    );
    assert!(sidecar.proc.output().lines().all(|l| !l.contains("panicked")), "{}", sidecar.proc.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_spellings_route_as_the_app_routes_them_escaped_slashes_rejected() {
    differential(1, "reject", false, 400).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_spellings_route_as_the_app_routes_them_escaped_slashes_decoded() {
    differential(2, "decode", false, 400).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_spellings_route_as_a_case_folding_app_routes_them() {
    differential(3, "reject", true, 400).await;
}
