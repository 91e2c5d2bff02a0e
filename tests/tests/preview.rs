//! `wardenctl apply --preview`: a change that newly refuses a known slice of real traffic
//! is previewed from the sidecar's decision samples, and the share it predicts is the
//! share enforcing it then refuses; the gate exits 4 above its threshold; nothing is
//! applied by a preview.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::{Stack, eventually, write_policy};

/// Limits each tenant: so its samples keep `x-tenant`, which the proposal routes on.
const CURRENT: &str = "service: orders
routes:
  - name: orders
    match: { path_prefix: /orders }
    limits: [per-tenant]
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  per-tenant: { key: \"header:x-tenant\", rate: 100000/s, burst: 100000 }
";

/// Globex's calls start needing an API key, which they do not send.
const PROPOSED: &str = "service: orders
routes:
  - name: globex
    match: { path_prefix: /orders, headers: { x-tenant: globex } }
    auth: keys
  - name: orders
    match: { path_prefix: /orders }
    limits: [per-tenant]
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  per-tenant: { key: \"header:x-tenant\", rate: 100000/s, burst: 100000 }
";

/// Sends the mix: 4 of every 5 requests from acme, 1 from globex. Returns the refused share.
async fn send_mix(s: &Stack, rounds: usize) -> f64 {
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (client, base) = (s.client.clone(), s.sidecar.url("/orders/"));
        clients.spawn(async move {
            let mut refused = 0usize;
            for i in 0..rounds {
                let tenant = if (worker + i) % 5 == 0 { "globex" } else { "acme" };
                let url = format!("{base}{i}");
                let sent = client.send(http::Method::GET, &url, &[("x-tenant", tenant)], Default::default()).await;
                let status = sent.unwrap().status;
                assert!(status == StatusCode::OK || status == StatusCode::UNAUTHORIZED, "{status}");
                refused += usize::from(status == StatusCode::UNAUTHORIZED);
            }
            refused
        });
    }
    let refused: usize = clients.join_all().await.into_iter().sum();
    refused as f64 / (4 * rounds) as f64
}

async fn preview(s: &Stack, file: &str, gate: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["apply", "--preview", "-f", file, "-o", "json"];
    args.extend_from_slice(gate);
    let out = s.cp.ctl(&args).await;
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}"));
    (out.code, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_previewed_change_refuses_what_it_predicted_and_the_gate_holds_it_back() {
    // Every request sampled whole, so what is compared is the replay, not the draw (the
    // weighted draw is tested in samples.rs).
    let s = Stack::start_with(CURRENT, &["--samples-per-route", "2000"]).await;
    let file = write_policy(s.dir.path(), "proposed.yaml", PROPOSED);

    // Before any traffic there is nothing to judge by: the gate stays closed.
    let (code, _) = preview(&s, &file, &["--max-new-denials", "50%"]).await;
    assert_eq!(code, 4, "no samples: exit 4");

    assert_eq!(send_mix(&s, 250).await, 0.0, "v1 refuses nobody");
    eventually("the preview sees the whole mix", Duration::from_secs(15), || async {
        let report = preview(&s, &file, &[]).await.1;
        (report["services"][0]["requests"].as_f64().unwrap() - 1000.0).abs() < 1.0
    })
    .await;
    let report = preview(&s, &file, &[]).await.1["services"][0].clone();
    let predicted = report["newly_refused_share"].as_f64().unwrap();
    let slice = &report["newly_refused"][0];
    assert_eq!((slice["route"].as_str(), slice["rule"].as_str()), (Some("globex"), Some("keys")), "{report}");
    assert_eq!((slice["code"].as_str(), slice["estimated"].as_bool()), (Some("credential_missing"), Some(false)));
    assert!(!slice["examples"].as_array().unwrap().is_empty(), "example request ids: {slice}");
    assert_eq!(report["newly_allowed"], serde_json::json!([]));
    assert_eq!(report["current_version"], 1);

    // The gate: a threshold below the predicted share exits 4, above it 0; nothing applied.
    assert_eq!(preview(&s, &file, &["--max-new-denials", "0.5%"]).await.0, 4);
    assert_eq!(preview(&s, &file, &["--max-new-denials", "50%"]).await.0, 0);
    let history = s.cp.ctl(&["history", "orders", "-o", "json"]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&history.stdout).unwrap()["versions"].as_array().unwrap().len(),
        1
    );

    // Enforced, the change refuses the share the preview predicted (sampling error aside).
    let v = s.apply(PROPOSED).await;
    s.wait_for_version(v).await;
    let enforced = send_mix(&s, 250).await;
    assert!((enforced - 0.2).abs() < 1e-9, "the mix is 1 in 5 globex: {enforced}");
    assert!((predicted - enforced).abs() < 0.005, "predicted {predicted}, enforced {enforced}");
}
