//! Decision samples: a sidecar under a known traffic mix reports a sample of its requests
//! to the control plane; a route with 1 % of the traffic is represented, the weights add
//! up to the traffic, no credential is ever kept, and deny records carry the policy
//! version and the same head fields.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use warden_e2e::{Stack, eventually};

const POLICY: &str = "service: orders
routes:
  - name: tenants
    match: { path_prefix: /t, headers: { x-tenant: acme } }
    auth: keys
    limits: [per-region]
  - name: busy
    match: { path_prefix: /busy }
  - name: rare
    match: { path_prefix: /rare }
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  per-region: { key: \"header:x-region\", rate: 1000/s, burst: 1000 }
";

const BUSY: usize = 990;
const RARE: usize = 10;

async fn samples(s: &Stack) -> serde_json::Value {
    let out = s.cp.ctl(&["samples", "--service", "orders", "-n", "100000", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn of_route<'a>(all: &'a serde_json::Value, route: &str) -> Vec<&'a serde_json::Value> {
    all["samples"].as_array().unwrap().iter().filter(|s| s["route"] == route).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_traffic_mix_is_sampled_by_route_with_weights_and_no_credential() {
    let s = Stack::start(POLICY).await;
    let created = s.cp.ctl(&["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
    let created: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let (key, key_id) = (created["key"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned());

    // 99 % on one route, 1 % on another, sent as fast as eight clients can.
    let paths: Vec<String> =
        (0..BUSY).map(|i| format!("/busy/{i}")).chain((0..RARE).map(|i| format!("/rare/{i}"))).collect();
    let mut clients = tokio::task::JoinSet::new();
    for chunk in paths.chunks(paths.len().div_ceil(8)) {
        let (client, urls) = (s.client.clone(), chunk.iter().map(|p| s.sidecar.url(p)).collect::<Vec<_>>());
        clients.spawn(async move {
            let mut ok = 0;
            for url in urls {
                ok += usize::from(client.get(&url).await.unwrap().status == StatusCode::OK);
            }
            ok
        });
    }
    let sent: Vec<usize> = clients.join_all().await;
    assert_eq!(sent.iter().sum::<usize>(), BUSY + RARE);
    // Credentials on an authenticated route: kept by name only.
    let secret_headers = [("authorization", "Bearer very-secret-token"), ("cookie", "session=very-secret-cookie")];
    for _ in 0..3 {
        let mut headers = vec![("x-tenant", "acme"), ("x-region", "eu"), ("x-api-key", key.as_str())];
        headers.extend(secret_headers);
        assert_eq!(s.get_with("/t/1", &headers).await.status, StatusCode::OK);
        let refused = s
            .get_with("/t/2", &[("x-tenant", "acme"), ("x-region", "eu"), ("cookie", "session=very-secret-cookie")])
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }

    let complete = |all: &serde_json::Value| {
        let weight = |route: &str| of_route(all, route).iter().map(|x| x["weight"].as_f64().unwrap()).sum::<f64>();
        (weight("busy") - BUSY as f64).abs() < 0.5
            && (weight("rare") - RARE as f64).abs() < 0.5
            && of_route(all, "tenants").len() == 6
    };
    eventually("every request's samples reached the control plane", Duration::from_secs(15), || async {
        complete(&samples(&s).await)
    })
    .await;
    let all = samples(&s).await;
    let busy = of_route(&all, "busy");
    assert!(busy.len() < BUSY / 4, "the busy route is sampled, not copied: {} samples", busy.len());
    assert_eq!(of_route(&all, "rare").len(), RARE, "a route with 1 % of the traffic keeps all of it");
    assert!(busy.iter().any(|x| x["weight"].as_f64() > Some(1.0)), "drawn samples stand for several requests");
    // Sampled as decided: a forwarded request's status is the app's to give, not known yet.
    assert!(busy.iter().all(|x| x["decision"] == "forward" && x["policy_version"] == 1 && x["status"] == 0));

    let tenants = of_route(&all, "tenants");
    let passed: Vec<_> = tenants.iter().filter(|x| x["decision"] == "forward").collect();
    assert_eq!(passed.len(), 3);
    for x in &passed {
        assert_eq!((x["client_id"].as_str(), x["auth_provider"].as_str()), (Some("acme"), Some("keys")), "{x}");
        assert_eq!(x["key_id"], key_id.as_str());
        assert_eq!(x["headers"], serde_json::json!([["x-region", "eu"], ["x-tenant", "acme"]]), "{x}");
        let mut names: Vec<&str> =
            x["credential_headers"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "cookie", "x-api-key"]);
    }
    let refused = tenants.iter().find(|x| x["decision"] == "deny").unwrap();
    assert_eq!(
        (refused["code"].as_str(), refused["status"].as_u64()),
        (Some("credential_missing"), Some(401)),
        "{refused}"
    );

    // Deny records: the version that refused and the head fields.
    let out = s.cp.ctl(&["denials", "--service", "orders", "-o", "json"]).await;
    let denials: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let d = &denials["denials"][0];
    assert_eq!((d["policy_version"].as_u64(), d["route"].as_str()), (Some(1), Some("tenants")), "{d}");
    assert_eq!(d["headers"], serde_json::json!([["x-region", "eu"], ["x-tenant", "acme"]]));

    // No value of a credential anywhere the control plane keeps or shows.
    let everything = format!("{all}{denials}");
    for secret in [key.as_str(), "very-secret-token", "very-secret-cookie"] {
        assert!(!everything.contains(secret), "{secret} was kept");
    }
}
