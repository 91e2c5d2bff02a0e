//! Several control-plane replicas on one PostgreSQL: any replica serves any sidecar and
//! any `wardenctl`, and a change made through one reaches sidecars connected to the
//! others (the change feed, LISTEN/NOTIFY). The database is a real PostgreSQL
//! (`warden_e2e::postgres`).

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::stack::{GLOBAL, orders_sidecar};
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
    eventually("A's top shows the traffic B's sidecar reported", Duration::from_secs(15), || async {
        let _ = get(&key).await;
        json(&a, &["top", "-o", "json"]).await["routes"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| r["sidecar"] == "orders-1" && r["route"] == "orders" && r["rps"].as_f64() > Some(0.0))
        })
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

/// Whether `cp` says (on `/metrics`) that it is the evaluator.
async fn evaluates(cp: &ControlPlane) -> bool {
    let metrics = Client::default().get(&cp.http_url("/metrics")).await.map(|r| r.text()).unwrap_or_default();
    metrics.lines().any(|l| l == "warden_control_plane_evaluator 1")
}

/// One replica is the evaluator (the canary's automatic abort will run there) and every
/// replica's `status` names it; when it dies, another takes its place.
#[tokio::test(flavor = "multi_thread")]
async fn one_replica_is_the_evaluator_and_another_takes_over_when_it_dies() {
    let db = postgres::database().await;
    let mut replicas = Vec::new();
    for name in ["cp-0", "cp-1", "cp-2"] {
        let args = ["--database-url", db.url.as_str(), "--replica-name", name];
        replicas.push((name, ControlPlane::start_with(std::path::Path::new(""), "127.0.0.1:0", &args).await));
    }
    // The one replica that evaluates, if exactly one does and every replica names it.
    let elected = async |replicas: &[(&'static str, ControlPlane)]| -> Option<&'static str> {
        let mut leading = Vec::new();
        for (name, cp) in replicas {
            if evaluates(cp).await {
                leading.push(*name);
            }
        }
        let [one] = leading[..] else { return None };
        for (_, cp) in replicas {
            if json(cp, &["status", "-o", "json"]).await["evaluator"]["replica"] != one {
                return None;
            }
        }
        Some(one)
    };
    eventually("exactly one evaluator, named by every replica", Duration::from_secs(15), || async {
        elected(&replicas).await.is_some()
    })
    .await;
    let first = elected(&replicas).await.expect("still one evaluator");
    let at = replicas.iter().position(|(name, _)| *name == first).unwrap();
    let (_, mut dead) = replicas.remove(at);
    dead.proc.kill9();
    eventually("a surviving replica takes over", Duration::from_secs(15), || async {
        elected(&replicas).await.is_some_and(|now| now != first)
    })
    .await;
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

/// A global quota holds when the sidecars sharing it are on different replicas: the
/// replicas exchange demand through the database, so each sidecar's share is of the whole
/// fleet's demand (the same bound as on one replica, `rate_limits.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn a_global_quota_holds_across_sidecars_on_different_replicas() {
    let db = postgres::database().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(ControlPlane::on_database(&db.url).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "p.yaml", GLOBAL);
    json(&replicas[0], &["apply", "-f", &file, "-o", "json"]).await;
    let key =
        json(&replicas[1], &["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let app = App::start("orders-app").await;
    let mut sidecars = Vec::new();
    for (i, cp) in replicas.iter().enumerate() {
        let state = dir.path().join(format!("s{i}"));
        sidecars.push(orders_sidecar(&cp.url(), app.addr, &state, &format!("orders-{i}"), &[]).await);
    }
    let client = Client::default();
    let call = async |sidecar: &warden_e2e::Sidecar, path: &str| {
        let r = client.send(http::Method::GET, &sidecar.url(path), &[("x-api-key", &key)], Default::default()).await;
        r.map(|r| r.status).ok()
    };
    for sc in &sidecars {
        eventually("every sidecar has the key", Duration::from_secs(10), || async {
            call(sc, "/api/warm").await.is_some_and(|s| s != StatusCode::UNAUTHORIZED)
        })
        .await;
    }
    // Each replica holds one sidecar, yet every sidecar learns the quota is split three ways.
    let peek = format!("/limits/peek?limit=shared&key={}", hex::encode("acme"));
    for sc in &sidecars {
        eventually("the sidecar knows it is one of 3, across replicas", Duration::from_secs(10), || async {
            let text = client.get(&sc.admin_url(&peek)).await.map(|r| r.text()).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            v["share"].as_f64().is_some_and(|f| (f - 1.0 / 3.0).abs() < 1e-9)
        })
        .await;
    }
    // The warm-up requests drained out of every bucket: each holds its whole burst again.
    for sc in &sidecars {
        eventually("the sidecar's bucket is full again", Duration::from_secs(10), || async {
            let text = client.get(&sc.admin_url(&peek)).await.map(|r| r.text()).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            v["remaining"].as_u64().is_some_and(|r| Some(r) == v["burst"].as_u64())
        })
        .await;
    }
    // 100 requests/s offered (10x the quota of 10/s), spread 70/20/10 over the three
    // replicas' sidecars, for 5 s.
    let mut tasks = Vec::new();
    for (sc, rate) in sidecars.iter().zip([70u64, 20, 10]) {
        let (client, url, key) = (client.clone(), sc.url("/api/x"), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let mut ok = 0u64;
            while tokio::time::Instant::now() < deadline {
                tick.tick().await;
                let r = client.send(http::Method::GET, &url, &[("x-api-key", &key)], Default::default()).await;
                ok += u64::from(r.is_ok_and(|r| r.status == StatusCode::OK));
            }
            ok
        }));
    }
    let mut admitted = Vec::new();
    for t in tasks {
        admitted.push(t.await.unwrap());
    }
    let total: u64 = admitted.iter().sum();
    // One limiter would admit 5 (burst) + 5 s x 10/s = 55; three replicas each dividing
    // the quota among their own sidecars only, ~150.
    assert!((40..=70).contains(&total), "admitted {admitted:?} = {total}, want about 55");
}

/// `copy-store` moves a SQLite store to PostgreSQL: every version, key, secret, sidecar
/// record, denial and mark, verified; a replica on the copy serves the same fleet, and the keys
/// still work. A second copy into the now non-empty database is refused.
#[tokio::test(flavor = "multi_thread")]
async fn copy_store_moves_everything_from_sqlite_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = format!("sqlite://{}/warden.db", dir.path().display());
    let mut old = ControlPlane::on_database(&file_url).await;
    let app = App::start("orders-app").await;
    for tag in ["one", "two"] {
        let file = write_policy(dir.path(), "p.yaml", &policy(tag));
        json(&old, &["apply", "-f", &file, "-o", "json"]).await;
    }
    let billing =
        write_policy(dir.path(), "b.yaml", "service: billing\nroutes:\n  - name: all\n    match: { path_prefix: / }\n");
    json(&old, &["apply", "-f", &billing, "-o", "json"]).await;
    let kept = json(&old, &["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
    let gone = json(&old, &["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
    json(&old, &["keys", "revoke", gone["id"].as_str().unwrap(), "-o", "json"]).await;
    let secret = write_policy(dir.path(), "s.secret", "whsec_1\n");
    assert_eq!(old.ctl(&["secrets", "set", "stripe", "--from-file", &secret]).await.code, 0);
    let sidecar = orders_sidecar(&old.url(), app.addr, &dir.path().join("s"), "orders-1", &[]).await;
    let client = Client::default();
    let key = kept["key"].as_str().unwrap().to_owned();
    eventually("a refusal reaches the deny log", Duration::from_secs(10), || async {
        let _ = client.get(&sidecar.url("/orders/no-key")).await;
        json(&old, &["denials", "-o", "json"]).await["denials"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    // No report may land after the deny log is read: the sidecar goes first, and the log
    // is read once two reads agree (a batch received just before may still be stored).
    drop(sidecar);
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    eventually("the deny log stops growing", Duration::from_secs(10), || async {
        let now = json(&old, &["denials", "-o", "json"]).await;
        let settled = *last.lock().unwrap() == now;
        *last.lock().unwrap() = now;
        settled
    })
    .await;
    // A reviewer's mark comes along with the deny log.
    let groups = json(&old, &["denials", "--group", "-o", "json"]).await;
    let group = groups["groups"][0]["group"].as_str().unwrap().to_owned();
    let marked = old.ctl(&["denials", "mark", &group, "--as", "expected", "--note", "no key, no entry"]).await;
    assert_eq!(marked.code, 0, "{marked:?}");
    let before = (
        json(&old, &["history", "orders", "-o", "json"]).await,
        json(&old, &["keys", "list", "-o", "json"]).await,
        last.into_inner().unwrap(),
        json(&old, &["denials", "--group", "-o", "json"]).await,
    );
    old.proc.kill9();

    let db = postgres::database().await;
    let copy = |to: String| {
        let (from, dir) = (file_url.clone(), dir.path().to_owned());
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(warden_e2e::process::bin("warden-control-plane"))
                    .args(["copy-store", "--from", &from, "--to", &to])
                    .current_dir(dir)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = copy(db.url.clone()).await;
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&report["services"], &report["versions"], &report["keys"], &report["secrets"], &report["verified"]),
        (&2.into(), &3.into(), &2.into(), &1.into(), &true.into()),
        "{report}"
    );
    assert!(report["sidecars"].as_u64() >= Some(1) && report["denials"].as_u64() >= Some(1), "{report}");
    assert_eq!(report["marks"], 1, "{report}");

    let new = ControlPlane::on_database(&db.url).await;
    assert_eq!(json(&new, &["history", "orders", "-o", "json"]).await, before.0, "the same history");
    assert_eq!(json(&new, &["keys", "list", "-o", "json"]).await, before.1, "the same keys");
    assert_eq!(json(&new, &["denials", "-o", "json"]).await, before.2, "the same deny log");
    let groups = json(&new, &["denials", "--group", "-o", "json"]).await;
    assert_eq!(groups, before.3, "the same groups, with their mark");
    assert_eq!(groups["groups"][0]["mark"]["note"], "no key, no entry");
    let status = new.ctl(&["status"]).await;
    assert!(status.stdout.contains("orders-1"), "the sidecar records came along: {status:?}");
    // The sidecar moves over: its key still opens the door, the revoked one does not.
    let moved = orders_sidecar(&new.url(), app.addr, &dir.path().join("s2"), "orders-2", &[]).await;
    let with = async |k: &str| {
        client
            .send(http::Method::GET, &moved.url("/orders/1"), &[("x-api-key", k)], Default::default())
            .await
            .map(|r| r.status)
    };
    eventually("the copied key works on the new store", Duration::from_secs(10), || async {
        with(&key).await.is_ok_and(|s| s == StatusCode::OK)
    })
    .await;
    assert_eq!(with(gone["key"].as_str().unwrap()).await.unwrap(), StatusCode::UNAUTHORIZED);

    let again = copy(db.url.clone()).await;
    assert!(!again.status.success(), "a copy into a store that holds policy is refused: {again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"), "{again:?}");
}
