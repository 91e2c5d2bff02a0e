//! `wardenctl` as a user meets it: validation errors with file, line, column and field;
//! exit codes; apply with diff and dry run; get, diff, history; explain.

use warden_e2e::stack::BASIC;
use warden_e2e::{ControlPlane, Stack, wardenctl, write_policy};

const BAD: &str = "service: orders
routes:
  - name: a
    match: { path_prefix: /api, paht: /x }
---
service: billing
routes:
  - name: all
    match: { path_prefix: / }
  - name: api
    match: { path_prefix: /api }
    upstream: nope
";

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "bad.yaml", BAD);
    let out = wardenctl("http://127.0.0.1:1", &["validate", "-f", &file]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(&format!("{file}:4:33: routes[0].match: unknown field `paht`")), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{file}:12:15: routes[1].upstream: upstream 'nope' is not defined")),
        "{}",
        out.stderr
    );

    let file = write_policy(
        dir.path(),
        "shadow.yaml",
        &BAD.split("---\n").nth(1).unwrap().replace("    upstream: nope\n", ""),
    );
    let out = wardenctl("http://127.0.0.1:1", &["validate", "-f", &file]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("route 'api' is shadowed by the earlier route 'all'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("{file}:5:5: routes[1]")), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "p.yaml", BASIC);
    // Nothing listens on port 1: cannot reach the control plane.
    assert_eq!(wardenctl("http://127.0.0.1:1", &["apply", "-f", &file]).await.code, 3);
    assert_eq!(wardenctl("http://127.0.0.1:1", &["status"]).await.code, 3);
    // Usage errors.
    assert_eq!(wardenctl("http://127.0.0.1:1", &["apply"]).await.code, 2);
    assert_eq!(wardenctl("http://127.0.0.1:1", &["frobnicate"]).await.code, 2);

    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let out = cp.ctl(&["get", "nosuch"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("service 'nosuch' has no policy"), "{}", out.stderr);
    let bad = write_policy(dir.path(), "bad.yaml", BAD);
    assert_eq!(cp.ctl(&["apply", "-f", &bad]).await.code, 1);
    assert_eq!(cp.ctl(&["get"]).await.stdout.lines().count(), 1, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_prints_the_diff_and_dry_run_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let v1 = write_policy(dir.path(), "v1.yaml", BASIC);
    let out = cp.ctl(&["apply", "-f", &v1, "-m", "first"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("+service: orders") && out.stdout.contains("orders: applied as v1"), "{}", out.stdout);

    let changed = BASIC.replace("timeout: 300ms", "timeout: 2s");
    let v2 = write_policy(dir.path(), "v2.yaml", &changed);
    let out = cp.ctl(&["apply", "-f", &v2, "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("-    timeout: 300ms") && out.stdout.contains("+    timeout: 2s"), "{}", out.stdout);
    assert!(out.stdout.contains("would become v2"), "{}", out.stdout);
    assert_eq!(cp.ctl(&["get", "orders"]).await.stdout, BASIC, "dry run stored nothing");

    let out = cp.ctl(&["diff", "-f", &v2]).await;
    assert!(out.stdout.contains("+    timeout: 2s"), "{}", out.stdout);
    let out = cp.ctl(&["apply", "-f", &v1]).await;
    assert!(out.stdout.contains("orders: unchanged (v1)"), "{}", out.stdout);

    let out = cp.ctl(&["apply", "-f", &v2, "-m", "slower slow"]).await;
    assert!(out.stdout.contains("applied as v2"), "{}", out.stdout);
    let out = cp.ctl(&["history", "orders"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[1].starts_with("v2 (current)") && lines[1].contains("slower slow") && lines[1].contains("e2e"),
        "{}",
        out.stdout
    );
    assert!(lines[2].starts_with("v1") && lines[2].contains("first"), "{}", out.stdout);
    assert_eq!(cp.ctl(&["get", "orders", "--version", "1"]).await.stdout, BASIC);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_every_step_from_a_file_or_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(
        dir.path(),
        "p.yaml",
        "service: orders
routes:
  - name: login
    match: { path_prefix: /login, methods: [POST] }
  - name: partner-api
    match: { host: api.example.com, path_prefix: /api/v1 }
    rewrite: { path_prefix: /v2 }
    request_headers: { remove: [cookie] }
    timeout: 5s
",
    );
    let out = wardenctl(
        "http://127.0.0.1:1",
        &[
            "explain",
            "-f",
            &file,
            "GET",
            "http://api.example.com/api/v1//orders/./7",
            "--client-ip",
            "203.0.113.9",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["decision"], "forward");
    let steps = v["steps"].to_string();
    for want in [
        "/api/v1/orders/7  (normalized from /api/v1//orders/./7)",
        "login  no: path differs",
        "partner-api  MATCH",
        "path /api/v1/orders/7 -> /v2/orders/7",
        "remove cookie",
        "app (the sidecar's --upstream), http1, timeout 5s",
        "203.0.113.9",
    ] {
        assert!(steps.contains(want), "missing {want:?} in {steps}");
    }
    // A gRPC caller is told in gRPC's terms, with the same code and rule.
    let grpc = wardenctl(
        "http://127.0.0.1:1",
        &[
            "explain",
            "-f",
            &file,
            "POST",
            "http://api.example.com/api/v1/orders.v1.Orders/Get",
            "-H",
            "content-type: application/grpc",
        ],
    )
    .await;
    assert_eq!(grpc.code, 0, "{grpc:?}");
    assert!(grpc.stdout.contains("DENY gRPC 13 INTERNAL protocol_mismatch (rule upstream:app)"), "{}", grpc.stdout);
    let grpc = wardenctl(
        "http://127.0.0.1:1",
        &[
            "explain",
            "-f",
            &file,
            "POST",
            "http://x/nowhere.v1.Svc/Get",
            "-H",
            "content-type: application/grpc+proto",
            "-o",
            "json",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&grpc.stdout).unwrap();
    assert_eq!(
        (v["status"].as_u64(), v["grpc_status"].as_u64(), v["code"].as_str()),
        (Some(404), Some(12), Some("no_route"))
    );

    let s = Stack::start(BASIC).await;
    let out = s.cp.ctl(&["explain", "--service", "orders", "DELETE", "/nowhere", "-H", "host: x.io"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("control plane, v1"), "{}", out.stdout);
    assert!(out.stdout.contains("DENY 404 no_route"), "{}", out.stdout);
    // The live sidecar agrees.
    assert_eq!(s.get("/nowhere").await.status.as_u16(), 404);
}

/// `explain` runs the sidecar's own reading of a request: for hostile spellings it gives
/// the status the live sidecar gives, and it says when a request misses a route only by
/// the case of its path.
#[tokio::test(flavor = "multi_thread")]
async fn explain_agrees_with_the_sidecar_on_hostile_spellings() {
    const POLICY: &str = "service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
routes:
  - name: internal
    match: { path_prefix: /internal/admin }
    access: { allow: [10.0.0.0/8] }
  - name: login
    match: { path: /login, methods: [POST] }
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
";
    let s = Stack::start(POLICY).await;
    // (method, url, extra header, status)
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("post", "http://x/login", None, 400),
        ("POST", "http://x/login/", None, 200),
        ("GET", "http://x/internal%2Fadmin/users", None, 400),
        ("GET", "http://x/files%2Fa", None, 200),
        ("GET", "http://x./internal./admin", None, 403),
        ("GET", "http://u@x/files/a", None, 400),
        ("GET", "http://x/files/a", Some("x-forwarded-for: unknown"), 400),
        ("GET", "http://x/files/a", Some("x-forwarded-for: 10.1.2.3"), 200),
        ("GET", "http://x/internal/admin", Some("x-forwarded-for: 10.1.2.3"), 200),
    ];
    for (method, url, header, want) in cases {
        let mut args = vec!["explain", "--service", "orders", method, url, "--client-ip", "127.0.0.1", "-o", "json"];
        if let Some(h) = header {
            args.extend(["-H", h]);
        }
        let out = s.cp.ctl(&args).await;
        assert_eq!(out.code, 0, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let explained = v["status"].as_u64().map_or(200, |s| s as u16);
        assert_eq!(explained, *want, "explain {method} {url} {header:?}: {}", out.stdout);
        // The sidecar, sent the same request as raw bytes.
        let target = url.trim_start_matches("http://");
        let (host, path) = target.split_at(target.find('/').unwrap());
        let extra = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        let resp = s.sidecar.raw(raw.as_bytes()).await;
        let status: u16 = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert_eq!(status, *want, "sidecar {method} {url} {header:?}:\n{resp}");
    }
    // Checks that once ran after the decision, in the proxy alone: two Host headers, and a
    // declared body over max_body (explain said FORWARD to both).
    let edge: &[(&[&str], &str, u16, &str)] = &[
        (
            &["GET", "/files/a", "-H", "host: x", "-H", "host: y"],
            "GET /files/a HTTP/1.1\r\nHost: x\r\nHost: y",
            400,
            "duplicate_host",
        ),
        (
            &["POST", "/login", "-H", "host: x", "-H", "content-length: 5000000"],
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000",
            413,
            "body_too_large",
        ),
    ];
    for (args, raw, want, code) in edge {
        let out = s.cp.ctl(&[&["explain", "--service", "orders", "-o", "json"][..], args].concat()).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!((v["status"].as_u64(), v["code"].as_str()), (Some(u64::from(*want)), Some(*code)), "{}", out.stdout);
        let resp = s.sidecar.raw(format!("{raw}\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {want}")), "sidecar {raw:?}:\n{resp}");
        assert!(resp.contains(code), "{resp}");
    }
    let out = s.cp.ctl(&["explain", "--service", "orders", "GET", "http://x/INTERNAL/Admin"]).await;
    assert!(out.stdout.contains("differs only by case"), "{}", out.stdout);
    assert!(out.stdout.contains("DENY 404 no_route"), "{}", out.stdout);
}
