//! What the sidecar tells about requests: the access log on stdout, Prometheus metrics on
//! the admin port, and deny records that reach the control plane's review queue
//! (`wardenctl denials`), all carrying the same request id and reason code.

use std::time::Duration;

use http::StatusCode;
use warden_e2e::{Stack, eventually};

const POLICY: &str = "service: orders
routes:
  - name: login
    match: { path_prefix: /login }
    limits: [login-per-ip]
  - name: orders
    match: { path_prefix: /orders }
limits:
  login-per-ip: { key: client_ip, rate: 1/min }
";

/// The access log line of a request, once written.
async fn access_line(s: &Stack, request_id: &str) -> serde_json::Value {
    let needle = format!("\"request_id\":\"{request_id}\"");
    let line = s.sidecar.proc.wait_for(&needle, Duration::from_secs(5)).await;
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_logged_counted_and_every_refusal_reaches_the_review_queue() {
    let s = Stack::start(POLICY).await;
    let ok = s.get_with("/orders/1?x=1", &[("x-request-id", "obs-ok-1")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let line = access_line(&s, "obs-ok-1").await;
    assert_eq!(line["route"], "orders");
    assert_eq!(line["status"], 200);
    assert_eq!(line["decision"], "forward");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/orders/1");
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert!(line["latency_ms"].as_f64().is_some() && line["upstream_ms"].as_f64().is_some(), "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");

    assert_eq!(s.get_with("/login", &[("x-request-id", "obs-first")]).await.status, StatusCode::OK);
    let refused = s.get_with("/login", &[("x-request-id", "obs-deny-1")]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["error"]["request_id"], "obs-deny-1");

    // The same request id and reason in the log line...
    let line = access_line(&s, "obs-deny-1").await;
    assert_eq!(
        (line["decision"].as_str(), line["rule"].as_str(), line["code"].as_str()),
        (Some("deny"), Some("login-per-ip"), Some("rate_limited"))
    );
    // ...in the metrics...
    let metrics = s.get_admin("/metrics").await;
    assert!(
        metrics.contains(r#"warden_requests_total{route="orders",status="200",decision="forward"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warden_denials_total{rule="login-per-ip",code="rate_limited",dry_run="false"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("warden_request_duration_seconds_bucket{"), "{metrics}");
    assert!(metrics.contains("warden_snapshot_version 1") && metrics.contains("warden_control_plane_connected 1"));
    assert!(metrics.contains("warden_active_connections "), "{metrics}");

    // ...and in the control plane's review queue.
    let find = || async {
        let out = s.cp.ctl(&["denials", "--service", "orders", "-o", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        v["denials"].as_array().and_then(|d| d.iter().find(|d| d["request_id"] == "obs-deny-1").cloned())
    };
    eventually("the deny record reaches the control plane", Duration::from_secs(5), || async {
        find().await.is_some()
    })
    .await;
    let record = find().await.unwrap_or_default();
    assert_eq!(record["code"], "rate_limited");
    assert_eq!(record["rule"], "login-per-ip");
    assert_eq!(record["route"], "login");
    assert_eq!(record["status"], 429);
    assert_eq!(record["client_ip"], "127.0.0.1");
    assert_eq!(record["instance"], "orders-1");
    let listed = s.cp.ctl(&["denials", "--service", "orders", "--route", "orders"]).await;
    assert!(listed.stdout.contains("no refused requests match"), "filters apply: {listed:?}");

    for i in 0..3 {
        s.get_with("/login", &[("x-request-id", &format!("obs-more-{i}"))]).await;
    }
    eventually("the group counts every refusal", Duration::from_secs(5), || async {
        let out = s.cp.ctl(&["denials", "--group", "-o", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        v["groups"][0]["count"] == 4 && v["groups"][0]["rule"] == "login-per-ip"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_can_be_switched_off() {
    let s = Stack::start_with(POLICY, &["--access-log", "off"]).await;
    s.get_with("/orders/1", &[("x-request-id", "quiet-1")]).await;
    // Requests after it are counted, so by then its line would have been written.
    eventually("the request is counted", Duration::from_secs(5), || async {
        s.get_admin("/metrics").await.contains(r#"route="orders",status="200""#)
    })
    .await;
    assert!(!s.sidecar.proc.output().contains("quiet-1"), "no access log line");
}
