//! Rollouts: a candidate tried before it is trusted. In shadow every sidecar decides it
//! beside the live version and enforces nothing, and the differences are logged, counted
//! and shown by `rollout status`; a canary serves it on a share of the sidecars and the
//! evaluator aborts it by itself when it refuses more than the baseline. One rollout per
//! service at a time: other changes wait for it, or `--force` aborts it first.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use warden_e2e::{Sidecar, Stack, eventually, write_policy};

const LIVE: &str = "service: orders
routes:
  - name: orders
    match: { path_prefix: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

/// Globex's calls start needing an API key, which they do not send: 1 in 5 of the mix.
const CANDIDATE: &str = "service: orders
routes:
  - name: globex
    match: { path_prefix: /orders, headers: { x-tenant: globex } }
    auth: keys
  - name: orders
    match: { path_prefix: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

/// A harmless change: one more route.
const HARMLESS: &str = "service: orders
routes:
  - name: health
    match: { path: /health }
  - name: orders
    match: { path_prefix: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

async fn json(s: &Stack, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = s.cp.ctl(&all).await;
    assert_eq!(out.code, 0, "{args:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {out:?}"))
}

/// `apply -f` of `policy` with `flags`; the answer as JSON (the exit code must be 0).
async fn apply(s: &Stack, policy: &str, flags: &[&str]) -> serde_json::Value {
    let file = write_policy(s.dir.path(), "change.yaml", policy);
    let mut args = vec!["apply", "-f", &file];
    args.extend_from_slice(flags);
    json(s, &args).await
}

/// Sends `rounds` requests of the mix (1 in 5 from globex) through `sidecar`; returns how
/// many were refused.
async fn send_mix(s: &Stack, sidecar: &Sidecar, rounds: usize) -> usize {
    let mut refused = 0;
    for i in 0..rounds {
        let tenant = if i % 5 == 0 { "globex" } else { "acme" };
        let url = sidecar.url(&format!("/orders/{i}"));
        let resp = s.client.send(http::Method::GET, &url, &[("x-tenant", tenant)], Default::default()).await.unwrap();
        assert!(resp.status == StatusCode::OK || resp.status == StatusCode::UNAUTHORIZED, "{}", resp.status);
        refused += usize::from(resp.status == StatusCode::UNAUTHORIZED);
    }
    refused
}

async fn config(s: &Stack, sidecar: &Sidecar) -> serde_json::Value {
    s.client.get(&sidecar.admin_url("/config")).await.unwrap().json()
}

/// Waits until `sidecar` serves `version` and shadows `shadow` (0: none).
async fn wait_for(s: &Stack, sidecar: &Sidecar, version: u64, shadow: u64) {
    eventually(&format!("the sidecar serves v{version}, shadows v{shadow}"), Duration::from_secs(10), || async {
        let c = config(s, sidecar).await;
        c["version"] == version && c["shadow_version"] == shadow
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_candidate_is_decided_everywhere_enforced_nowhere_and_its_differences_are_shown() {
    let s = Stack::start(LIVE).await;
    let started = apply(&s, CANDIDATE, &["--shadow"]).await;
    let rollout = &started["results"][0]["rollout"];
    assert_eq!((rollout["mode"].as_str(), rollout["state"].as_str()), (Some("shadow"), Some("shadow")), "{started}");
    assert_eq!((started["results"][0]["version"].as_u64(), rollout["base_version"].as_u64()), (Some(2), Some(1)));
    wait_for(&s, &s.sidecar, 1, 2).await;

    // The live version is what `get` serves; the candidate is named beside it.
    let got = json(&s, &["get", "orders"]).await;
    assert_eq!((got["version"].as_u64(), got["candidate"]["version"].as_u64()), (Some(1), Some(2)), "{got}");
    assert_eq!(got["candidate"]["state"], "shadow");

    // Never enforced: every request of the mix gets through.
    assert_eq!(send_mix(&s, &s.sidecar, 50).await, 0);

    // Each globex request is a shadow_deny: in the access log, the metrics and the deny
    // records `rollout status` counts.
    let shadow_lines = || -> Vec<serde_json::Value> {
        let lines = s.sidecar.proc.lines();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["decision"] == "shadow_deny")
            .collect()
    };
    // The access log is written behind the requests: wait for its lines.
    eventually("10 shadow_deny lines in the access log", Duration::from_secs(10), || async {
        shadow_lines().len() >= 10
    })
    .await;
    let lines = shadow_lines();
    assert_eq!(lines.len(), 10, "1 in 5 of 50");
    assert_eq!((lines[0]["status"].as_u64(), lines[0]["shadow"]["rule"].as_str()), (Some(200), Some("keys")));
    assert_eq!(
        (lines[0]["shadow"]["code"].as_str(), lines[0]["shadow"]["version"].as_u64()),
        (Some("credential_missing"), Some(2))
    );
    let metrics = s.get_admin("/metrics").await;
    assert!(
        metrics.contains(r#"warden_shadow_decisions_total{service="orders",decision="shadow_deny",rule="keys",code="credential_missing",version="2"} 10"#),
        "{metrics}"
    );
    eventually("rollout status counts the 10 differences", Duration::from_secs(10), || async {
        let st = json(&s, &["rollout", "status", "orders"]).await;
        st["differences"][0]["count"] == 10
    })
    .await;
    let st = json(&s, &["rollout", "status", "orders"]).await;
    let d = &st["differences"][0];
    assert_eq!(
        (d["kind"].as_str(), d["route"].as_str(), d["rule"].as_str()),
        (Some("shadow_deny"), Some("globex"), Some("keys"))
    );
    // The first report's examples stay (up to 3; the 10 may have come in two reports).
    let examples = d["example_request_ids"].as_array().unwrap().len();
    assert!((1..=3).contains(&examples), "{d}");
    assert_eq!(st["differences"].as_array().unwrap().len(), 1, "acme's requests are decided alike: {st}");
    // Not refusals anyone saw: the review queue does not list them.
    assert_eq!(json(&s, &["denials"]).await["denials"], serde_json::json!([]));

    // One rollout at a time: another change (or a rollback) waits, naming the way out.
    let file = write_policy(s.dir.path(), "other.yaml", HARMLESS);
    let refused = s.cp.ctl(&["apply", "-f", &file]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("rollout") && refused.stderr.contains("--force"), "{refused:?}");
    // A canary needs a baseline: with one sidecar it is refused, pointing at --shadow.
    let canary = s.cp.ctl(&["apply", "-f", &file, "--canary", "50%", "--force"]).await;
    assert_ne!(canary.code, 0);
    assert!(canary.stderr.contains("--shadow"), "{canary:?}");
    assert_eq!(json(&s, &["rollout", "status", "orders"]).await["rollout"]["state"], "shadow", "nothing changed");

    // Promoted, the candidate is live and enforced; nothing is shadowed any more.
    let promoted = json(&s, &["rollout", "promote", "orders"]).await;
    assert_eq!(promoted["state"], "promoted");
    wait_for(&s, &s.sidecar, 2, 0).await;
    assert_eq!(send_mix(&s, &s.sidecar, 50).await, 10);
    let history = json(&s, &["history", "orders"]).await;
    assert_eq!(history["versions"][0]["rollout"], "promoted", "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_candidate_never_goes_live_and_force_aborts_a_running_one() {
    let s = Stack::start(LIVE).await;
    apply(&s, CANDIDATE, &["--shadow"]).await;
    wait_for(&s, &s.sidecar, 1, 2).await;
    let aborted = json(&s, &["rollout", "abort", "orders", "-m", "not now"]).await;
    assert_eq!(aborted["state"], "aborted");
    assert!(aborted["reason"].as_str().unwrap().ends_with("not now"), "{aborted}");
    wait_for(&s, &s.sidecar, 1, 0).await;
    assert_eq!(json(&s, &["get", "orders"]).await["version"], 1, "v2 never went live");

    // The next change is v3 (an aborted number is not reused); a rollback skips v2.
    assert_eq!(apply(&s, HARMLESS, &[]).await["results"][0]["version"], 3);
    s.wait_for_version(3).await;
    let back = json(&s, &["rollback", "orders"]).await;
    assert_eq!(back["version"], 4);
    let history = json(&s, &["history", "orders"]).await;
    assert_eq!(history["versions"][2]["rollout"], "aborted", "{history}");
    assert_eq!(json(&s, &["get", "orders", "--version", "4"]).await["policy"], LIVE, "v4 is v1's content");

    // --force: a running shadow is aborted (recorded so), then the change goes live.
    apply(&s, CANDIDATE, &["--shadow"]).await;
    wait_for(&s, &s.sidecar, 4, 5).await;
    let forced = apply(&s, HARMLESS, &["--force"]).await;
    assert_eq!(forced["results"][0]["version"], 6);
    wait_for(&s, &s.sidecar, 6, 0).await;
    let st = json(&s, &["status"]).await;
    let r = &st["rollouts"][0];
    assert_eq!((r["version"].as_u64(), r["state"].as_str()), (Some(5), Some("aborted")), "{st}");
    assert!(r["reason"].as_str().unwrap().contains("forced"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_compared_with_its_baseline_promoted_when_good_and_aborted_by_itself_when_bad() {
    let s = Stack::start(LIVE).await;
    let baseline = s.start_another_sidecar("orders-2").await;
    eventually("both sidecars serve v1", Duration::from_secs(10), || async {
        config(&s, &baseline).await["version"] == 1
    })
    .await;

    // 50% of two sidecars: orders-1 (by name) serves the candidate, orders-2 stays.
    let started = apply(&s, HARMLESS, &["--canary", "50%"]).await;
    assert_eq!(started["results"][0]["rollout"]["canary_instances"], serde_json::json!(["orders-1"]), "{started}");
    wait_for(&s, &s.sidecar, 2, 0).await;
    assert_eq!(config(&s, &baseline).await["version"], 1, "the baseline stays on the live version");
    let st = json(&s, &["status"]).await;
    let canary_row = st["sidecars"].as_array().unwrap().iter().find(|r| r["instance"] == "orders-1").unwrap().clone();
    assert_eq!((canary_row["acked_version"].as_u64(), canary_row["current_version"].as_u64()), (Some(2), Some(1)));
    // On its candidate, the canary is not version skew; the rollout shows as running.
    let metrics = s.client.get(&s.cp.http_url("/metrics")).await.unwrap().text();
    for line in
        [r#"warden_sidecars_behind{service="orders"} 0"#, r#"warden_rollout_running{service="orders",mode="canary"} 1"#]
    {
        assert!(metrics.lines().any(|l| l == line), "no {line} in:\n{metrics}");
    }

    // Side by side: both sides' traffic, no refusals.
    eventually("rollout status has both sides' traffic", Duration::from_secs(15), || async {
        send_mix(&s, &s.sidecar, 10).await;
        send_mix(&s, &baseline, 10).await;
        let st = json(&s, &["rollout", "status", "orders"]).await;
        st["canary"]["requests"].as_u64() > Some(0) && st["baseline"]["requests"].as_u64() > Some(0)
    })
    .await;
    let st = json(&s, &["rollout", "status", "orders"]).await;
    assert_eq!(
        (st["canary"]["instances"].clone(), st["baseline"]["instances"].clone()),
        (serde_json::json!(["orders-1"]), serde_json::json!(["orders-2"]))
    );
    assert_eq!((st["canary"]["refused"].as_u64(), st["baseline"]["refused"].as_u64()), (Some(0), Some(0)));
    // The console's rollouts page has both sides, and the buttons.
    let page = console_page(&s, "/rollouts").await;
    for part in ["<th>Canary (v2)</th><th>Baseline (v1)</th>", "Canary sidecars (50%): orders-1", "Promote v2"] {
        assert!(page.contains(part), "no {part} in the console's rollouts page:\n{page}");
    }
    json(&s, &["rollout", "promote", "orders"]).await;
    wait_for(&s, &baseline, 2, 0).await;

    // A bad canary, judged by itself: it refuses 20% against the baseline's 0%.
    let started =
        apply(&s, CANDIDATE, &["--canary", "50%", "--abort-if", "refused>+2%", "--abort-if", "p99>+500ms"]).await;
    assert_eq!(started["results"][0]["version"], 3);
    wait_for(&s, &s.sidecar, 3, 0).await;
    let sent = Instant::now();
    let refused_on_canary = AtomicUsize::new(0);
    eventually("the evaluator aborts the canary", Duration::from_secs(40), || async {
        refused_on_canary.fetch_add(send_mix(&s, &s.sidecar, 20).await, Ordering::Relaxed);
        send_mix(&s, &baseline, 20).await;
        json(&s, &["rollout", "status", "orders"]).await["rollout"]["state"] == "aborted"
    })
    .await;
    assert!(refused_on_canary.load(Ordering::Relaxed) > 0, "the canary enforced the candidate");
    let st = json(&s, &["rollout", "status", "orders"]).await;
    let r = &st["rollout"];
    assert_eq!(r["ended_by"], "evaluator", "{st}");
    let reason = r["reason"].as_str().unwrap();
    // 1 in 5 of the canary's requests against none of the baseline's (the windows cut the
    // mix anywhere, so the share is near 20%, not exactly).
    assert!(reason.starts_with("aborted automatically: refused>+2%: refused 1"), "{reason}");
    assert!(reason.contains("% vs 0.0% (canary vs baseline"), "{reason}");
    // Every canary sidecar back on the live version.
    wait_for(&s, &s.sidecar, 2, 0).await;
    assert_eq!(send_mix(&s, &s.sidecar, 50).await, 0);
    eprintln!("aborted {:.1} s after the bad canary's traffic started", sent.elapsed().as_secs_f64());
    let status = s.cp.ctl(&["status"]).await.stdout;
    assert!(status.contains("aborted automatically"), "`status` says why: {status}");
    let page = console_page(&s, "/rollouts").await;
    assert!(page.contains("<td>evaluator</td><td class=\"reason\">aborted automatically: refused&gt;+2%"), "{page}");
}

/// A console page, signed in (this control plane has no admin token: an empty one).
async fn console_page(s: &Stack, path: &str) -> String {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let login = s.client.send(Method::POST, &s.cp.http_url("/login"), &form, Bytes::from("name=e2e&token=")).await;
    let login = login.unwrap();
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    s.client.send(Method::GET, &s.cp.http_url(path), &[("cookie", &cookie)], Bytes::new()).await.unwrap().text()
}
