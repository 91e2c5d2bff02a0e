//! HTTP/2 to upstreams: `protocol: http2` and `auto`, multiplexed connections capped at
//! `max_concurrent_streams`, and connections that stay warm across a policy swap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use warden_e2e::{App, Client, Sidecar, eventually, write_policy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_follows_the_callers_protocol_and_http2_always_speaks_it() {
    let app = App::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "service: orders
upstreams:
  app: {{ protocol: auto }}
  h2: {{ endpoints: [\"{}\"], protocol: http2 }}
routes:
  - {{ name: h2, match: {{ path_prefix: /h2 }}, upstream: h2 }}
  - {{ name: auto, match: {{ path_prefix: / }} }}
",
        app.addr
    );
    let sidecar = Sidecar::with_policy(dir.path(), &policy, &app.addr.to_string()).await;
    let version = |r: warden_e2e::Resp| r.json()["version"].as_str().unwrap_or_default().to_owned();

    let h1 = Client::default().get(&sidecar.url("/auto")).await.unwrap();
    assert_eq!(version(h1), "HTTP/1.1", "auto: an HTTP/1.1 caller, an HTTP/1.1 upstream request");
    let h2 = Client::h2().get(&sidecar.url("/auto")).await.unwrap();
    assert_eq!(version(h2), "HTTP/2.0", "auto: an HTTP/2 caller, an HTTP/2 upstream request");

    let via_h2 = Client::default()
        .send(http::Method::POST, &sidecar.url("/h2/orders?x=1"), &[("host", "api.example.com")], "body".into())
        .await
        .unwrap();
    assert_eq!(via_h2.status, 200);
    let seen = app.last();
    assert_eq!(seen.version, http::Version::HTTP_2, "http2: whatever the caller spoke");
    assert_eq!(seen.authority.as_deref(), Some("api.example.com"), "the routed host is the :authority");
    assert!(!seen.headers.contains_key("host"), "and no Host header disagrees with it");
    assert_eq!((seen.path_and_query.as_str(), seen.body.as_ref()), ("/h2/orders?x=1", b"body".as_slice()));
    assert_eq!(seen.headers["x-forwarded-host"], "api.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_share_http2_connections_up_to_the_stream_cap_and_across_a_swap() {
    let app = App::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = |extra: &str| {
        format!(
            "service: orders
upstreams:
  app: {{ protocol: http2 }}
  capped: {{ endpoints: [\"{}\"], protocol: http2, max_concurrent_streams: 5 }}
routes:
  - {{ name: capped, match: {{ host: capped.test }}, upstream: capped }}
  - {{ name: all, match: {{ path_prefix: / }} }}
{extra}",
            app.addr
        )
    };
    let sidecar = Sidecar::with_policy(dir.path(), &policy(""), &app.addr.to_string()).await;

    // 20 requests at once, each held 300 ms by the app, from 20 HTTP/1.1 connections.
    let burst = |host: &'static str| {
        let urls: Vec<String> = (0..20).map(|i| sidecar.url(&format!("/slow/300?i={i}"))).collect();
        async move {
            let tasks: Vec<_> = urls
                .into_iter()
                .map(|url| {
                    tokio::spawn(async move {
                        let c = Client::default();
                        c.send(http::Method::GET, &url, &[("host", host)], Default::default()).await.unwrap().status
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            statuses
        }
    };
    let peers = |app: &App, host: &str| -> BTreeSet<std::net::SocketAddr> {
        app.requests().iter().filter(|s| s.authority.as_deref() == Some(host)).map(|s| s.peer).collect()
    };
    assert!(burst("all.test").await.iter().all(|s| *s == 200));
    assert_eq!(peers(&app, "all.test").len(), 1, "one multiplexed connection carries them all");
    assert!(burst("capped.test").await.iter().all(|s| *s == 200));
    let capped = peers(&app, "capped.test").len();
    assert!((2..=4).contains(&capped), "5 streams a connection: {capped} connections for 20 requests");

    // A swap (a new route) keeps the pool and its connection.
    let before = peers(&app, "all.test");
    write_policy(dir.path(), "p.yaml", &policy("  - { name: new, match: { path_prefix: /new }, upstream: capped }\n"));
    let client = Client::default();
    eventually("the new policy", Duration::from_secs(10), || async {
        let r = client.get(&sidecar.url("/new")).await.unwrap();
        r.json()["path"] == "/new"
    })
    .await;
    client.send(http::Method::GET, &sidecar.url("/after"), &[("host", "all.test")], Default::default()).await.unwrap();
    assert_eq!(app.last().peer, *before.iter().next().unwrap(), "the same upstream connection after the swap");
}
