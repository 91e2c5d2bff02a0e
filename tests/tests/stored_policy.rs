//! Upgrade safety at the control plane: a stored policy that no longer validates with this
//! release (a rule became stricter) is not served, and never silently dropped: the
//! control plane logs an error at start-up, `/metrics` counts it, and `wardenctl status`
//! lists it with the reason until a valid version replaces it.

use std::time::Duration;

use warden_control_plane::store::{NewVersion, Sqlite, Store};
use warden_e2e::{ControlPlane, eventually, write_policy};

/// Stored by an earlier release; this one refuses a route whose upstream is not defined.
const NO_LONGER_VALID: &str = "service: orders
routes:
  - name: a
    match: { path_prefix: /a }
    upstream: gone
";

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_policy_that_no_longer_validates_is_reported_loudly_until_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let store = Sqlite::open(&data).expect("store");
        let old = NewVersion {
            service: "orders".into(),
            author: "an older release".into(),
            message: String::new(),
            content_hash: warden_policy::yaml::content_hash(NO_LONGER_VALID),
            source_yaml: NO_LONGER_VALID.into(),
            rollout: None,
            force: false,
        };
        store.apply(vec![old], false).await.expect("stored");
    }
    let cp = ControlPlane::start(&data, "127.0.0.1:0").await;

    let log = cp.proc.wait_for("no longer validates", Duration::from_secs(5)).await;
    assert!(log.contains("ERROR") && log.contains("orders"), "{log}");
    let status = cp.ctl(&["status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("STORED POLICIES THAT NO LONGER VALIDATE"), "{}", status.stdout);
    assert!(status.stdout.contains("orders v1"), "{}", status.stdout);
    assert!(status.stdout.contains("upstream 'gone' is not defined"), "{}", status.stdout);
    let json: serde_json::Value = serde_json::from_str(&cp.ctl(&["status", "-o", "json"]).await.stdout).unwrap();
    assert_eq!(json["invalid_policies"][0]["service"], "orders");
    assert_eq!(json["invalid_policies"][0]["version"], 1);
    let client = warden_e2e::Client::default();
    let metrics = client.get(&cp.http_url("/metrics")).await.unwrap().text();
    assert!(metrics.lines().any(|l| l == "warden_stored_policies_invalid 1"), "{metrics}");

    // A valid version replaces it: nothing left to report.
    let file = write_policy(dir.path(), "fixed.yaml", &NO_LONGER_VALID.replace("    upstream: gone\n", ""));
    let applied = cp.ctl(&["apply", "-f", &file]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    let status = cp.ctl(&["status"]).await;
    assert!(!status.stdout.contains("NO LONGER VALIDATE"), "{}", status.stdout);
    eventually("the gauge goes back to 0", Duration::from_secs(5), || async {
        let metrics = client.get(&cp.http_url("/metrics")).await.unwrap().text();
        metrics.lines().any(|l| l == "warden_stored_policies_invalid 0")
    })
    .await;
}
