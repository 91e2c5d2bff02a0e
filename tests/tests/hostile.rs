//! Hostile HTTP against a real sidecar. Every request below tries to reach a guarded
//! route (which only 10.0.0.0/8 may use; the tests connect from 127.0.0.1) by another
//! spelling of its path, host or method, to forge a header only Warden may set, to pass
//! for the proxy itself, to smuggle a second request to the app, or to crash the proxy.
//! None may succeed: each is routed to the guarded route or refused with its reason, the
//! app sees nothing it should not, and a plain request still works afterwards.

use http::StatusCode;
use warden_e2e::hostile;
use warden_e2e::{Client, Stack};

const POLICY: &str = "service: orders
routes:
  - name: admin
    match: { path_prefix: /admin }
    access: { allow: [10.0.0.0/8] }
  - name: public
    match: { path_prefix: / }
";

fn status(raw: &str) -> u16 {
    raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_neither_reach_admin_nor_smuggle_nor_crash() {
    let s = Stack::start(POLICY).await;
    let h = "Host: x\r\n";
    // (what it tries, raw request, statuses that are acceptable)
    let cases: Vec<(&str, String, &[u16])> = vec![
        ("plain admin", format!("GET /admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("dot-dot escaped", format!("GET /public/%2e%2e/admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("dot-dot upper", format!("GET /public/%2E%2E/admin/x HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("double slash", format!("GET //admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("path parameter", format!("GET /admin;jsessionid=1 HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("dot-dot parameter", format!("GET /public/..;/admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[403]),
        ("escaped slash", format!("GET /admin%2Fusers HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("escaped slash dot-dot", format!("GET /public/..%2Fadmin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("escaped slash dot-dot 2", format!("GET /x%2f..%2fadmin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("double-escaped slash", format!("GET /public/..%252Fadmin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("escaped backslash", format!("GET /public%5C..%5Cadmin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("two Host headers", "GET /public HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n".into(), &[400]),
        ("overlong utf-8 dots", format!("GET /%C0%AE%C0%AE/admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("escaped NUL", format!("GET /admin%00.png HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("backslash", format!("GET /public\\..\\admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"), &[400]),
        ("absolute form", "GET http://x/admin HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n".into(), &[403]),
        (
            "CL.TE smuggling",
            format!(
                "POST /public HTTP/1.1\r\n{h}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n{h}Connection: close\r\n\r\n"
            ),
            &[400, 200, 403],
        ),
        (
            "TE.CL smuggling",
            format!(
                "POST /public HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n20\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"
            ),
            &[400, 200],
        ),
        (
            "broken chunk framing",
            format!(
                "POST /public HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nzz\r\nGET /admin HTTP/1.1\r\n0\r\n\r\n"
            ),
            &[400],
        ),
        (
            "duplicate content-length",
            format!(
                "POST /public HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /admin HTTP/1.1\r\n\r\n"
            ),
            &[400],
        ),
        (
            "obfuscated TE",
            format!("POST /public HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            &[400, 501],
        ),
        ("obs-fold", format!("GET /public HTTP/1.1\r\n{h}X-A: a\r\n b\r\nConnection: close\r\n\r\n"), &[400]),
        ("NUL in header", format!("GET /public HTTP/1.1\r\n{h}X-A: a\0b\r\nConnection: close\r\n\r\n"), &[400]),
        ("bare CR in header", format!("GET /public HTTP/1.1\r\n{h}X-A: a\rb\r\nConnection: close\r\n\r\n"), &[400]),
        (
            "space before colon",
            format!("GET /public HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
            &[400],
        ),
        ("garbage request line", "GET /admin HTTP/9.9\r\n\r\n".into(), &[400, 505]),
        ("no request target", "GET  HTTP/1.1\r\n\r\n".into(), &[400]),
    ];
    for (what, raw, ok) in &cases {
        let before = s.app.requests().len();
        let resp = s.sidecar.raw(raw.as_bytes()).await;
        let code = status(&resp);
        assert!(ok.contains(&code), "{what}: got {code}, wanted one of {ok:?}\n{resp}");
        // One request in, at most one request out: nothing was smuggled behind it.
        let reached = s.app.requests().len() - before;
        assert!(reached <= 1, "{what}: the app received {reached} requests");
        assert_eq!(reached == 1, code == 200, "{what}: the app is reached exactly when the client gets 200");
        let admin_seen: Vec<String> = s
            .app
            .requests()
            .iter()
            .map(|r| r.path_and_query.clone())
            .filter(|p| p.to_ascii_lowercase().contains("admin"))
            .collect();
        assert!(admin_seen.is_empty(), "{what}: the app saw {admin_seen:?}");
        // Whatever reached the app is one whole, well-framed request: no smuggled second one.
        for seen in s.app.requests() {
            assert!(!seen.path_and_query.contains(' '), "{what}: {seen:?}");
        }
    }
    assert_eq!(s.get("/public/after").await.status, StatusCode::OK, "the sidecar still serves");

    // Rewrite and forwarding headers an app might honour are not accepted from clients.
    let r = s
        .get_with(
            "/public/page",
            &[("x-original-url", "/admin"), ("forwarded", "for=10.0.0.1;proto=https"), ("x-real-ip", "10.0.0.1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = s.app.last();
    for name in ["x-original-url", "forwarded", "x-real-ip"] {
        assert!(seen.headers.get(name).is_none(), "{name} reached the app");
    }
    assert!(s.sidecar.proc.output().lines().all(|l| !l.contains("panicked")), "{}", s.sidecar.proc.output());
}

const BYPASSES: &str = "service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
routes:
  - name: admin-host
    match: { host: admin.example.com }
    access: { allow: [10.0.0.0/8] }
  - name: internal
    match: { path_prefix: /internal/admin }
    access: { allow: [10.0.0.0/8] }
  - name: login
    match: { path: /auth/login, methods: [POST] }
    access: { allow: [10.0.0.0/8] }
  - name: proxy-only
    match: { path_prefix: /ops }
    access: { allow: [127.0.0.1/32] }
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
  - name: public
    match: { path_prefix: / }
";

/// Each class of bypass the red team found, in spellings of its own: every one is refused
/// with its reason, or routed to the guarded route (403 from 127.0.0.1), never to `public`.
#[tokio::test(flavor = "multi_thread")]
async fn spellings_of_a_guarded_request_reach_the_guarded_route_or_a_reasoned_400() {
    let s = Stack::start(BYPASSES).await;
    let req = |method: &str, target: &str, host: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    let h = "orders.example.com";
    // (class, raw request, status, reason code)
    let cases: Vec<(&str, String, u16, &str)> = vec![
        // 1. escaped slashes: routed as decoded, then refused by the route's setting
        ("escaped slash", req("GET", "/internal%2Fadmin/users", h), 400, "bad_path"),
        ("escaped slash, lower hex", req("GET", "/internal%2fadmin", h), 400, "bad_path"),
        ("escaped slash, exact path", req("POST", "/auth%2Flogin", h), 400, "bad_path"),
        ("escaped slash twice", req("GET", "/internal%2F%2Fadmin", h), 400, "bad_path"),
        ("escaped slash elsewhere", req("GET", "/docs%2Fa", h), 400, "bad_path"),
        // 3. method case
        ("lower-case method", req("post", "/auth/login", h), 400, "bad_method"),
        ("title-case method", req("Post", "/auth/login", h), 400, "bad_method"),
        ("mixed-case method", req("pOsT", "/auth/login", h), 400, "bad_method"),
        ("lower-case GET", req("get", "/public", h), 400, "bad_method"),
        // 4. path spellings
        ("trailing slash on an exact path", req("POST", "/auth/login/", h), 403, "address_denied"),
        ("trailing dot", req("POST", "/auth/login.", h), 403, "address_denied"),
        ("trailing dot mid-path", req("GET", "/internal./admin", h), 403, "address_denied"),
        ("escaped trailing dot", req("GET", "/internal/admin%2E", h), 403, "address_denied"),
        ("dots only", req("GET", "/internal/.../admin", h), 400, "bad_path"),
        // 5. host spellings
        ("host with the root's dot", req("GET", "/", "admin.example.com."), 403, "address_denied"),
        ("host in capitals", req("GET", "/", "ADMIN.Example.COM"), 403, "address_denied"),
        ("host dot and port", req("GET", "/", "admin.example.com.:8080"), 403, "address_denied"),
        ("host with userinfo", req("GET", "/", "x@admin.example.com"), 400, "bad_host"),
        ("host with a path", req("GET", "/", "admin.example.com/"), 400, "bad_host"),
        ("host list", req("GET", "/", "a, admin.example.com"), 400, "bad_host"),
        ("host, two ports", req("GET", "/", "admin.example.com:80:81"), 400, "bad_host"),
        ("host, empty port", req("GET", "/", "admin.example.com:"), 400, "bad_host"),
        ("host, double dot", req("GET", "/", "admin.example.com.."), 400, "bad_host"),
        ("absolute form with userinfo", req("GET", "http://x@admin.example.com/", h), 400, "bad_host"),
        ("absolute form with the root's dot", req("GET", "http://admin.example.com./", h), 403, "address_denied"),
    ];
    for (what, raw, status, code) in &cases {
        let before = s.app.requests().len();
        let resp = s.sidecar.raw(raw.as_bytes()).await;
        assert_eq!(hostile::status(&resp), *status, "{what}:\n{resp}");
        let body: serde_json::Value = serde_json::from_str(hostile::body(&resp)).unwrap_or_default();
        assert_eq!(body["error"]["code"], *code, "{what}:\n{resp}");
        assert_eq!(s.app.requests().len(), before, "{what}: reached the app");
    }

    // A route that decodes escaped slashes forwards the decoded path.
    let resp = s.sidecar.raw(req("GET", "/files%2Fa%2Fb.txt", h).as_bytes()).await;
    assert_eq!(hostile::status(&resp), 200, "{resp}");
    assert_eq!(s.app.last().path_and_query, "/files/a/b.txt");

    // The app receives the canonical host, however it was spelled.
    for spelled in ["Orders.Example.COM.", "orders.example.com."] {
        let resp = s.sidecar.raw(req("GET", "/public", spelled).as_bytes()).await;
        assert_eq!(hostile::status(&resp), 200, "{resp}");
        assert_eq!(s.app.last().headers.get("host").unwrap(), "orders.example.com", "{spelled}");
    }
    let resp = s.sidecar.raw(req("GET", "/public", "Orders.Example.com.:8080").as_bytes()).await;
    assert_eq!(hostile::status(&resp), 200, "{resp}");
    assert_eq!(s.app.last().headers.get("host").unwrap(), "orders.example.com:8080");

    // HTTP/2: `:authority` spelled with the root's dot, or carrying userinfo.
    let h2 = |uri: &str| http::Request::get(uri).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap();
    let r = Client::h2_to(s.sidecar.proxy, h2("http://ADMIN.example.com./")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (403, Some("address_denied")));
    let r = Client::h2_to(s.sidecar.proxy, h2("http://x@admin.example.com/")).await.unwrap();
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("bad_host")));
    let r = Client::h2_to(s.sidecar.proxy, h2("http://Orders.example.com./public")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.app.last().headers.get("host").unwrap(), "orders.example.com");
}

/// Identity and forwarding headers in every spelling a CGI-style app maps onto the real
/// ones never reach the app.
#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_a_reserved_header_reaches_the_app() {
    let s = Stack::start(POLICY).await;
    let mut raw = String::from("GET /public HTTP/1.1\r\nHost: orders.example.com\r\n");
    // (`x-test-route` is the differential test's own header: an ordinary one here.)
    for name in hostile::FORGED_NAMES.iter().filter(|n| **n != "x-test-route") {
        raw += &format!("{name}: forged\r\n");
    }
    raw += "x_custom_header: forged\r\nx.dotted: forged\r\nConnection: close\r\n\r\n";
    let resp = s.sidecar.raw(raw.as_bytes()).await;
    assert_eq!(hostile::status(&resp), 200, "{resp}");
    let seen = s.app.last();
    let forged: Vec<_> =
        seen.headers.iter().filter(|(_, v)| v.as_bytes() == b"forged").map(|(k, _)| k.to_string()).collect();
    assert!(forged.is_empty(), "reached the app: {forged:?}");
    for name in seen.headers.keys() {
        assert!(
            name.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name} reached the app"
        );
    }
}

/// A trusted proxy's nearest `x-forwarded-for` hop that is not an address fails closed;
/// before, the client became the proxy itself, which a proxy-only allow list admits.
#[tokio::test(flavor = "multi_thread")]
async fn an_unparseable_forwarded_hop_is_refused_not_taken_for_the_proxy() {
    let s = Stack::start(BYPASSES).await;
    for hop in ["unknown", "001.002.003.004", "[::1]", "1.2.3.4, _hidden", "localhost", "", "1.2.3.4:http"] {
        let r = s.get_with("/ops/panel", &[("x-forwarded-for", hop)]).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["error"]["code"].as_str()),
            (400, Some("bad_forwarded_for")),
            "{hop:?}"
        );
    }
    let r = s.get_with("/ops/panel", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a real client is not the proxy");
    let r = s.get_with("/ops/panel", &[("x-forwarded-for", "junk, 203.0.113.9")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "what the client wrote left of its own hop is never read");
}

/// The client's own request id is kept only when it is plain, and the deny record says
/// whose it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_request_id_is_kept_only_when_plain_and_marked_as_the_clients() {
    let s = Stack::start(BYPASSES).await;
    let r = s.get_with("/internal/admin", &[("x-request-id", "abc-123.X_9:z")]).await;
    assert_eq!(r.header("x-request-id"), Some("abc-123.X_9:z"));
    for forged in ["<script>", "a\"b", "id with spaces", "a/b", "a\\b", "x".repeat(129).leak()] {
        let r = s.get_with("/internal/admin", &[("x-request-id", forged)]).await;
        let id = r.header("x-request-id").unwrap_or_default().to_owned();
        assert!(id != forged && id.len() == 26, "{forged:?} -> {id}");
    }
    warden_e2e::eventually("the deny records arrive", std::time::Duration::from_secs(10), || async {
        let out = s.cp.ctl(&["denials", "--service", "orders", "-o", "json"]).await.stdout;
        out.contains("abc-123.X_9:z") && out.matches("\"request_id_from_client\": false").count() >= 5
    })
    .await;
    let out = s.cp.ctl(&["denials", "--service", "orders", "-o", "json"]).await.stdout;
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    let theirs = all["denials"].as_array().unwrap().iter().find(|d| d["request_id"] == "abc-123.X_9:z").unwrap();
    assert_eq!(theirs["request_id_from_client"], true, "{theirs}");
}
