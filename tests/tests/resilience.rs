//! What happens when things die: the control plane goes away, the sidecar restarts
//! without it, and the sidecar is told to stop while requests are in flight.

use std::time::Duration;

use http::StatusCode;
use prost::Message;
use warden_e2e::stack::{BASIC, orders_sidecar};
use warden_e2e::{Stack, eventually};
use warden_proto::v1::ApplyRequest;
use warden_proto::v1::admin_service_client::AdminServiceClient;

#[tokio::test(flavor = "multi_thread")]
async fn the_sidecar_keeps_serving_when_the_control_plane_dies() {
    let mut s = Stack::start(BASIC).await;
    s.cp.proc.kill9();
    eventually("the sidecar sees the control plane gone", Duration::from_secs(10), || async {
        s.get_admin("/metrics").await.contains(r#"warden_control_plane_connected{service="orders"} 0"#)
    })
    .await;
    for i in 0..50 {
        let r = s.get(&format!("/orders/{i}")).await;
        assert_eq!(r.status, StatusCode::OK, "request {i} after the control plane died");
    }
    assert_eq!(s.client.get(&s.sidecar.admin_url("/readyz")).await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_restarted_while_the_control_plane_is_down_serves_the_last_known_good_policy() {
    let mut s = Stack::start(BASIC).await;
    s.wait_for_ack(1).await;
    s.cp.proc.kill9();
    s.sidecar.proc.kill9();

    let state = s.dir.path().join("state");
    let sidecar = orders_sidecar(&s.cp.url(), s.app.addr, &state, "orders-1", &[]).await;
    let r = s.client.get(&sidecar.url("/orders/after-restart")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.app.last().path_and_query, "/orders/after-restart");
    let config = s.client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    assert_eq!(config["origin"], "disk");
    assert_eq!(config["version"], 1);
    assert_eq!(s.client.get(&sidecar.admin_url("/readyz")).await.unwrap().status, StatusCode::OK);
}

/// BASIC, made a new version by its comment.
fn burst_policy(n: u64) -> String {
    BASIC.replace("service: orders", &format!("# burst {n}\nservice: orders"))
}

/// A new sidecar on the stack's state dir (the control plane dead): where its policy
/// came from and which version it serves.
async fn served_after_restart(s: &Stack) -> (Option<String>, Option<u64>) {
    let sidecar = orders_sidecar(&s.cp.url(), s.app.addr, &s.dir.path().join("state"), "orders-1", &[]).await;
    let config = match s.client.get(&sidecar.admin_url("/config")).await {
        Ok(r) => r.json(),
        Err(e) => panic!("/config: {e}"),
    };
    (config["origin"].as_str().map(str::to_owned), config["version"].as_u64())
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_burst_of_applies_the_last_acked_version_is_the_one_on_disk() {
    let mut s = Stack::start(BASIC).await;
    // Faster than the sidecar writes its state file (at most every 100 ms): the writes
    // coalesce, and what a restart finds must still be the newest ACKed version.
    let mut last = 0;
    for i in 0..12 {
        last = s.apply(&burst_policy(i)).await;
    }
    s.wait_for_ack(last).await;
    s.cp.proc.kill9();
    s.sidecar.proc.kill9();
    assert_eq!(served_after_restart(&s).await, (Some("disk".into()), Some(last)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_stopped_right_after_a_burst_of_applies_restarts_with_what_it_served() {
    let mut s = Stack::start(BASIC).await;
    let file = s.dir.path().join("state").join("orders.snapshot.pb");
    let on_disk = || {
        let bytes = std::fs::read(&file).expect("the state file");
        warden_proto::v1::Snapshot::decode(bytes.as_slice()).expect("a snapshot").version
    };
    // Straight to the admin API, faster than the sidecar writes (at most every 100 ms),
    // until the sidecar serves a version its state file does not hold yet.
    let mut admin = AdminServiceClient::connect(s.cp.url()).await.unwrap();
    let mut n = 0;
    let served = loop {
        n += 1;
        assert!(n < 200, "never caught a served version ahead of the state file");
        let req = ApplyRequest { file_name: "p.yaml".into(), source: burst_policy(n), ..Default::default() };
        let version = admin.apply(req).await.unwrap().into_inner().results[0].version;
        s.wait_for_version(version).await;
        if on_disk() < version {
            break version;
        }
    };
    // SIGTERM writes what is served before the sidecar exits.
    s.sidecar.proc.terminate();
    s.sidecar.proc.wait_exit(Duration::from_secs(10)).await.expect("the sidecar exits");
    assert_eq!(on_disk(), served, "written on the way out");
    s.cp.proc.kill9();
    assert_eq!(served_after_restart(&s).await, (Some("disk".into()), Some(served)));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish() {
    let policy = "service: orders\nroutes:\n  - name: all\n    timeout: 10s\n";
    let mut s = Stack::start(policy).await;
    // Several at once: slow answers, and a long streamed body (1,500 chunks, ~2 s).
    let mut in_flight = Vec::new();
    for path in ["/slow/1500", "/slow/1200", "/stream/1500", "/slow/800"] {
        let (client, url) = (warden_e2e::Client::default(), s.sidecar.url(path));
        in_flight.push(tokio::spawn(async move { client.get(&url).await }));
    }
    eventually("the app has all four requests", Duration::from_secs(5), || async { s.app.requests().len() == 4 }).await;

    s.sidecar.proc.terminate();
    eventually("unready while draining", Duration::from_secs(5), || async {
        s.client.get(&s.sidecar.admin_url("/readyz")).await.is_ok_and(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;

    // New connections are no longer accepted: readiness turns first, then each worker
    // drops its listening socket.
    eventually("the listener is closed", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(s.sidecar.proxy).await.is_err()
    })
    .await;
    for task in in_flight {
        let r = task.await.unwrap().expect("every in-flight request completes");
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.len() == 1500 * 1024 || r.body.len() < 1024, "whole bodies: {}", r.body.len());
    }
    let exit = s.sidecar.proc.wait_exit(Duration::from_secs(10)).await.expect("the sidecar exits after draining");
    assert!(exit.success(), "{exit:?}");
}
