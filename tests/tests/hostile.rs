//! Hostile HTTP against a real sidecar. Every request below tries to reach `/admin`
//! (which only 10.0.0.0/8 may use; the tests connect from 127.0.0.1), to smuggle a second
//! request to the app, or to crash the proxy. None may succeed: the app never sees an
//! `/admin` path, and a plain request still works afterwards.

use http::StatusCode;
use warden_e2e::Stack;

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
