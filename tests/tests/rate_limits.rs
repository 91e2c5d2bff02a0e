//! Rate limits through a real sidecar: per address (behind a trusted proxy), per client
//! and plan (API keys), per header and per route; the 429 body and headers; dry run;
//! counters that survive 50 applies; and `explain --sidecar` reading a live budget.

use std::time::Duration;

use http::StatusCode;
use warden_e2e::stack::GLOBAL;
use warden_e2e::{Resp, Stack, eventually};

const POLICY: &str = "service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
routes:
  - name: login
    match: { path_prefix: /login }
    limits: [login-per-ip]
  - name: api
    match: { path_prefix: /api }
    auth: keys
    limits: [per-plan]
  - name: partner
    match: { path_prefix: /partner }
    limits: [per-partner, partner-total]
  - name: public
    match: { path_prefix: /public }
    limits: [public]
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  login-per-ip: { key: client_ip, rate: 5/min }
  per-plan: { key: client_id, plans: { free: 3/min, pro: 10/min }, default: 1/min }
  per-partner: { key: \"header:x-partner-id\", rate: 2/hour }
  partner-total: { key: route, rate: 3/hour }
  public: { key: client_ip, rate: 1/hour, mode: dry_run }
";

async fn from(s: &Stack, path: &str, ip: &str) -> Resp {
    s.get_with(path, &[("x-forwarded-for", ip)]).await
}

fn statuses(rs: &[Resp]) -> Vec<u16> {
    rs.iter().map(|r| r.status.as_u16()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_address_gets_its_own_budget_and_a_429_that_says_when_to_retry() {
    let s = Stack::start(POLICY).await;
    let mut rs = Vec::new();
    for _ in 0..6 {
        rs.push(from(&s, "/login", "198.51.100.7").await);
    }
    assert_eq!(statuses(&rs), [200, 200, 200, 200, 200, 429]);
    assert_eq!(rs[0].header("ratelimit-policy"), Some("\"login-per-ip\";q=5;w=60"));
    assert_eq!(rs[0].header("ratelimit"), Some("\"login-per-ip\";r=4;t=12"), "an admitted response says what is left");
    let r = &rs[5];
    let e = &r.json()["error"];
    assert_eq!(e["code"], "rate_limited");
    assert_eq!(e["rule"], "login-per-ip");
    assert_eq!(e["route"], "login");
    assert_eq!(e["message"], "Address 198.51.100.7 reached its limit of 5 requests per minute. Retry in 12 s.");
    assert_eq!(r.header("retry-after"), Some("12"));
    assert_eq!(r.header("ratelimit"), Some("\"login-per-ip\";r=0;t=60"));
    assert_eq!(r.header("x-warden-denied-by"), Some("login-per-ip"));
    assert!(r.header("proxy-status").is_some_and(|p| p.contains("error=http_request_denied")));
    assert_eq!(s.app.requests().len(), 5, "the refused request never reached the app");

    assert_eq!(from(&s, "/login", "198.51.100.8").await.status, StatusCode::OK, "another address has its own");
    assert_eq!(
        from(&s, "/login", "::ffff:198.51.100.7").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "same client as v4-mapped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plans_set_each_clients_quota() {
    let s = Stack::start(POLICY).await;
    let (free, _) = s.create_key("acme", &["--plan", "free"]).await;
    let (pro, _) = s.create_key("globex", &["--plan", "pro"]).await;
    let (none, _) = s.create_key("initech", &[]).await;
    eventually("the keys reach the sidecar", Duration::from_secs(5), || async {
        s.get_with("/api/x", &[("x-api-key", &none)]).await.status == StatusCode::OK
    })
    .await;
    let burst = |key: String, n: usize| {
        let s = &s;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(s.get_with("/api/x", &[("x-api-key", &key)]).await);
            }
            out
        }
    };
    let rs = burst(free.clone(), 4).await;
    assert_eq!(statuses(&rs), [200, 200, 200, 429]);
    assert_eq!(
        rs[3].json()["error"]["message"],
        "Client 'acme' reached its limit of 3 requests per minute. Retry in 20 s."
    );
    assert_eq!(statuses(&burst(pro, 11).await)[9..], [200, 429], "pro gets 10");
    assert_eq!(statuses(&burst(none, 1).await), [429], "no plan: the default (1/min, already used)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_uses_up_no_other_limit_and_dry_run_denies_nothing() {
    let s = Stack::start(POLICY).await;
    let partner = |id: &'static str| {
        let s = &s;
        async move { s.get_with("/partner/x", &[("x-partner-id", id)]).await.status.as_u16() }
    };
    // per-partner allows 2 per partner; partner-total 3 for the route.
    assert_eq!([partner("a").await, partner("a").await, partner("a").await], [200, 200, 429]);
    assert_eq!(partner("b").await, 200, "the third refusal did not use the route's budget");
    let r = s.get_with("/partner/x", &[("x-partner-id", "c")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"]["rule"], "partner-total");
    assert_eq!(
        r.json()["error"]["message"],
        "Route 'partner' reached its limit of 3 requests per hour. Retry in 1200 s."
    );

    for _ in 0..3 {
        assert_eq!(from(&s, "/public", "192.0.2.9").await.status, StatusCode::OK, "dry run never refuses");
    }
    // The access log names the rule and the reason of what dry run would have refused.
    let line = s
        .sidecar
        .proc
        .wait_for_json("would-deny access log line", Duration::from_secs(5), |v| v["decision"] == "would_deny")
        .await;
    assert_eq!((line["code"].as_str(), line["route"].as_str()), (Some("rate_limited"), Some("public")), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_survive_fifty_applies_until_the_limit_itself_changes() {
    let s = Stack::start(POLICY).await;
    for _ in 0..3 {
        assert_eq!(from(&s, "/login", "203.0.113.5").await.status, StatusCode::OK);
    }
    let mut version = 1;
    for i in 0..50 {
        let policy = POLICY.replace(
            "  - name: api\n",
            &format!("  - name: api\n    response_headers: {{ set: {{ x-rev: \"{i}\" }} }}\n"),
        );
        version = s.apply(&policy).await;
    }
    s.wait_for_version(version).await;
    let rs = [
        from(&s, "/login", "203.0.113.5").await,
        from(&s, "/login", "203.0.113.5").await,
        from(&s, "/login", "203.0.113.5").await,
    ];
    assert_eq!(statuses(&rs), [200, 200, 429], "the 3 requests before the applies still count");

    let changed = POLICY.replace("rate: 5/min }", "rate: 6/min }");
    let v = s.apply(&changed).await;
    s.wait_for_version(v).await;
    assert_eq!(from(&s, "/login", "203.0.113.5").await.status, StatusCode::OK, "a new definition starts afresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_reads_the_remaining_budget_from_a_running_sidecar() {
    let s = Stack::start(POLICY).await;
    for _ in 0..2 {
        from(&s, "/login", "198.51.100.20").await;
    }
    let admin = s.sidecar.admin.to_string();
    let args = ["explain", "--service", "orders", "GET", "/login", "-H", "x-forwarded-for: 198.51.100.20"];
    let out = s.cp.ctl(&args).await;
    assert!(out.stdout.contains("login-per-ip: Address 198.51.100.20, 5/min burst 5; budget not evaluated"), "{out:?}");
    let out = s.cp.ctl(&[&args[..], &["--sidecar", &admin]].concat()).await;
    assert!(out.stdout.contains(&format!("3 left at {admin}")), "{out:?}");
    for _ in 0..3 {
        from(&s, "/login", "198.51.100.20").await;
    }
    let out = s.cp.ctl(&[&args[..], &["--sidecar", &admin]].concat()).await;
    assert!(out.stdout.contains("SPENT"), "{out:?}");
}

/// Sends to each sidecar at its own steady rate for `secs`; returns what each admitted.
async fn offer(s: &Stack, sidecars: &[&warden_e2e::Sidecar], per_sec: &[u64], key: &str, secs: u64) -> Vec<u64> {
    let mut tasks = Vec::new();
    for (sc, rate) in sidecars.iter().zip(per_sec) {
        let (client, url, key, rate) = (s.client.clone(), sc.url("/api/x"), key.to_owned(), *rate);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            let mut ok = 0;
            while tokio::time::Instant::now() < deadline {
                tick.tick().await;
                let r = client.send(http::Method::GET, &url, &[("x-api-key", &key)], bytes::Bytes::new()).await;
                ok += u64::from(r.is_ok_and(|r| r.status == StatusCode::OK));
            }
            ok
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_quota_holds_across_sidecars_whatever_the_spread() {
    let s = Stack::start(GLOBAL).await;
    let (b, c) = (s.start_another_sidecar("orders-2").await, s.start_another_sidecar("orders-3").await);
    let (key, _) = s.create_key("acme", &[]).await;
    for sc in [&s.sidecar, &b, &c] {
        let url = sc.url("/api/warm");
        eventually("every sidecar has the key", Duration::from_secs(5), || async {
            s.client
                .send(http::Method::GET, &url, &[("x-api-key", &key)], bytes::Bytes::new())
                .await
                .is_ok_and(|r| r.status != 401)
        })
        .await;
    }
    // Every sidecar knows the quota is split three ways (its fallback share).
    let peek = format!("/limits/peek?limit=shared&key={}", hex::encode("acme"));
    for sc in [&s.sidecar, &b, &c] {
        eventually("the sidecar knows it is one of 3", Duration::from_secs(10), || async {
            let v: serde_json::Value =
                serde_json::from_str(&s.client.get(&sc.admin_url(&peek)).await.unwrap().text()).unwrap_or_default();
            v["share"].as_f64().is_some_and(|f| (f - 1.0 / 3.0).abs() < 1e-9)
        })
        .await;
    }
    // Let the warm-up requests drain out of every bucket (10/s: 1 s is plenty).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 100 requests/s offered (10x the quota of 10/s), spread 70/20/10, for 5 s.
    let admitted = offer(&s, &[&s.sidecar, &b, &c], &[70, 20, 10], &key, 5).await;
    let total: u64 = admitted.iter().sum();
    // One limiter would admit 5 (burst) + 5 s x 10/s = 55; three independent ones ~150.
    assert!((40..=70).contains(&total), "admitted {admitted:?} = {total}, want about 55");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_control_plane_down_each_sidecar_keeps_its_fallback_share() {
    let mut s = Stack::start(GLOBAL).await;
    let b = s.start_another_sidecar("orders-2").await;
    let (key, _) = s.create_key("acme", &[]).await;
    let call = |sc: &warden_e2e::Sidecar| {
        let (client, url, key) = (s.client.clone(), sc.url("/api/x"), key.clone());
        async move {
            let r = client.send(http::Method::GET, &url, &[("x-api-key", &key)], bytes::Bytes::new()).await;
            r.map(|r| r.status.as_u16()).unwrap_or(0)
        }
    };
    for sc in [&s.sidecar, &b] {
        eventually("the key works", Duration::from_secs(5), || async { call(sc).await == 200 }).await;
    }
    // Both report, so the control plane tells each that two sidecars share the quota.
    eventually("the control plane tells both sidecars they share", Duration::from_secs(5), || async {
        call(&s.sidecar).await;
        call(&b).await;
        s.sidecar.proc.output().contains("shared by 2 sidecars")
    })
    .await;
    s.cp.proc.kill9();
    // Shares last 2 s; then each sidecar enforces 1/2 of the quota: half the burst of 5
    // (rounded: 3) and half the rate.
    eventually("the assigned share expires into the fallback", Duration::from_secs(10), || async {
        let peek = s.get_admin("/limits/peek?limit=shared&key=61636d65").await;
        peek.contains("\"share_from\": \"fallback\"")
            && peek.contains("\"share\": 0.5")
            && peek.contains("\"burst\": 3")
    })
    .await;
    let mut admitted = 0;
    for _ in 0..20 {
        admitted += u32::from(call(&s.sidecar).await == 200);
    }
    assert!((1..=5).contains(&admitted), "{admitted} of 20: a share, never nothing and never everything");
}
