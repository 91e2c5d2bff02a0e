//! A policy's life: applied under traffic, refused by a sidecar, rolled back, and kept
//! across a `kill -9` of the control plane.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use warden_e2e::stack::{BASIC, MISSING_CA};
use warden_e2e::{ControlPlane, Resp, Stack, eventually};

fn tagged(n: u64) -> String {
    format!(
        "service: orders
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    response_headers: {{ set: {{ x-policy: \"{n}\" }} }}
"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_applies_while_a_client_keeps_sending_lose_no_request() {
    let s = Arc::new(Stack::start(&tagged(0)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (s, stop, ok, failed) = (s.clone(), stop.clone(), ok.clone(), failed.clone());
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match s.client.get(&s.sidecar.url("/orders/1")).await {
                    Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let mut last = 0;
    for n in 1..=50 {
        last = s.apply(&tagged(n)).await;
    }
    s.wait_for_version(last).await;
    let r = s.get("/orders/1").await;
    assert_eq!(r.header("x-policy"), Some("50"), "the last apply is in effect");
    stop.store(true, Ordering::Relaxed);
    for t in senders {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} requests succeeded across 50 applies");
    assert_eq!(failed, 0, "no request may fail across applies");
    assert!(ok > 50, "the client kept sending ({ok} requests)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_the_sidecar_cannot_use_is_nacked_and_the_old_one_keeps_serving() {
    let s = Stack::start(BASIC).await;
    // Valid for the control plane, but the CA file it names is not on the sidecar's host.
    let bad = format!("{BASIC}{MISSING_CA}");
    let v2 = s.apply(&bad).await;
    assert_eq!(v2, 2);

    s.wait_for_nack(v2, "billing-ca.pem").await;
    let out = s.cp.ctl(&["status", "-o", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let sc = &status["sidecars"][0];
    assert_eq!(sc["instance"], "orders-1");
    assert_eq!(sc["acked_version"], 1);
    assert_eq!(sc["current_version"], 2);
    assert_eq!(sc["in_sync"], false);
    let err = sc["nack_error"].as_str().unwrap();
    assert!(err.contains("/nonexistent/billing-ca.pem"), "the NACK says why: {err}");

    let table = s.cp.ctl(&["status"]).await;
    assert!(table.stdout.contains("v2: upstream 'billing'"), "{}", table.stdout);
    assert!(table.stdout.contains("behind"), "{}", table.stdout);

    // Still v1: /orders routes, /billing is not a route.
    assert_eq!(s.get("/orders").await.status, StatusCode::OK);
    assert_eq!(s.get("/billing").await.status, StatusCode::NOT_FOUND);
    let config = s.client.get(&s.sidecar.admin_url("/config")).await.unwrap().json();
    assert_eq!(config["version"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_restores_the_previous_behaviour() {
    let s = Stack::start(BASIC).await;
    let without_orders = "service: orders\nroutes:\n  - name: other\n    match: { path_prefix: /other }\n";
    let v2 = s.apply(without_orders).await;
    s.wait_for_version(v2).await;
    assert_eq!(s.get("/orders").await.status, StatusCode::NOT_FOUND);

    let out = s.cp.ctl(&["rollback", "orders"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("now v3"), "{}", out.stdout);
    s.wait_for_version(3).await;
    assert_eq!(s.get("/orders").await.status, StatusCode::OK);

    let h = s.cp.ctl(&["history", "orders", "-o", "json"]).await;
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    assert_eq!(h["versions"][0]["version"], 3);
    assert_eq!(h["versions"][0]["message"], "rollback to v1");
    assert_eq!(h["versions"][0]["content_hash"], h["versions"][2]["content_hash"]);

    // --to a version that does not exist is refused with exit code 1.
    let out = s.cp.ctl(&["rollback", "orders", "--to", "99"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no version 99"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_survives_kill_9_of_the_control_plane() {
    let mut s = Stack::start(BASIC).await;
    let v2 = s.apply(&tagged(2)).await;
    s.wait_for_version(v2).await;

    // kill -9 right after an acknowledged apply, then restart on the same store and port.
    let v3 = s.apply(&tagged(3)).await;
    s.cp.proc.kill9();
    let cp = ControlPlane::start(&s.cp.data_dir, &s.cp.addr.to_string()).await;
    s.cp = cp;

    let h = s.cp.ctl(&["history", "orders", "-o", "json"]).await;
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let versions: Vec<u64> = h["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [3, 2, 1]);
    let got = s.cp.ctl(&["get", "orders"]).await;
    assert_eq!(got.stdout, tagged(3));

    // The sidecar reconnects to the restarted control plane and ends on v3.
    s.wait_for_version(v3).await;
    assert_eq!(s.get("/orders").await.header("x-policy"), Some("3"));
    eventually("status shows the sidecar connected again", Duration::from_secs(10), || async {
        let out = s.cp.ctl(&["status", "-o", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["sidecars"][0]["connected"] == true && v["sidecars"][0]["acked_version"] == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_kept_alive_across_requests_and_policy_swaps() {
    let s = Stack::start(&tagged(1)).await;
    // One downstream connection of the test's own: a pooling client may open a second one
    // when it races its own pool, and each downstream connection may dial its own upstream.
    let tcp = tokio::net::TcpStream::connect(s.sidecar.proxy).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut get = async || {
        send.ready().await.unwrap();
        let req = http::Request::get("/orders/1").header("host", "x").body(Empty::<Bytes>::new()).unwrap();
        let (parts, body) = send.send_request(req).await.unwrap().into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Resp { status: parts.status, headers: parts.headers, body }
    };
    for _ in 0..20 {
        assert_eq!(get().await.status, StatusCode::OK);
    }
    let peers: std::collections::HashSet<_> = s.app.requests().iter().map(|r| r.peer).collect();
    assert_eq!(
        peers.len(),
        1,
        "20 sequential requests on one keep-alive connection used {} upstream connections",
        peers.len()
    );

    let v = s.apply(&tagged(2)).await;
    s.wait_for_version(v).await;
    let r = get().await;
    assert_eq!(r.header("x-policy"), Some("2"));
    assert!(peers.contains(&s.app.last().peer), "the warm connection survived the policy swap");
}
