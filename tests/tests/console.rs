//! The console in a real browser (headless Chromium through Selenium,
//! `tools/console_browser.py`) against a running fleet: a control plane with an admin and
//! a read-only token, a sidecar that NACKed a version, refusals of a client whose name is
//! markup. The browser signs in, sees the NACK and the skew, charts live traffic, opens a
//! diff, marks a refusal group (found again in `wardenctl denials --group`), explains one
//! of its requests, rolls back (recorded with the console user as author) and aborts a
//! shadow rollout; the planted markup never runs; a read-only session sees no control that
//! changes anything. Without a session, or without the session's CSRF token, a POST
//! changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use warden_e2e::stack::{MISSING_CA, orders_sidecar};
use warden_e2e::{App, Client, ControlPlane, Proc, eventually, sign, write_policy};

/// A client name that is markup: it would retitle the page or run a script if rendered.
const HOSTILE: &str = "<script>document.title='pwned'</script><img/src=x/onerror=window.__pwned=1>";

fn policy(keys: &str, timeout: &str, extra: &str) -> String {
    format!(
        "service: orders
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    timeout: {timeout}
  - name: api
    match: {{ path_prefix: /api }}
    auth: users
    limits: [per-client]
{extra}auth:
  users:
    type: jwt
    issuers: [https://id.example.com]
    audiences: [orders]
    jwks_file: {keys}/jwks.json
limits:
  per-client: {{ key: client_id, rate: 1/min, burst: 1 }}
"
    )
}

async fn browse(plan: Value) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/console_browser.py")).arg(plan.to_string());
    let browser = Proc::spawn_command("console_browser.py", cmd);
    let seen = browser
        .wait_for_json(
            "what the browser saw (apt-get install chromium chromium-driver; pip install selenium)",
            Duration::from_secs(120),
            Value::is_object,
        )
        .await;
    assert!(seen.get("error").is_none(), "the browser's walk failed: {seen:#}");
    seen
}

