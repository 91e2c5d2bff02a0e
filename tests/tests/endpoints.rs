//! Upstreams of several endpoints: balancing, passive outlier detection, retries and the
//! retry budget, with real processes killed and started again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use warden_e2e::process::{Proc, bin, field};
use warden_e2e::{App, Client, Sidecar, closed_port, eventually, wardenctl};

/// A `warden-demo-app` process answering as `name` (its JSON says which app answered).
async fn demo_app(name: &str, listen: &str) -> (Proc, String) {
    let mut cmd = Command::new(bin("warden-demo-app"));
    cmd.args(["--listen", listen, "--name", name]);
    let proc = Proc::spawn_command(name, cmd);
    let line = proc.wait_for("listening app=", Duration::from_secs(10)).await;
    let addr = field(&line, "app").expect("the app's address");
    (proc, addr)
}

/// A server that answers every request 503 and closes.
async fn always_503() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_killed_and_brought_back_mid_load_fails_no_request() {
    let (a, a_addr) = demo_app("a", "127.0.0.1:0").await;
    let (mut b, b_addr) = demo_app("b", "127.0.0.1:0").await;
    let (c, c_addr) = demo_app("c", "127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: orders
upstreams:
  pool:
    endpoints: [\"{a_addr}\", \"{b_addr}\", \"{c_addr}\"]
    outlier: {{ consecutive_failures: 1, base_ejection: 1s }}
routes:
  - name: pool
    match: {{ path_prefix: / }}
    upstream: pool
    retries: {{ attempts: 3, on: [connect-failure, reset, 5xx] }}
"
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &a_addr).await;
    let url = sidecar.url("/orders");

    let (stop, answered) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, answered, failed, url) = (stop.clone(), answered.clone(), failed.clone(), url.clone());
            tokio::spawn(async move {
                let client = Client::default();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).await {
                        Ok(r) if r.status == 200 => {
                            let app = r.json()["app"].as_str().unwrap_or_default().to_owned();
                            answered.lock().unwrap().push(app);
                        }
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let served_by = |app: &str| answered.lock().unwrap().iter().filter(|a| *a == app).count();
    eventually("b serves its share", Duration::from_secs(10), || async { served_by("b") >= 20 }).await;

    b.kill9();
    let before = answered.lock().unwrap().len();
    eventually("traffic goes on without b", Duration::from_secs(10), || async {
        answered.lock().unwrap().len() >= before + 200
    })
    .await;
    let config: serde_json::Value = Client::default().get(&sidecar.admin_url("/config")).await.unwrap().json();
    let b_health = &config["upstreams"][1]["endpoints"][1]["health"];
    assert!(b_health["ejections"].as_u64() >= Some(1), "b was ejected: {config:#}");
    let metrics = Client::default().get(&sidecar.admin_url("/metrics")).await.unwrap().text();
    let ejections = format!(r#"warden_upstream_ejections_total{{upstream="pool",endpoint="{b_addr}"}}"#);
    assert!(metrics.lines().any(|l| l.starts_with(&ejections)), "{metrics}");
    // explain, reading the running sidecar, says the same.
    let file = dir.path().join("p.yaml").to_string_lossy().into_owned();
    let admin = sidecar.admin.to_string();
    let out =
        wardenctl("http://127.0.0.1:1", &["explain", "-f", &file, "GET", "http://x/orders", "--sidecar", &admin]).await;
    assert!(out.stdout.contains("up to 3 attempts"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{b_addr} EJECTED for")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{a_addr} in rotation")), "{}", out.stdout);

    let (_b_again, _) = demo_app("b", &b_addr).await;
    let served_before = served_by("b");
    // Each ejection of a still-dead b lasted twice the one before: on a slow machine the
    // one running now may be long, so the wait starts from what is left of it.
    let config: serde_json::Value = Client::default().get(&sidecar.admin_url("/config")).await.unwrap().json();
    let left = config["upstreams"][1]["endpoints"][1]["health"]["ejected_for_ms"].as_u64().unwrap();
    let deadline = Duration::from_millis(left) + Duration::from_secs(15);
    eventually("b is back in rotation once its ejection ends", deadline, || async {
        served_by("b") >= served_before + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let total = answered.lock().unwrap().len();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed out of {total}");
    let mut by_app = BTreeMap::new();
    for app in answered.lock().unwrap().iter() {
        *by_app.entry(app.clone()).or_insert(0) += 1;
    }
    assert!(by_app.get("a") > Some(&20) && by_app.get("c") > Some(&20), "{by_app:?}");
    drop((a, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_sent_goes_to_another_endpoint_and_5xx_are_retried_where_the_route_says() {
    let good = App::start("good").await;
    let dead = format!("127.0.0.1:{}", closed_port());
    let bad = always_503().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: orders
upstreams:
  flaky: {{ endpoints: [\"{dead}\", \"{}\"], outlier: {{ consecutive_failures: 1000 }} }}
  half: {{ endpoints: [\"{bad}\", \"{}\"], outlier: {{ consecutive_failures: 1000 }} }}
routes:
  - {{ name: plain, match: {{ path_prefix: /plain }}, upstream: flaky }}
  - name: retried
    match: {{ path_prefix: /retried }}
    upstream: half
    retries: {{ attempts: 2, on: [503] }}
  - {{ name: not-retried, match: {{ path_prefix: /not-retried }}, upstream: half }}
  - name: post
    match: {{ path_prefix: /post }}
    upstream: half
    retries: {{ attempts: 2, on: [503] }}
",
        good.addr, good.addr
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &good.addr.to_string()).await;
    let client = Client::default();
    for _ in 0..20 {
        let r = client.get(&sidecar.url("/plain")).await.unwrap();
        assert_eq!(r.status, 200, "a connect that failed is tried on the other endpoint, with no retry policy");
        let r = client.get(&sidecar.url("/retried")).await.unwrap();
        assert_eq!(r.status, 200, "a 503 the route names is tried again on the other endpoint");
    }
    let statuses: Vec<u16> = futures_statuses(&client, &sidecar.url("/not-retried"), 20).await;
    assert!(statuses.contains(&503), "without retries a 503 reaches the client: {statuses:?}");
    let mut posts = Vec::new();
    for _ in 0..20 {
        let r = client.send(http::Method::POST, &sidecar.url("/post"), &[], "x".into()).await.unwrap();
        posts.push(r.status.as_u16());
    }
    assert!(posts.contains(&503), "a POST is not repeated unless the route says non_idempotent: {posts:?}");
}

async fn futures_statuses(client: &Client, url: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client.get(url).await.unwrap().status.as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_sees_retries_within_the_budget() {
    let app = App::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: orders
upstreams:
  down: {{ endpoints: [\"{}\"], retry_budget: {{ ratio: 20%, min_rate: 1/s }} }}
routes:
  - name: down
    match: {{ path_prefix: /fail }}
    upstream: down
    retries: {{ attempts: 3, on: [5xx] }}
",
        app.addr
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &app.addr.to_string()).await;
    let client = Client::default();
    let n = 300;
    for _ in 0..n {
        assert_eq!(client.get(&sidecar.url("/fail")).await.unwrap().status, 503);
    }
    let seen = app.requests().iter().filter(|s| s.path_and_query == "/fail").count();
    // Without a budget: 3 tries each, 900. With it: 20 % of 300 plus 1/s over the 20 s the
    // budget counts, at most.
    assert!(seen > n, "retries were made: {seen}");
    assert!(seen <= n + n / 5 + 20, "{seen} requests for {n}: over the budget");
    let config: serde_json::Value = client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    assert!(config["upstreams"][1]["retry_budget_exhausted"].as_u64() > Some(0), "{config:#}");
    let metrics = client.get(&sidecar.admin_url("/metrics")).await.unwrap().text();
    let value = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let retried = value(r#"warden_upstream_retries_total{upstream="down"}"#);
    assert_eq!(retried as usize, seen - n, "every retry counted");
    assert!(value(r#"warden_upstream_retry_budget_exhausted_total{upstream="down"}"#) > 0);
    let endpoint = format!(r#"warden_upstream_endpoint_outstanding{{upstream="down",endpoint="{}"}}"#, app.addr);
    assert_eq!(value(&endpoint), 0, "nothing outstanding once the answers are read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_address_of_a_name_is_an_endpoint_and_a_name_without_any_answers_503() {
    let app = App::start("app").await;
    let port = app.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: orders
upstreams:
  local: {{ endpoints: [\"localhost:{port}\"], dns_refresh: 1s }}
  nowhere: {{ endpoints: [\"nowhere.invalid:{port}\"] }}
routes:
  - {{ name: local, match: {{ path_prefix: /local }}, upstream: local }}
  - {{ name: nowhere, match: {{ path_prefix: /nowhere }}, upstream: nowhere }}
"
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &app.addr.to_string()).await;
    let client = Client::default();
    // The same resolver the sidecar asks.
    let mut want: Vec<String> =
        tokio::net::lookup_host(format!("localhost:{port}")).await.unwrap().map(|a| a.to_string()).collect();
    want.sort();
    want.dedup();
    let config: serde_json::Value = client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    let local = config["upstreams"].as_array().unwrap().iter().find(|u| u["name"] == "local").unwrap();
    let mut got: Vec<String> =
        local["endpoints"].as_array().unwrap().iter().map(|e| e["endpoint"].as_str().unwrap().to_owned()).collect();
    got.sort();
    assert_eq!(got, want, "one endpoint per address record");
    for _ in 0..10 {
        // Whichever address the app does not listen on is never sent anything, so tried again.
        assert_eq!(client.get(&sidecar.url("/local")).await.unwrap().status, 200);
    }

    let r = client.get(&sidecar.url("/nowhere")).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "no_endpoints");
    assert_eq!(config["version"], 1, "the policy was taken, not refused for a name that does not resolve");
}
