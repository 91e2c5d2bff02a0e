//! Several control-plane replicas on one PostgreSQL: any replica serves any sidecar and
//! any `wardenctl`, and a change made through one reaches sidecars connected to the
//! others (the change feed, LISTEN/NOTIFY). The database is a real PostgreSQL
//! (`warden_e2e::postgres`).

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, eventually, postgres, write_policy};

fn policy(tag: &str) -> String {
    format!(
        "service: orders
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    auth: keys
    response_headers: {{ set: {{ x-policy: \"{tag}\" }} }}
auth:
  keys: {{ type: api_key, header: x-api-key }}
"
    )
}

async fn json(cp: &ControlPlane, args: &[&str]) -> serde_json::Value {
    let out = cp.ctl(args).await;
    assert_eq!(out.code, 0, "wardenctl {args:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("wardenctl {args:?} printed no JSON ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_rollbacks_and_key_changes_through_one_replica_reach_sidecars_on_another() {
    let db = postgres::database().await;
    let (a, b) = (ControlPlane::on_database(&db.url).await, ControlPlane::on_database(&db.url).await);
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("orders-app").await;
    let sidecar = orders_sidecar(&b.url(), app.addr, &dir.path().join("state"), "orders-1", &[]).await;
    let client = Client::default();
    let get = async |key: &str| {
        client.send(http::Method::GET, &sidecar.url("/orders/1"), &[("x-api-key", key)], Default::default()).await
    };

    // An apply through A; the sidecar follows B.
    let file = write_policy(dir.path(), "p.yaml", &policy("one"));
    json(&a, &["apply", "-f", &file, "-o", "json"]).await;
    let created = json(&a, &["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
    let key = created["key"].as_str().unwrap().to_owned();
    eventually("the sidecar on B serves A's apply and A's key", Duration::from_secs(10), || async {
        get(&key).await.is_ok_and(|r| r.status == StatusCode::OK && r.header("x-policy") == Some("one"))
    })
    .await;

    let file = write_policy(dir.path(), "p.yaml", &policy("two"));
    json(&a, &["apply", "-f", &file, "-o", "json"]).await;
    eventually("the sidecar on B serves v2", Duration::from_secs(10), || async {
        get(&key).await.is_ok_and(|r| r.header("x-policy") == Some("two"))
    })
    .await;

    // A rollback through B reaches it too, and both replicas tell one history.
    json(&b, &["rollback", "orders", "-o", "json"]).await;
    eventually("the sidecar serves the rollback (v3, v1's content)", Duration::from_secs(10), || async {
        get(&key).await.is_ok_and(|r| r.header("x-policy") == Some("one"))
    })
    .await;
    let history = json(&a, &["history", "orders", "-o", "json"]).await;
    assert_eq!(history, json(&b, &["history", "orders", "-o", "json"]).await);
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(3), "{history}");

    // A revocation through A closes the key on B's sidecar.
    let id = created["id"].as_str().unwrap();
    json(&a, &["keys", "revoke", id, "-o", "json"]).await;
    eventually("the sidecar on B refuses the revoked key", Duration::from_secs(10), || async {
        get(&key).await.is_ok_and(|r| r.status == StatusCode::UNAUTHORIZED)
    })
    .await;
    let refused = get(&key).await.unwrap();
    assert_eq!(refused.json()["error"]["code"], "key_revoked", "{}", refused.text());
}

/// `--data-dir` and `--database-url` name two stores: refused as a usage error, and a
/// URL of another kind is refused with what is accepted.
#[tokio::test]
async fn the_store_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let both = std::process::Command::new(warden_e2e::process::bin("warden-control-plane"))
        .args(["--data-dir", &data, "--database-url", "sqlite:///tmp/x.db"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"), "{both:?}");
    let other = std::process::Command::new(warden_e2e::process::bin("warden-control-plane"))
        .args(["--database-url", "mysql://db/warden", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_ne!(other.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&other.stderr).contains("sqlite:// or postgres://"), "{other:?}");

    // sqlite:// names the file itself.
    let file = dir.path().join("nested/warden.db");
    let cp = ControlPlane::on_database(&format!("sqlite://{}", file.display())).await;
    let policy = write_policy(dir.path(), "p.yaml", &policy("x"));
    json(&cp, &["apply", "-f", &policy, "-o", "json"]).await;
    assert!(file.exists(), "the store is the file the URL names");
}
