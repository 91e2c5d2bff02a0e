//! An upgrade in place: a sidecar of this release, given the `--state-dir` a 0.1 sidecar
//! left behind (the pinned fixtures in policy/tests/fixtures/v0.1) and no control plane to
//! reach, serves that snapshot and those credentials, as it would after a node restart.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, eventually};

/// The API key in the pinned credentials.
const KEY: &str = "wdn_0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_serves_the_state_0_1_left_on_disk() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/tests/fixtures/v0.1");
    let state = tempfile::tempdir().unwrap();
    for f in ["orders.snapshot.pb", "orders.credentials.pb"] {
        std::fs::copy(fixtures.join(f), state.path().join(f)).unwrap();
    }
    let app = App::start("orders-app").await;
    // Nothing listens on port 1: the control plane is down for the whole test.
    let sidecar = orders_sidecar("http://127.0.0.1:1", app.addr, state.path(), "orders-1", &[]).await;
    let client = Client::default();
    eventually("ready from disk", Duration::from_secs(10), || async {
        client.get(&sidecar.admin_url("/readyz")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
    let config = client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    assert_eq!((config["version"].as_u64(), config["origin"].as_str()), (Some(7), Some("disk")), "{config}");
    assert_eq!(config["credentials"]["revision"], 12, "{config}");

    let get = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let (client, url) = (client.clone(), sidecar.url(path));
        async move {
            let mut h: Vec<(&str, &str)> = vec![("host", "api.example.com")];
            h.extend(headers);
            client.send(http::Method::GET, &url, &h, bytes::Bytes::new()).await.unwrap().status
        }
    };
    assert_eq!(get("/healthz", vec![]).await, StatusCode::OK);
    assert_eq!(get("/api/v1/orders", vec![]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get("/api/v1/orders", vec![("x-api-key", KEY)]).await, StatusCode::OK, "0.1's key still opens");
    assert_eq!(app.last().path_and_query, "/v2/orders", "and 0.1's rewrite still applies");
}
