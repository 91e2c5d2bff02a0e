//! CORS as a browser meets it: headless Chromium (`tools/cors_browser.py`) calls the
//! sidecar from pages at an allowed and a refused origin. The preflight is answered by
//! Warden and never reaches the app; the app's own `access-control-*` headers do not
//! survive; Warden's refusals are readable by an allowed page; `explain` says the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use warden_e2e::process::{Proc, wardenctl};
use warden_e2e::{App, Sidecar};

fn policy(allowed: &str) -> String {
    format!(
        "service: web
defaults:
  cors: {{ allow_origins: [\"{allowed}\", \"https://*.example.com\"], allow_methods: [GET, PUT],
          allow_headers: [content-type, x-trace], expose_headers: [x-request-id, x-warden-denied-by], max_age: 10m }}
limits:
  once: {{ key: client_ip, rate: 1/min }}
routes:
  - {{ name: limited, match: {{ path_prefix: /limited }}, limits: [once] }}
  - {{ name: api, match: {{ path_prefix: / }} }}
"
    )
}

/// Runs the calls in one browser session; one result per call.
async fn browse(calls: Value) -> Vec<Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/cors_browser.py")).arg(calls.to_string());
    let browser = Proc::spawn_command("cors_browser.py", cmd);
    let out = browser
        .wait_for_json(
            "the browser's results (apt-get install chromium chromium-driver; pip install selenium)",
            Duration::from_secs(90),
            Value::is_array,
        )
        .await;
    out.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_from_an_allowed_origin_and_is_kept_out_from_another() {
    let (app, allowed_page, other_page) = (App::start("app").await, App::start("a").await, App::start("b").await);
    let allowed = format!("http://{}", allowed_page.addr);
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::with_policy(dir.path(), &policy(&allowed), &app.addr.to_string()).await;
    // A PUT with a JSON body and a custom header: the browser asks first (a preflight).
    let put = json!({"method": "PUT", "headers": {"content-type": "application/json", "x-trace": "1"}, "body": "{}"});
    let page = |p: &App| format!("http://{}/page", p.addr);
    let calls = json!([
        {"page": page(&allowed_page), "url": sidecar.url("/items/7"), "init": put, "headers": ["x-request-id"]},
        {"page": page(&other_page), "url": sidecar.url("/items/8"), "init": put},
        // The app says `access-control-allow-origin: *` itself; the policy has the last word.
        {"page": page(&other_page), "url": sidecar.url("/app-cors/9")},
        {"page": page(&allowed_page), "url": sidecar.url("/app-cors/10")},
        {"page": page(&allowed_page), "url": sidecar.url("/limited"), "headers": ["x-warden-denied-by"]},
        {"page": page(&allowed_page), "url": sidecar.url("/limited"), "headers": ["x-warden-denied-by"]},
    ]);
    let r = browse(calls).await;

    assert_eq!(r[0]["ok"], true, "the allowed page may call: {}", r[0]);
    assert_eq!(r[0]["status"], 200);
    let echoed: Value = serde_json::from_str(r[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "PUT", "the page reads the app's answer");
    assert!(r[0]["headers"]["x-request-id"].is_string(), "exposed headers are readable: {}", r[0]);

    assert_eq!(r[1]["ok"], false, "a page at another origin is refused by its own browser: {}", r[1]);
    assert_eq!(r[2]["ok"], false, "the app's '*' is replaced: {}", r[2]);
    assert_eq!(r[3]["ok"], true, "{}", r[3]);

    assert_eq!((r[4]["ok"].clone(), r[4]["status"].clone()), (json!(true), json!(200)), "{}", r[4]);
    assert_eq!(r[5]["status"], 429, "Warden's own refusal is readable by the page, not a CORS mystery: {}", r[5]);
    assert_eq!(r[5]["headers"]["x-warden-denied-by"], "once");

    let seen: Vec<(String, String)> = app.requests().into_iter().map(|s| (s.method, s.path_and_query)).collect();
    assert!(!seen.iter().any(|(m, _)| m == "OPTIONS"), "no preflight reached the app: {seen:?}");
    assert!(seen.contains(&("PUT".into(), "/items/7".into())), "{seen:?}");
    assert!(!seen.iter().any(|(_, p)| p == "/items/8"), "the refused origin's PUT was never sent: {seen:?}");

    let refused = sidecar
        .proc
        .wait_for_json("the refused preflight's access log line", Duration::from_secs(5), |v| {
            v["code"] == "cors_origin_not_allowed"
        })
        .await;
    assert_eq!(
        (refused["status"].clone(), refused["rule"].clone()),
        (json!(403), json!("routes.api.cors")),
        "{refused}"
    );
    let answered = sidecar
        .proc
        .wait_for_json("the answered preflight's access log line", Duration::from_secs(5), |v| {
            v["decision"] == "preflight"
        })
        .await;
    assert_eq!((answered["status"].clone(), answered["method"].clone()), (json!(204), json!("OPTIONS")), "{answered}");

    // explain gives the same verdicts, from the same file.
    let file = dir.path().join("p.yaml");
    let explain = |origin: &str| {
        let file = file.to_str().unwrap().to_owned();
        let origin = format!("origin: {origin}");
        async move {
            let args = [
                "explain",
                "-f",
                &file,
                "OPTIONS",
                "/items/1",
                "-H",
                &origin,
                "-H",
                "access-control-request-method: PUT",
                "-o",
                "json",
            ];
            let out = wardenctl("http://127.0.0.1:1", &args).await;
            serde_json::from_str::<Value>(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"))
        }
    };
    let ok = explain("https://shop.example.com").await;
    assert_eq!(ok["decision"], "preflight", "{ok}");
    assert!(ok["steps"].to_string().contains("origin https://shop.example.com allowed"), "{ok}");
    let no = explain("https://example.com").await;
    assert_eq!((no["status"].clone(), no["code"].clone()), (json!(403), json!("cors_origin_not_allowed")), "{no}");

    // A refused origin's preflight straight from a client, and what a non-browser sees.
    let client = warden_e2e::Client::default();
    let pre = client
        .send(
            http::Method::OPTIONS,
            &sidecar.url("/items/1"),
            &[("origin", "https://evil.example.org"), ("access-control-request-method", "PUT")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(pre.status, 403);
    assert_eq!(pre.json()["error"]["code"], "cors_origin_not_allowed");
    let (url, origin) = (sidecar.url("/app-cors/1"), [("origin", allowed.as_str())]);
    let from_page = client.send(http::Method::GET, &url, &origin, bytes::Bytes::new()).await.unwrap();
    assert_eq!(from_page.header("access-control-allow-origin"), Some(allowed.as_str()), "the exact origin, not '*'");
    let plain = client.get(&sidecar.url("/app-cors/1")).await.unwrap();
    assert_eq!(plain.header("access-control-allow-origin"), None, "no origin, no CORS, and not the app's '*'");
    assert_eq!(plain.header("vary"), Some("origin"));
}
