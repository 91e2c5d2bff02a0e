//! `wardenctl diff --against URL`: how two control planes (staging and production, say)
//! differ, service by service, with the diff of those that do.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use warden_e2e::{ControlPlane, write_policy};

fn policy(service: &str, timeout: &str) -> String {
    format!("service: {service}\nroutes:\n  - name: all\n    match: {{ path_prefix: / }}\n    timeout: {timeout}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_are_compared_service_by_service() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_policy(dir.path(), "prod.token", "prod-secret-token\n");
    let staging = ControlPlane::start(&dir.path().join("staging"), "127.0.0.1:0").await;
    let production =
        ControlPlane::start_with(&dir.path().join("prod"), "127.0.0.1:0", &["--admin-token-file", &token]).await;
    let apply = async |cp: &ControlPlane, auth: &[&str], name: &str, yaml: &str| {
        let file = write_policy(dir.path(), name, yaml);
        let mut args = vec!["apply", "-f", file.as_str()];
        args.extend_from_slice(auth);
        assert_eq!(cp.ctl(&args).await.code, 0);
    };
    let prod_auth = ["--token", "prod-secret-token"];
    apply(&staging, &[], "a.yaml", &policy("orders", "3s")).await;
    apply(&production, &prod_auth, "b.yaml", &policy("orders", "5s")).await;
    apply(&staging, &[], "c.yaml", &policy("billing", "5s")).await;
    apply(&production, &prod_auth, "d.yaml", &policy("billing", "5s")).await;
    apply(&staging, &[], "e.yaml", &policy("search", "5s")).await;
    apply(&production, &prod_auth, "f.yaml", &policy("ledger", "5s")).await;

    let prod_url = production.url();
    let out = staging.ctl(&["diff", "--against", &prod_url, "--against-token-file", &token, "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let state = |service: &str| {
        report["services"].as_array().unwrap().iter().find(|s| s["service"] == service).unwrap().clone()
    };
    assert_eq!(state("billing")["state"], "same");
    assert_eq!(state("search")["state"], "only_here");
    assert_eq!(state("ledger")["state"], "only_there");
    let orders = state("orders");
    assert_eq!(orders["state"], "differs");
    let diff = orders["diff"].as_str().unwrap();
    assert!(diff.contains("-    timeout: 5s") && diff.contains("+    timeout: 3s"), "from there to here: {diff}");

    // The other side's token is its own: without it, production refuses.
    let out = staging.ctl(&["diff", "--against", &prod_url]).await;
    assert_eq!(out.code, 1, "{out:?}");
    // Diffing a file keeps its meaning.
    let file = write_policy(dir.path(), "g.yaml", &policy("orders", "3s"));
    let out = staging.ctl(&["diff", "-f", &file]).await;
    assert!(out.code == 0 && out.stdout.contains("orders: no changes"), "{out:?}");
}
