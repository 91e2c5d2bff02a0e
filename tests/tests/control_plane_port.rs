//! The control plane's HTTP port (`--http`, port 0 here): probes, and metrics that show
//! the fleet (sidecars by state and version), version skew, NACKs and applies by result;
//! a connection that sends nothing is closed within the header timeout.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use warden_e2e::stack::{BASIC, MISSING_CA};
use warden_e2e::{Stack, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_metrics_show_the_fleet_its_skew_nacks_and_applies() {
    let s = Stack::start(BASIC).await;
    let get = |path: &str| {
        let url = s.cp.http_url(path);
        let client = s.client.clone();
        async move { client.get(&url).await.expect("the control plane's http port") }
    };
    let healthz = get("/healthz").await;
    assert_eq!(healthz.status, StatusCode::OK);
    assert!(healthz.text().starts_with("ok\nstore: up (SQLite at "), "{}", healthz.text());
    assert_eq!(get("/readyz").await.status, StatusCode::OK, "it serves streams");
    // Any other path is the console: signed out, it sends the browser to its sign-in page.
    assert_eq!(get("/nope").await.status, StatusCode::SEE_OTHER);
    let post = s.client.send(Method::POST, &s.cp.http_url("/metrics"), &[], bytes::Bytes::new()).await.unwrap();
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    s.wait_for_ack(1).await;
    let metrics = get("/metrics").await;
    let content_type = metrics.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = metrics.text();
    for line in [
        r#"warden_sidecars{service="orders",state="connected",version="1"} 1"#,
        r#"warden_sidecars_behind{service="orders"} 0"#,
        r#"warden_service_version{service="orders"} 1"#,
        r#"warden_applies_total{operation="apply",result="applied"} 1"#,
        "warden_stored_policies_invalid 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }

    // v2 is valid for the control plane, but its upstream's CA file is not on the sidecar's host.
    let bad = format!("{BASIC}{MISSING_CA}");
    let v2 = s.apply(&bad).await;
    s.wait_for_nack(v2, "billing-ca.pem").await;
    let refused = s.cp.ctl(&["rollback", "orders", "--to", "9"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    eventually("the metrics show the NACK and the skew", Duration::from_secs(5), || async {
        let text = get("/metrics").await.text();
        [
            r#"warden_sidecar_nacks_total{service="orders"} 1"#,
            r#"warden_sidecars_behind{service="orders"} 1"#,
            r#"warden_sidecars{service="orders",state="connected",version="1"} 1"#,
            r#"warden_service_version{service="orders"} 2"#,
            r#"warden_applies_total{operation="apply",result="applied"} 2"#,
            r#"warden_applies_total{operation="rollback",result="refused"} 1"#,
        ]
        .iter()
        .all(|line| text.lines().any(|l| l == *line))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_sends_nothing_is_closed_and_probes_still_answer() {
    let s = Stack::start_without_policy().await;
    let mut silent = TcpStream::connect(s.cp.http).await.unwrap();
    let opened = Instant::now();
    let healthz = s.client.get(&s.cp.http_url("/healthz")).await.unwrap();
    assert_eq!(healthz.status, StatusCode::OK);
    let mut buf = [0u8; 64];
    let limit = warden_control_plane::http::HEADER_READ_TIMEOUT + Duration::from_secs(3);
    let read = tokio::time::timeout(limit, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "still open after {:?}", opened.elapsed());
}
