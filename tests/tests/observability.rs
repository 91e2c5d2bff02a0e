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
        metrics.contains(r#"warden_requests_total{service="orders",route="orders",status="200",decision="forward"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"warden_denials_total{service="orders",rule="login-per-ip",code="rate_limited",fault="policy",dry_run="false"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("warden_request_duration_seconds_bucket{"), "{metrics}");
    assert!(
        metrics.contains(r#"warden_snapshot_version{service="orders"} 1"#)
            && metrics.contains(r#"warden_control_plane_connected{service="orders"} 1"#)
    );
    assert!(metrics.contains(r#"warden_active_connections{service="orders"} "#), "{metrics}");

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

/// The value of an unlabelled counter in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_can_be_switched_off() {
    // The positive control: with the log on, the same request is written and counted as
    // written, so the absence below means something.
    let on = Stack::start(POLICY).await;
    on.get_with("/orders/1", &[("x-request-id", "loud-1")]).await;
    eventually("the line is written", Duration::from_secs(5), || async {
        counter(&on.get_admin("/metrics").await, r#"warden_access_log_lines_total{service="orders"}"#) == Some(1)
    })
    .await;
    // The line is on stdout (the harness reads the pipe on a thread of its own: waited for).
    on.sidecar
        .proc
        .wait_for_json("access log line of loud-1", Duration::from_secs(5), |v| v["request_id"] == "loud-1")
        .await;

    let s = Stack::start_with(POLICY, &["--access-log", "off"]).await;
    s.get_with("/orders/1", &[("x-request-id", "quiet-1")]).await;
    let metrics = s.get_admin("/metrics").await;
    assert!(metrics.contains(r#"route="orders",status="200""#), "the request is counted: {metrics}");
    // With the log off there is no writer at all: nothing is, or will be, written.
    assert_eq!(counter(&metrics, r#"warden_access_log_lines_total{service="orders"}"#), Some(0), "{metrics}");
    assert!(!s.sidecar.proc.output().contains("quiet-1"), "no access log line");
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_real_otlp_receiver_and_continue_the_callers_trace() {
    let collector = warden_e2e::otlp::Collector::start().await;
    let endpoint = collector.endpoint();
    let envs = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let s = Stack::start_env(POLICY, &envs).await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{parent}-01");
    let r = s.get_with("/orders/7", &[("traceparent", &traceparent), ("x-request-id", "traced-1")]).await;
    assert_eq!(r.status, StatusCode::OK);
    // The app sees the same trace, with Warden's span as its parent.
    let seen = s.app.last();
    let passed = seen.headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(passed.starts_with(&format!("00-{trace}-")), "{passed}");
    assert!(!passed.contains(parent), "the app's parent is Warden's span: {passed}");
    let warden_span = passed.split('-').nth(2).unwrap_or_default().to_owned();

    // A refused request: its span, log line and deny record share the trace id.
    s.get_with("/login", &[]).await;
    let denied = s.get_with("/login", &[("x-request-id", "traced-deny")]).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);

    eventually("both spans reach the receiver", Duration::from_secs(10), || async {
        let spans = collector.spans();
        let has = |id: &str| {
            spans.iter().any(|sp| warden_e2e::otlp::attribute(sp, "warden.request_id").as_deref() == Some(id))
        };
        has("traced-1") && has("traced-deny")
    })
    .await;
    let spans = collector.spans();
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|sp| warden_e2e::otlp::attribute(sp, "warden.request_id").as_deref() == Some(id))
            .cloned()
            .unwrap_or_default()
    };
    let ok = by_id("traced-1");
    assert_eq!(hex(&ok.trace_id), trace);
    assert_eq!(hex(&ok.parent_span_id), parent, "it continues the caller's span");
    assert_eq!(hex(&ok.span_id), warden_span);
    let attr = |sp, k| warden_e2e::otlp::attribute(sp, k);
    assert_eq!(attr(&ok, "http.route").as_deref(), Some("orders"));
    assert_eq!(attr(&ok, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(&ok, "warden.decision").as_deref(), Some("forward"));
    assert!(attr(&ok, "warden.upstream_ms").is_some());

    let metrics = s.get_admin("/metrics").await;
    let value =
        |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or_default();
    assert!(
        value(r#"warden_spans_ended_total{service="orders"} "#) >= 3
            && value(r#"warden_spans_exported_total{service="orders"} "#) >= 2,
        "{metrics}"
    );
    let deny = by_id("traced-deny");
    assert_eq!(attr(&deny, "warden.code").as_deref(), Some("rate_limited"));
    assert_eq!(attr(&deny, "warden.rule").as_deref(), Some("login-per-ip"));
    let trace_id = hex(&deny.trace_id);
    let line = access_line(&s, "traced-deny").await;
    assert_eq!(line["trace_id"], trace_id.as_str());
    eventually("the deny record carries the trace id", Duration::from_secs(5), || async {
        let out = s.cp.ctl(&["denials", "-o", "json"]).await;
        out.stdout.contains(&trace_id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_costs_requests_nothing() {
    // Nothing listens on this port: every export fails.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.map(|l| l.local_addr());
    let endpoint = format!("http://{}", dead.ok().and_then(Result::ok).map(|a| a.to_string()).unwrap_or_default());
    let envs = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    let s = Stack::start_env(POLICY, &envs).await;
    for i in 0..200 {
        let r = s.get_with("/orders/1", &[("x-request-id", &format!("no-collector-{i}"))]).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
    }
    eventually("failed exports are counted", Duration::from_secs(15), || async {
        s.get_admin("/metrics").await.lines().any(|l| {
            l.starts_with(r#"warden_telemetry_dropped_total{service="orders",kind="spans"}"#) && !l.ends_with(" 0")
        })
    })
    .await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn top_shows_each_routes_traffic_per_sidecar_and_merged() {
    let s = Stack::start(POLICY).await;
    let b = s.start_another_sidecar("orders-2").await;
    let ready = b.admin_url("/readyz");
    eventually("the second sidecar has the policy", Duration::from_secs(5), || async {
        s.client.get(&ready).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
    for i in 0..20 {
        s.get(&format!("/orders/{i}")).await;
    }
    for _ in 0..5 {
        let _ = s.client.get(&b.url("/orders/x")).await;
        let _ = s.client.get(&b.url("/login")).await;
    }
    let routes = || async {
        let out = s.cp.ctl(&["top", "--service", "orders", "-o", "json"]).await;
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap_or_default()["routes"].clone()
    };
    let row = |v: &serde_json::Value, route: &str, sidecar: &str| {
        v.as_array().and_then(|a| a.iter().find(|r| r["route"] == route && r["sidecar"] == sidecar).cloned())
    };
    eventually("both sidecars report their routes", Duration::from_secs(10), || async {
        let v = routes().await;
        row(&v, "orders", "(all)").is_some() && row(&v, "login", "orders-2").is_some()
    })
    .await;
    let v = routes().await;
    let login = row(&v, "login", "orders-2").unwrap_or_default();
    // 4 of 5 logins refused (1/min): 80 %, unless a 2 s window boundary split the five.
    let denied = login["deny_percent"].as_f64().unwrap_or(0.0);
    assert!((50.0..=100.0).contains(&denied), "{login}");
    let all = row(&v, "orders", "(all)").unwrap_or_default();
    assert!(all["rps"].as_f64().unwrap_or(0.0) > 0.0 && all["p99_ms"].as_f64().is_some(), "{all}");
    let table = s.cp.ctl(&["top"]).await;
    assert!(table.stdout.contains("SIDECAR") && table.stdout.contains("(all)"), "{table:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_is_traced_from_the_control_plane_to_every_ack() {
    let collector = warden_e2e::otlp::Collector::start().await;
    let endpoint = collector.endpoint();
    let envs = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = warden_e2e::ControlPlane::start_env(&dir.path().join("data"), "127.0.0.1:0", &[], &envs).await;
    let app = warden_e2e::App::start("app").await;
    let sidecar =
        warden_e2e::stack::orders_sidecar(&cp.url(), app.addr, &dir.path().join("state"), "orders-1", &[]).await;
    let status = || async { cp.ctl(&["status", "-o", "json"]).await.stdout };
    eventually("the sidecar is connected", Duration::from_secs(5), || async {
        status().await.contains("\"connected\": true")
    })
    .await;
    let file = warden_e2e::write_policy(dir.path(), "p.yaml", POLICY);
    assert_eq!(cp.ctl(&["apply", "-f", &file, "-m", "traced apply"]).await.code, 0);

    let names = || collector.spans().into_iter().map(|s| s.name).collect::<Vec<_>>();
    eventually("the rollout span ends with the sidecar's ACK", Duration::from_secs(10), || async {
        names().contains(&"rollout".to_owned())
    })
    .await;
    let spans = collector.spans();
    let find = |name: &str| spans.iter().find(|s| s.name == name).cloned().unwrap_or_default();
    let (apply, store, push, rollout) = (find("apply"), find("store"), find("build and push"), find("rollout"));
    assert_eq!(warden_e2e::otlp::attribute(&apply, "warden.message").as_deref(), Some("traced apply"));
    for child in [&store, &push, &rollout] {
        assert_eq!(child.trace_id, apply.trace_id, "{} is in the apply's trace", child.name);
        assert_eq!(child.parent_span_id, apply.span_id, "{} is a child of apply", child.name);
    }
    assert_eq!(warden_e2e::otlp::attribute(&rollout, "warden.version").as_deref(), Some("1"));
    let acks: Vec<_> = rollout.events.iter().filter(|e| e.name == "ack").collect();
    assert_eq!(acks.len(), 1, "one event per sidecar's ACK: {:?}", rollout.events);

    // A preview is traced too: its outcome per service, in a trace of its own.
    assert_eq!(cp.ctl(&["apply", "--preview", "-f", &file]).await.code, 0);
    eventually("the preview's span arrives", Duration::from_secs(10), || async {
        names().contains(&"preview service".to_owned())
    })
    .await;
    let spans = collector.spans();
    let find = |name: &str| spans.iter().find(|s| s.name == name).cloned().unwrap_or_default();
    let (preview, service) = (find("preview"), find("preview service"));
    assert_eq!(service.parent_span_id, preview.span_id);
    assert_eq!(warden_e2e::otlp::attribute(&service, "warden.service").as_deref(), Some("orders"));
    assert_eq!(warden_e2e::otlp::attribute(&service, "warden.current_version").as_deref(), Some("1"));
    assert!(warden_e2e::otlp::attribute(&service, "warden.newly_refused_share").is_some());

    // A rollout: its start in the apply's trace, its end (here by hand) in one of its own.
    let candidate = warden_e2e::write_policy(dir.path(), "candidate.yaml", &POLICY.replace("/login", "/signin"));
    assert_eq!(cp.ctl(&["apply", "-f", &candidate, "--shadow"]).await.code, 0);
    assert_eq!(cp.ctl(&["rollout", "abort", "orders", "-m", "traced abort"]).await.code, 0);
    eventually("the rollout's spans arrive", Duration::from_secs(10), || async {
        let names = names();
        names.contains(&"rollout started".to_owned()) && names.contains(&"aborted".to_owned())
    })
    .await;
    let spans = collector.spans();
    let started = spans.iter().find(|s| s.name == "rollout started").cloned().unwrap_or_default();
    let apply = spans.iter().find(|s| s.span_id == started.parent_span_id).cloned().unwrap_or_default();
    assert_eq!((apply.name.as_str(), apply.trace_id == started.trace_id), ("apply", true), "a child of its apply");
    assert_eq!(warden_e2e::otlp::attribute(&started, "warden.rollout.mode").as_deref(), Some("shadow"));
    let aborted = spans.iter().find(|s| s.name == "aborted").cloned().unwrap_or_default();
    assert_eq!(warden_e2e::otlp::attribute(&aborted, "warden.version").as_deref(), Some("2"));
    let reason = warden_e2e::otlp::attribute(&aborted, "warden.rollout.reason").unwrap_or_default();
    assert!(reason.ends_with("traced abort"), "{reason}");
    drop(sidecar);
}
