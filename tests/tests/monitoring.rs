//! What teams that live in Grafana and Prometheus get (`deploy/monitoring/`): the alert
//! rules pass `promtool check rules`, each alert fires on the series it is about
//! (`promtool test rules`), and every metric the dashboard and the rules name is one the
//! real binaries export, sidecar series labelled with their service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use std::time::Duration;

use warden_e2e::stack::{BASIC, MISSING_CA};
use warden_e2e::{Stack, eventually, write_policy};

const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitoring");

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(MONITORING)
        .output()
        .expect("promtool (apt-get install prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_each_fires_on_what_it_is_about() {
    assert!(promtool(&["check", "rules", "warden-alerts.yaml"]).contains("SUCCESS: 7 rules found"));
    promtool(&["test", "rules", "warden-alerts.test.yaml"]);
    let rules = std::fs::read_to_string(Path::new(MONITORING).join("warden-alerts.yaml")).unwrap();
    let runbook = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbook.md")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(runbook.contains(&format!("\n## {alert}\n")), "docs/runbook.md has no entry for {alert}");
    }
}

/// Every `warden_*` name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("warden_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        // Not a longer word that merely contains it (a file name, say).
        let before = rest[..i].chars().last();
        if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '.')) {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// The series names a scrape can hold: samples, and every family's declared type (a
/// family with no sample yet still has its `# TYPE` line).
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            out.insert(line.split(['{', ' ']).next().unwrap().to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_alerts_name_only_metrics_the_binaries_export() {
    let s = Stack::start(BASIC).await;
    // A family shows in a scrape once it has a sample: a request and a refusal, a shadow
    // candidate's difference, a NACK.
    s.get("/orders/1").await;
    assert_eq!(s.get("/nope").await.status, http::StatusCode::NOT_FOUND);
    let candidate = BASIC.replace("  - name: orders\n    match: { path_prefix: /orders }\n", "");
    let file = write_policy(s.dir.path(), "candidate.yaml", &candidate);
    assert_eq!(s.cp.ctl(&["apply", "-f", &file, "--shadow"]).await.code, 0);
    eventually("the candidate in shadow refuses what the live version forwards", Duration::from_secs(10), || async {
        s.get("/orders/1").await;
        s.get_admin("/metrics").await.contains("warden_shadow_decisions_total{")
    })
    .await;
    assert_eq!(s.cp.ctl(&["rollout", "abort", "orders"]).await.code, 0);
    let bad = format!("{BASIC}{MISSING_CA}");
    let v = s.apply(&bad).await;
    s.wait_for_nack(v, "billing-ca.pem").await;
    let sidecar = s.get_admin("/metrics").await;
    let control_plane = s.client.get(&s.cp.http_url("/metrics")).await.unwrap().text();
    assert!(
        sidecar.lines().any(|l| l == r#"warden_snapshot_version{service="orders"} 1"#),
        "sidecar series carry their service:\n{sidecar}"
    );
    assert!(sidecar.contains(r#"warden_requests_total{service="orders",route="orders""#), "{sidecar}");
    let mut all = exported(&sidecar);
    all.extend(exported(&control_plane));

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(MONITORING).join("warden-dashboard.json")).unwrap())
            .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["definition"].as_str() {
            queries.push(q.to_owned());
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    let rules = std::fs::read_to_string(Path::new(MONITORING).join("warden-alerts.yaml")).unwrap();
    let expressions: String = rules.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    for (source, text) in [("the dashboard", queries.join("\n")), ("the alert rules", expressions)] {
        let named = names(&text);
        assert!(!named.is_empty());
        let unknown: Vec<&String> = named.difference(&all).collect();
        assert!(unknown.is_empty(), "{source} names metrics nothing exports: {unknown:?}\nexported: {all:?}");
    }
}
