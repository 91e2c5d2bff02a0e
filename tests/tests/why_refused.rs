//! `wardenctl explain --request-id`: a refused request, found by the id its caller was
//! given, replayed step by step through the version that refused it and the current one,
//! with the routes it nearly matched.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::{Stack, eventually};

const V1: &str = "service: orders
routes:
  - name: write
    match: { path_prefix: /orders, methods: [POST] }
  - name: partner
    match: { path_prefix: /orders, headers: { x-partner: \"yes\" } }
    auth: keys
  - name: list
    match: { path: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

async fn explain(s: &Stack, id: &str) -> (i32, serde_json::Value) {
    let out = s.cp.ctl(&["explain", "--request-id", id, "-o", "json"]).await;
    (out.code, serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_explained_by_its_id_through_the_version_that_refused_it_and_the_current_one() {
    let s = Stack::start(V1).await;
    let refused = s.client.send(http::Method::DELETE, &s.sidecar.url("/orders/7"), &[], Default::default()).await;
    let refused = refused.unwrap();
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let id = refused.header("x-request-id").unwrap().to_owned();
    let unauthenticated = s.get_with("/orders/8", &[("x-partner", "yes")]).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let id_401 = unauthenticated.header("x-request-id").unwrap().to_owned();

    eventually("the deny records reached the control plane", Duration::from_secs(10), || async {
        explain(&s, &id).await.0 == 0 && explain(&s, &id_401).await.0 == 0
    })
    .await;
    // DELETE is taken nowhere: no route; two routes nearly took it.
    let v = s.apply(&V1.replace("methods: [POST]", "methods: [POST, DELETE]")).await;
    s.wait_for_version(v).await;
    let (_, out) = explain(&s, &id).await;
    let m = &out["matches"][0];
    assert_eq!(
        (m["code"].as_str(), m["policy_version"].as_u64(), m["method"].as_str()),
        (Some("no_route"), Some(1), Some("DELETE")),
        "{out}"
    );
    let then = &m["replays"][0];
    assert_eq!(then["version"], 1);
    assert!(then["decision"].as_str().unwrap().starts_with("DENY 404 no_route"), "{then}");
    let misses = then["near_misses"].to_string();
    assert!(misses.contains("route 'write'") && misses.contains("POST"), "{misses}");
    assert!(misses.contains("route 'partner'") && misses.contains("x-partner: yes"), "{misses}");
    assert!(then["steps"].as_array().unwrap().iter().any(|st| st["step"] == "route 1"), "each route tried: {then}");
    let now = &m["replays"][1];
    assert_eq!(
        (now["version"].as_u64(), now["decision"].as_str()),
        (Some(2), Some("FORWARD via route 'write'")),
        "{now}"
    );

    // An auth refusal: the credential is never kept, so it is told as recorded.
    let (_, out) = explain(&s, &id_401).await;
    let then = &out["matches"][0]["replays"][0];
    let decision = then["decision"].as_str().unwrap();
    assert!(decision.starts_with("DENY 401 credential_missing (rule keys) as recorded"), "{decision}");

    let (code, _) = explain(&s, "no-such-request").await;
    assert_eq!(code, 1, "an id the deny log does not have is refused");
}