/// The session cookie (`name=value`) and a CSRF token of a fresh sign-in.
async fn sign_in(client: &Client, cp: &ControlPlane, token: &str) -> (String, String) {
    let form = format!("name=Eve&token={token}");
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let resp = client.send(Method::POST, &cp.http_url("/login"), &headers, Bytes::from(form)).await.unwrap();
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text());
    let set = resp.header("set-cookie").unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = client.send(Method::GET, &cp.http_url("/"), &[("cookie", &cookie)], Bytes::new()).await.unwrap();
    let html = page.text();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_walks_the_console_and_nothing_it_is_shown_can_act_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().to_string_lossy().into_owned();
    sign(&["keys", &keys]);
    let admin = write_policy(dir.path(), "admin.token", "admin-secret\n");
    let read = write_policy(dir.path(), "read.token", "read-secret\n");
    let cp = ControlPlane::start_with(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--admin-token-file", &admin, "--console-read-token-file", &read],
    )
    .await;
    let ctl = async |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", "admin-secret"]);
        cp.ctl(&all).await
    };
    let apply = async |name: &str, yaml: &str, extra: &[&str]| {
        let file = write_policy(dir.path(), name, yaml);
        let mut args = vec!["apply", "-f", file.as_str()];
        args.extend_from_slice(extra);
        let out = ctl(&args).await;
        assert_eq!(out.code, 0, "{out:?}");
    };
    apply("v1.yaml", &policy(&keys, "3s", ""), &[]).await;
    let app = App::start("orders-app").await;
    let sidecar = orders_sidecar(&cp.url(), app.addr, &dir.path().join("state"), "orders-1", &[]).await;
    apply("v2.yaml", &policy(&keys, "5s", ""), &[]).await;
    let acked = async |v: u64| {
        let out = ctl(&["status", "-o", "json"]).await;
        let status: Value = serde_json::from_str(&out.stdout).unwrap();
        status["sidecars"][0]["acked_version"] == v
    };
    eventually("the sidecar runs v2", Duration::from_secs(10), || acked(2)).await;

    // The hostile client passes auth, then its limit refuses it; the requests keep going,
    // so the service page has traffic to chart.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": HOSTILE, "iss": "https://id.example.com", "aud": "orders", "exp": now + 600});
    let token = sign(&["jwt", &keys, "rsa1", "RS256", &claims.to_string()]);
    let client = Client::default();
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        client.send(Method::GET, &sidecar.url("/api/x"), &[("authorization", &bearer)], Bytes::new()).await.unwrap();
    }
    eventually("the refusals reach the deny log", Duration::from_secs(10), || async {
        let out = ctl(&["denials", "--group", "-o", "json"]).await;
        out.stdout.contains("per-client")
    })
    .await;
    // v3 is valid for the control plane, but its upstream's CA file is not on the sidecar's host.
    apply("v3.yaml", &policy(&keys, "5s", MISSING_CA), &[]).await;
    eventually("the sidecar NACKs v3", Duration::from_secs(10), || async {
        ctl(&["status"]).await.stdout.contains("billing-ca.pem")
    })
    .await;
    let traffic = tokio::spawn({
        let (client, url) = (client.clone(), sidecar.url("/orders/1"));
        async move {
            loop {
                let _ = client.get(&url).await;
            }
        }
    });

    let screenshots = std::env::var("WARDEN_CONSOLE_SCREENSHOTS").unwrap_or_default();
    let plan = |phase: &str| {
        json!({"url": cp.http_url(""), "admin": "admin-secret", "read": "read-secret", "phase": phase,
               "hostile": HOSTILE, "screenshots": screenshots})
    };
    let seen = browse(plan("main")).await;
    assert_eq!(seen["signed_out_redirected"], true, "{seen:#}");
    assert_eq!(seen["wrong_token_refused"], true, "{seen:#}");
    assert_eq!(seen["who"], "Ada");
    let nacks = seen["nack_cells"].as_array().unwrap();
    assert!(nacks.len() == 1 && nacks[0].as_str().unwrap().contains("NACK v3"), "{seen:#}");
    assert!(nacks[0].as_str().unwrap().contains("billing-ca.pem"), "{seen:#}");
    assert_eq!(seen["skewed_rows"], 1, "the sidecar on v2 while v3 is live is version skew");
    assert!(seen["chart_routes"].as_array().unwrap().contains(&json!("orders")), "{seen:#}");
    assert_eq!(seen["routes_table"], json!(["orders", "api", "billing"]));
    assert_eq!(seen["diff_removed"], json!(["-     timeout: 3s"]), "{seen:#}");
    assert_eq!(seen["diff_added"], json!(["+     timeout: 5s"]), "{seen:#}");
    assert!(seen["groups"].as_u64().unwrap() >= 1, "{seen:#}");
    assert_eq!(seen["new_groups"], seen["groups"], "a first visit: every group is new");
    assert_eq!(seen["mark_note"], "partner load test, not abuse");
    assert_eq!(seen["mark_owner"], "team-api");
    assert_eq!(seen["explain_prefilled_path"], "/api/x");
    let verdict = seen["explain_verdict"].as_str().unwrap();
    assert!(verdict.starts_with("DENY 401"), "no credential was given: {verdict}");
    assert_eq!(seen["explain_steps"][0], "policy");
    assert_eq!(seen["suggestion"], "The change: double limit 'per-client': 1/min to 2/min", "{seen:#}");
    let added = seen["suggestion_added"].as_array().unwrap();
    assert!(added.iter().any(|l| l.as_str().unwrap().contains("rate: 2/min")), "{seen:#}");
    assert!(seen["suggestion_impact"].as_str().unwrap().contains("newly allowed"), "{seen:#}");
    assert!(seen["rollback_preview_lines"].as_u64().unwrap() >= 2, "{seen:#}");
    assert_eq!(seen["live_after_rollback"], "v4 live");
    assert_eq!(seen["hostile_ran_in_queue"], false, "the planted markup ran");
    assert_eq!(seen["hostile_ran"], false, "the planted markup ran");

    // The mark is the CLI's too, with the console user as its author.
    let group = seen["group"].as_str().unwrap().to_owned();
    let groups: Value = serde_json::from_str(&ctl(&["denials", "--group", "-o", "json"]).await.stdout).unwrap();
    let marked = groups["groups"].as_array().unwrap().iter().find(|g| g["group"] == group.as_str()).unwrap().clone();
    assert_eq!(marked["client_id"], HOSTILE);
    assert_eq!(marked["mark"]["mark"], "false-positive");
    assert_eq!(marked["mark"]["author"], "Ada (console)");
    let table = ctl(&["denials", "--group"]).await.stdout;
    assert!(table.lines().any(|l| l.starts_with(&group) && l.contains("false-positive")), "{table}");
    // The rollback is a version like any other, by its author.
    let history: Value = serde_json::from_str(&ctl(&["history", "orders", "-o", "json"]).await.stdout).unwrap();
    let v4 = &history["versions"][0];
    assert_eq!((v4["version"].as_u64(), v4["author"].as_str()), (Some(4), Some("Ada (console)")), "{history:#}");
    assert_eq!(v4["message"], "back to v1 from the console");
    eventually("the sidecar runs v4", Duration::from_secs(10), || acked(4)).await;

    // The CLI sets a mark the console shows; a POST without the session's CSRF token, or
    // without a session, changes nothing.
    let out = ctl(&["denials", "mark", &group, "--as", "expected", "--note", "per-client is 1/min on purpose"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (cookie, csrf) = sign_in(&client, &cp, "admin-secret").await;
    let form = |body: String| Bytes::from(body);
    let post = async |path: &str, cookie: Option<&str>, body: String| {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        client.send(Method::POST, &cp.http_url(path), &headers, form(body)).await.unwrap()
    };
    let mark = |csrf: &str| format!("csrf={csrf}&group={group}&mark=false-positive&note=forged&owner=x");
    assert_eq!(post("/denials/mark", Some(&cookie), mark("")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(post("/denials/mark", Some(&cookie), mark("0123456789abcdef")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(post("/denials/mark", None, mark(&csrf)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post("/services/orders/rollback", None, "to=2".into()).await.status, StatusCode::UNAUTHORIZED);
    let (read_cookie, read_csrf) = sign_in(&client, &cp, "read-secret").await;
    assert_eq!(post("/denials/mark", Some(&read_cookie), mark(&read_csrf)).await.status, StatusCode::FORBIDDEN);
    let groups: Value = serde_json::from_str(&ctl(&["denials", "--group", "-o", "json"]).await.stdout).unwrap();
    let still = groups["groups"].as_array().unwrap().iter().find(|g| g["group"] == group.as_str()).unwrap().clone();
    assert_eq!(still["mark"]["mark"], "expected", "the CLI's mark stands: {still:#}");
    let history = ctl(&["history", "orders"]).await.stdout;
    assert!(!history.contains("v5"), "no forged rollback: {history}");
    // With the session's token, it does change (the same request, done right).
    let done = post("/denials/mark", Some(&cookie), mark(&csrf)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let page = client.send(Method::GET, &cp.http_url("/denials"), &[("cookie", &cookie)], Bytes::new()).await.unwrap();
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!page.text().contains("<script>document"), "the client name is escaped in the HTML");

    // A shadow rollout: the browser sees it and aborts it; a read-only session sees no control.
    apply("v5.yaml", &policy(&keys, "4s", ""), &["--shadow"]).await;
    let seen = browse(plan("rollout")).await;
    assert!(seen["rollout_heading"].as_str().unwrap().contains("v5 in shadow against v4"), "{seen:#}");
    assert_eq!(seen["buttons"], json!(["Promote v5", "Abort"]));
    let ended = seen["ended"][0].as_str().unwrap();
    assert!(ended.contains("aborted") && ended.contains("Ada (console)") && ended.contains("seen enough"), "{ended}");
    assert_eq!(seen["read_who"], "Rita (read-only)");
    assert_eq!(seen["read_only_controls"], 0, "{seen:#}");
    assert_eq!(seen["read_only_rollback_refused"], true, "{seen:#}");
    traffic.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_can_be_turned_off_and_probes_stay() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start_with(&dir.path().join("data"), "127.0.0.1:0", &["--console", "off"]).await;
    let client = Client::default();
    assert_eq!(client.get(&cp.http_url("/")).await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(client.get(&cp.http_url("/healthz")).await.unwrap().status, StatusCode::OK);
    assert_eq!(client.get(&cp.http_url("/metrics")).await.unwrap().status, StatusCode::OK);
}

/// One request over TLS to `addr`, trusting `cert` for `localhost`.
async fn https(
    addr: std::net::SocketAddr,
    cert: &warden_e2e::tls::Cert,
    req: http::Request<http_body_util::Full<Bytes>>,
) -> http::Response<Bytes> {
    use http_body_util::BodyExt;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_console_and_the_probes_are_https_and_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let c = warden_e2e::tls::cert(&["localhost"]);
    let (cert, key) = warden_e2e::tls::install(dir.path(), "cp", &c);
    let admin = write_policy(dir.path(), "admin.token", "admin-secret\n");
    let cp = ControlPlane::start_with(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--tls-cert", &cert, "--tls-key", &key, "--admin-token-file", &admin],
    )
    .await;
    let request = |method: Method, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let healthz = https(cp.http, &c, request(Method::GET, "/healthz", "")).await;
    assert_eq!(healthz.status(), StatusCode::OK);
    let signed_in = https(cp.http, &c, request(Method::POST, "/login", "name=Ada&token=admin-secret")).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // Plain HTTP to the TLS port gets nothing.
    assert!(Client::default().get(&cp.http_url("/healthz")).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_the_console_answers_only_at_an_address_or_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let client = Client::default();
    let at = async |host: &str| {
        client.send(Method::GET, &cp.http_url("/"), &[("host", host)], Bytes::new()).await.unwrap().status
    };
    assert_eq!(at(&cp.http.to_string()).await, StatusCode::OK);
    assert_eq!(at("localhost:7071").await, StatusCode::OK);
    // A name that resolves here (DNS rebinding) is not this console's.
    assert_eq!(at("rebind.attacker.example:7071").await, StatusCode::FORBIDDEN);
    // The probes answer whatever the name.
    let probe = client.send(Method::GET, &cp.http_url("/healthz"), &[("host", "x.example")], Bytes::new()).await;
    assert_eq!(probe.unwrap().status, StatusCode::OK);
}
