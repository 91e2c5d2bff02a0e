//! A fresh pod while every replica is down: a bundle the control plane signed
//! (`wardenctl fallback export`) lets a sidecar with no last known good serve its policy
//! and API keys, never a webhook secret; a bundle not signed by a trusted key stops the
//! start; the newer of the bundle and the last known good wins; a replica that answers
//! takes over.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use warden_e2e::process::{Proc, bin};
use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, Sidecar, eventually, write_policy};

const WEBHOOK_SECRET: &str = "whsec-never-in-a-bundle-4f1c";

fn policy(tag: &str) -> String {
    format!(
        "service: orders
routes:
  - name: hooks
    match: {{ path_prefix: /hooks }}
    auth: github
  - name: orders
    match: {{ path_prefix: /orders }}
    auth: keys
    response_headers: {{ set: {{ x-policy: \"{tag}\" }} }}
auth:
  keys: {{ type: api_key, header: x-api-key }}
  github: {{ type: hmac, scheme: github, secret: gh-hook }}
"
    )
}

/// `warden-control-plane fallback-key new --out FILE`: the public key it prints.
fn new_key(path: &Path) -> String {
    let out = Command::new(bin("warden-control-plane"))
        .args(["fallback-key", "new", "--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "fallback-key new: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A sidecar that is expected not to start: its exit status and what it said.
async fn refused_start(args: &[&str]) -> String {
    let mut proc = Proc::spawn("warden-sidecar", args);
    let status = proc.wait_exit(Duration::from_secs(20)).await.expect("the sidecar exits");
    assert!(!status.success(), "the sidecar started: {}", proc.output());
    proc.output()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_started_while_every_replica_is_down_serves_the_signed_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fallback.pem");
    let public = new_key(&key_file);
    assert_eq!(public.len(), 64, "a hex Ed25519 public key: {public}");
    let key_arg = ["--fallback-signing-key", key_file.to_str().unwrap()];
    let data = dir.path().join("data");
    let cp = ControlPlane::start_with(&data, "127.0.0.1:0", &key_arg).await;
    let app = App::start("orders-app").await;

    let file = write_policy(dir.path(), "p.yaml", &policy("one"));
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);
    let secret = write_policy(dir.path(), "secret", WEBHOOK_SECRET);
    assert_eq!(cp.ctl(&["secrets", "set", "gh-hook", "--from-file", &secret]).await.code, 0);
    let created = cp.ctl(&["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
    let key: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    // v1's bundle: the policy and the key hashes, never the webhook secret.
    let bundle = dir.path().join("orders.bundle");
    let out = cp.ctl(&["fallback", "export", "orders", "-o", bundle.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("v1") && out.stdout.contains("API keys: 1") && out.stdout.contains(&public), "{out:?}");
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(!bytes.windows(WEBHOOK_SECRET.len()).any(|w| w == WEBHOOK_SECRET.as_bytes()), "a secret in the bundle");
    let no_file = cp.ctl(&["fallback", "export", "orders"]).await;
    assert_eq!(no_file.code, 2, "export without -o is a usage error: {no_file:?}");

    // v2 reaches a sidecar, which keeps it as its last known good.
    let file = write_policy(dir.path(), "p.yaml", &policy("two"));
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);
    let known = dir.path().join("known-state");
    let mut early = orders_sidecar(&cp.url(), app.addr, &known, "orders-early", &[]).await;
    let client = Client::default();
    let get = async |sidecar: &Sidecar, key: &str| {
        client.send(http::Method::GET, &sidecar.url("/orders/1"), &[("x-api-key", key)], Default::default()).await
    };
    let admin = async |sidecar: &Sidecar| -> serde_json::Value {
        serde_json::from_str(&client.get(&sidecar.admin_url("/config")).await.unwrap().text()).unwrap()
    };
    eventually("the early sidecar serves v2", Duration::from_secs(10), || async {
        get(&early, &key).await.is_ok_and(|r| r.status == StatusCode::OK && r.header("x-policy") == Some("two"))
    })
    .await;
    early.proc.terminate();
    early.proc.wait_exit(Duration::from_secs(10)).await.expect("the early sidecar stops");

    // Every replica down.
    let (cp_addr, cp_url) = (cp.addr.to_string(), cp.url());
    drop(cp);
    let fresh = dir.path().join("fresh-state");
    let fallback_args = |state: &Path, bundle: &Path, keys: &str| -> Vec<String> {
        [
            "--service",
            "orders",
            "--control-plane",
            &cp_url,
            "--upstream",
            &app.addr.to_string(),
            "--state-dir",
            state.to_str().unwrap(),
            "--fallback-snapshot",
            bundle.to_str().unwrap(),
            "--fallback-key",
            keys,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Only a trusted key's signature over the very bytes exported is served.
    let other = new_key(&dir.path().join("other.pem"));
    let said = refused_start(&strs(&fallback_args(&fresh, &bundle, &other))).await;
    assert!(said.contains("not one of --fallback-key") && said.contains(&public), "{said}");
    let mut tampered = bytes.clone();
    let spot = tampered.windows(3).position(|w| w == b"one").expect("the policy's text in the bundle");
    tampered[spot..spot + 3].copy_from_slice(b"eno");
    let tampered_file = dir.path().join("tampered.bundle");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let said = refused_start(&strs(&fallback_args(&fresh, &tampered_file, &public))).await;
    assert!(said.contains("does not verify"), "{said}");

    // A fresh pod (no last known good) serves the bundle: policy v1 and the API key, with
    // the old and the new key trusted (a rotation).
    let both_keys = format!("{other},{public}");
    let sidecar = Sidecar::start(&strs(&fallback_args(&fresh, &bundle, &both_keys))).await;
    let r = get(&sidecar, &key).await.unwrap();
    assert_eq!((r.status, r.header("x-policy")), (StatusCode::OK, Some("one")), "{r:?}");
    assert_eq!(get(&sidecar, "wdn_not_a_key").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let config = admin(&sidecar).await;
    assert_eq!((config["origin"].as_str(), config["version"].as_u64()), (Some("fallback"), Some(1)), "{config}");

    // A bundle older than --fallback-max-age is not served: keys revoked since would pass.
    let mut stale_args = fallback_args(&dir.path().join("stale-state"), &bundle, &public);
    stale_args.extend(["--fallback-max-age".to_owned(), "1ms".to_owned()]);
    let stale = Sidecar::start(&strs(&stale_args)).await;
    assert_eq!(get(&stale, &key).await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE, "nothing to serve");
    drop(stale);

    // A pod whose last known good (v2) is newer than the bundle (v1) keeps serving it.
    let from_known = Sidecar::start(&strs(&fallback_args(&known, &bundle, &public))).await;
    let r = get(&from_known, &key).await.unwrap();
    assert_eq!(r.header("x-policy"), Some("two"), "the newer of bundle and last known good: {r:?}");
    assert_eq!(admin(&from_known).await["origin"], "disk");

    // A replica answers again: it takes over, and its version becomes the last known good.
    let cp = ControlPlane::start_with(&data, &cp_addr, &key_arg).await;
    let file = write_policy(dir.path(), "p.yaml", &policy("three"));
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);
    eventually("the fallback pod follows the control plane again", Duration::from_secs(30), || async {
        get(&sidecar, &key).await.is_ok_and(|r| r.header("x-policy") == Some("three"))
    })
    .await;
    assert_eq!(admin(&sidecar).await["origin"], "control_plane");
    eventually("v3 is the fresh pod's last known good on disk", Duration::from_secs(10), || async {
        std::fs::metadata(fresh.join("orders.snapshot.pb")).is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_without_a_signing_key_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), "127.0.0.1:0").await;
    let file = write_policy(dir.path(), "p.yaml", &policy("one"));
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);
    let out = cp.ctl(&["fallback", "export", "orders", "-o", dir.path().join("b").to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--fallback-signing-key"), "{out:?}");
    assert!(!dir.path().join("b").exists(), "no file for a refused export");
    let out = cp.ctl(&["fallback", "export", "billing", "-o", "-"]).await;
    assert_eq!(out.code, 1, "{out:?}");
}
