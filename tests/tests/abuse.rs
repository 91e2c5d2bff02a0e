//! Stalls and exhaustion from outside: what a client (or a stalled upstream) can make the
//! sidecar hold, and that other clients keep being served while it happens.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use warden_e2e::{Client, Stack, eventually};

/// An upstream that accepts connections and never answers; counts them.
async fn stalled_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    (addr, accepted)
}

fn policy(stalled: std::net::SocketAddr, breakers: &str) -> String {
    format!(
        "service: orders
upstreams:
  stuck: {{ endpoints: ['{stalled}'] {breakers} }}
routes:
  - name: stuck
    match: {{ path_prefix: /stuck }}
    upstream: stuck
    timeout: 20s
  - name: orders
    match: {{ path_prefix: /orders }}
"
    )
}

/// Many HTTP/2 streams to a stalled upstream: its circuit breakers trip (503
/// `upstream_overloaded`) after `max_connections` connections and `max_pending` waiters,
/// instead of one upstream connection per stream until descriptors run out; other routes
/// are served meanwhile, and `/config` shows the breakers.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_costs_at_most_its_breakers_and_other_routes_keep_working() {
    let (stalled, accepted) = stalled_upstream().await;
    let s = Stack::start(&policy(stalled, ", max_connections: 4, max_pending: 6")).await;
    let h2 = Client::h2();
    let url = s.sidecar.url("/stuck/x");
    let mut calls = Vec::new();
    for _ in 0..40 {
        let (h2, url) = (h2.clone(), url.clone());
        calls.push(tokio::spawn(async move { h2.send(Method::GET, &url, &[], Bytes::new()).await }));
    }
    // 30 are refused at once; 10 (4 on connections, 6 waiting) stay until the timeout.
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused < 30 {
        assert!(tokio::time::Instant::now() < deadline, "only {refused} refused");
        let mut left = Vec::new();
        for call in calls {
            if call.is_finished() {
                let r = call.await.unwrap().unwrap();
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
                assert_eq!(r.json()["error"]["code"], "upstream_overloaded");
                assert!(r.header("proxy-status").unwrap_or_default().contains("connection_limit_reached"));
                refused += 1;
            } else {
                left.push(call);
            }
        }
        calls = left;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.len(), 10, "the requests within the breakers wait");
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "max_connections upstream connections, no more");
    assert_eq!(s.get("/orders/1").await.status, StatusCode::OK, "another route is served");
    let config: serde_json::Value = serde_json::from_str(&s.get_admin("/config").await).unwrap();
    let stuck = config["upstreams"].as_array().unwrap().iter().find(|u| u["name"] == "stuck").unwrap();
    let b = &stuck["endpoints"][0]["breakers"];
    assert_eq!((b["open_connections"].as_u64(), b["pending"].as_u64()), (Some(4), Some(6)), "{b}");
    assert_eq!(b["overflows"].as_u64(), Some(30), "{b}");
    let metrics = s.get_admin("/metrics").await;
    assert!(metrics.lines().any(|l| l.contains("upstream_overloaded") && l.ends_with(" 30")), "{metrics}");
    for call in calls {
        call.abort();
    }
}

/// The sidecar-wide guard: past `--max-in-flight` requests waiting on upstreams, 503
/// `overloaded`, whatever each endpoint's breakers would allow.
#[tokio::test(flavor = "multi_thread")]
async fn past_max_in_flight_requests_are_refused_as_overloaded() {
    let (stalled, _) = stalled_upstream().await;
    let s = Stack::start_with(&policy(stalled, ""), &["--max-in-flight", "3"]).await;
    let h2 = Client::h2();
    let url = s.sidecar.url("/stuck/x");
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let (h2, url) = (h2.clone(), url.clone());
            tokio::spawn(async move { h2.send(Method::GET, &url, &[], Bytes::new()).await })
        })
        .collect();
    eventually("three requests in flight", Duration::from_secs(5), || async {
        let config: serde_json::Value = serde_json::from_str(&s.get_admin("/config").await).unwrap();
        config["in_flight"]["now"] == 3
    })
    .await;
    let r = h2.get(&url).await.unwrap();
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")));
    let r = s.get("/orders/1").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "the guard is sidecar-wide");
    for w in waiting {
        w.abort();
    }
}
