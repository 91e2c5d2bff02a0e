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
    eventually("A's status shows the sidecar, connected to B", Duration::from_secs(10), || {
        connected_to(&a, "orders-1", &b)
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

/// Whether `asked` says `instance` is connected to the replica `on` (replicas are named
/// after their host and gRPC port by default).
async fn connected_to(asked: &ControlPlane, instance: &str, on: &ControlPlane) -> bool {
    let out = asked.ctl(&["status", "-o", "json"]).await;
    let port = format!(":{}", on.addr.port());
    serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
        v["sidecars"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["instance"] == instance
                    && s["connected"] == true
                    && s["replica"].as_str().is_some_and(|r| r.ends_with(&port))
            })
        })
    })
}

/// Whether `cp` holds `instance`'s stream right now.
async fn holds(cp: &ControlPlane, instance: &str) -> bool {
    connected_to(cp, instance, cp).await
}

/// A sidecar given both replicas' URLs keeps serving when the one it follows is killed,
/// moves to the other, and gets what is applied there; `wardenctl` given both URLs
/// reaches the survivor.
#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_fails_over_to_another_replica_and_keeps_serving() {
    let db = postgres::database().await;
    let mut replicas = [ControlPlane::on_database(&db.url).await, ControlPlane::on_database(&db.url).await];
    let both = format!("{},{}", replicas[0].url(), replicas[1].url());
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "p.yaml", &policy("one").replace("    auth: keys\n", ""));
    json(&replicas[0], &["apply", "-f", &file, "-o", "json"]).await;
    let app = App::start("orders-app").await;
    let sidecar = orders_sidecar(&both, app.addr, &dir.path().join("state"), "orders-1", &[]).await;
    let client = Client::default();
    eventually("the sidecar serves v1", Duration::from_secs(10), || async {
        client.get(&sidecar.url("/orders/1")).await.is_ok_and(|r| r.header("x-policy") == Some("one"))
    })
    .await;
    eventually("a replica holds the sidecar", Duration::from_secs(10), || async {
        holds(&replicas[0], "orders-1").await || holds(&replicas[1], "orders-1").await
    })
    .await;
    let on = if holds(&replicas[0], "orders-1").await { 0 } else { 1 };
    replicas[on].proc.kill9();
    let survivor = &replicas[1 - on];
    let (stop, sent) = (std::sync::atomic::AtomicBool::new(false), std::sync::atomic::AtomicU64::new(0));
    let traffic = async {
        let mut failed = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match client.get(&sidecar.url("/orders/1")).await {
                Ok(r) if r.status == StatusCode::OK => {}
                other => failed.push(format!("{other:?}")),
            }
            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        failed
    };
    let failover = async {
        eventually("the survivor holds the sidecar", Duration::from_secs(10), || holds(survivor, "orders-1")).await;
        let via_both = warden_e2e::wardenctl(&format!("{},{}", replicas[on].url(), survivor.url()), &["status"]).await;
        assert_eq!(via_both.code, 0, "wardenctl skips the dead replica: {via_both:?}");
        let file = write_policy(dir.path(), "p.yaml", &policy("two").replace("    auth: keys\n", ""));
        json(survivor, &["apply", "-f", &file, "-o", "json"]).await;
        eventually("the sidecar serves what the survivor applied", Duration::from_secs(10), || async {
            client.get(&sidecar.url("/orders/1")).await.is_ok_and(|r| r.header("x-policy") == Some("two"))
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (failed, ()) = tokio::join!(traffic, failover);
    assert!(failed.is_empty(), "requests failed while the replica was down: {failed:?}");
    assert!(sent.load(std::sync::atomic::Ordering::Relaxed) > 10, "traffic kept flowing");
    let dead_only = warden_e2e::wardenctl(&replicas[on].url(), &["status"]).await;
    assert_eq!(dead_only.code, 3, "{dead_only:?}");
}

/// The database stopped under load: sidecars keep serving, the replicas stay ready and
/// keep streaming what they have (a sidecar that connects meanwhile gets the policy), an
/// apply fails within seconds with exit code 3 and a message naming the database, and
/// everything resumes by itself when the database is back.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_database_down_sidecars_keep_serving_and_changes_fail_clearly_until_it_is_back() {
    let (cluster, db) = postgres::Cluster::start().await;
    let (a, b) = (ControlPlane::on_database(&db.url).await, ControlPlane::on_database(&db.url).await);
    let dir = tempfile::tempdir().unwrap();
    let open = |tag: &str| policy(tag).replace("    auth: keys\n", "");
    let file = write_policy(dir.path(), "p.yaml", &open("one"));
    json(&a, &["apply", "-f", &file, "-o", "json"]).await;
    let app = App::start("orders-app").await;
    let first = orders_sidecar(&a.url(), app.addr, &dir.path().join("s1"), "orders-1", &[]).await;
    let client = Client::default();
    let serves = async |sidecar: &warden_e2e::Sidecar, tag: &str| {
        client.get(&sidecar.url("/orders/1")).await.is_ok_and(|r| r.header("x-policy") == Some(tag))
    };
    eventually("the sidecar serves v1", Duration::from_secs(10), || serves(&first, "one")).await;
    let http = Client::default();
    eventually("B serves v1 too (the change feed)", Duration::from_secs(10), || async {
        http.get(&b.http_url("/metrics"))
            .await
            .is_ok_and(|r| r.text().lines().any(|l| l == r#"warden_service_version{service="orders"} 1"#))
    })
    .await;

    cluster.stop();
    eventually("A reports its store down", Duration::from_secs(10), || async {
        http.get(&a.http_url("/healthz")).await.is_ok_and(|r| r.text().contains("store: DOWN (PostgreSQL at"))
    })
    .await;
    assert_eq!(
        http.get(&a.http_url("/readyz")).await.unwrap().status,
        StatusCode::OK,
        "still ready: it serves streams"
    );
    let metrics = http.get(&a.http_url("/metrics")).await.unwrap().text();
    assert!(metrics.lines().any(|l| l == "warden_store_up 0"), "{metrics}");
    let status = a.ctl(&["status"]).await;
    assert!(status.stdout.contains("store: DOWN"), "{status:?}");

    // Traffic, and a sidecar that connects now, are served from what the replicas hold.
    for _ in 0..20 {
        assert!(serves(&first, "one").await, "the sidecar keeps serving");
    }
    let second = orders_sidecar(&b.url(), app.addr, &dir.path().join("s2"), "orders-2", &[]).await;
    eventually("a sidecar connecting to B meanwhile gets v1", Duration::from_secs(10), || serves(&second, "one")).await;

    let file = write_policy(dir.path(), "p.yaml", &open("two"));
    let started = std::time::Instant::now();
    let refused = a.ctl(&["apply", "-f", &file]).await;
    let took = started.elapsed();
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("database") && refused.stderr.contains("PostgreSQL at 127.0.0.1:"), "{refused:?}");
    assert!(took < Duration::from_secs(10), "an apply against a dead database gave up after {took:?}");
    eprintln!("an apply with the database down failed after {took:?}");

    cluster.restart();
    eventually("A reports its store up again", Duration::from_secs(15), || async {
        http.get(&a.http_url("/healthz")).await.is_ok_and(|r| r.text().contains("store: up"))
    })
    .await;
    eventually("an apply through A succeeds again", Duration::from_secs(15), || async {
        a.ctl(&["apply", "-f", &file]).await.code == 0
    })
    .await;
    eventually("both sidecars get v2, whichever replica they follow", Duration::from_secs(10), || async {
        serves(&first, "two").await && serves(&second, "two").await
    })
    .await;
}
