//! Long responses: server-sent events stream through unbuffered, and a route's
//! `idle_timeout` cuts off a stream that goes quiet (overriding `--stream-idle-timeout`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use warden_e2e::Stack;

const POLICY: &str = "service: orders
routes:
  - name: quiet
    match: { path_prefix: /quiet }
    rewrite: { path_prefix: /stall }
    idle_timeout: 300ms
  - name: all
    match: { path_prefix: / }
";

/// GETs `path` on a connection of its own and returns the response's body frames with the
/// time each arrived (from the request), until the body ends or breaks.
async fn frames(s: &Stack, path: &str) -> (Vec<(Duration, Bytes)>, bool) {
    let tcp = tokio::net::TcpStream::connect(s.sidecar.proxy).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path).header("host", "x").body(Empty::<Bytes>::new()).unwrap();
    let started = Instant::now();
    let mut body = send.send_request(req).await.unwrap().into_body();
    let mut out = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    out.push((started.elapsed(), data));
                }
            }
            Some(Err(_)) => return (out, false),
            None => return (out, true),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_arrive_as_they_are_sent() {
    let s = Stack::start(POLICY).await;
    let (events, whole) = frames(&s, "/events/1500").await;
    assert!(whole, "the stream ended normally");
    let text: Vec<u8> = events.iter().flat_map(|(_, b)| b.to_vec()).collect();
    assert_eq!(text, b"data: first\n\ndata: second\n\n");
    let first = events.first().unwrap().0;
    let last = events.last().unwrap().0;
    assert!(first < Duration::from_millis(1000), "the first event came at once, not with the rest: {first:?}");
    assert!(last >= Duration::from_millis(1500), "the second one when it was sent: {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routes_idle_timeout_cuts_off_a_stream_that_goes_quiet() {
    let s = Stack::start(POLICY).await;
    let started = Instant::now();
    let (got, whole) = frames(&s, "/quiet/3000").await;
    assert!(!whole, "a response quiet for 3 s on a route with idle_timeout 300ms is cut off");
    assert!(started.elapsed() < Duration::from_secs(2), "cut off after {:?}", started.elapsed());
    assert_eq!(got.iter().map(|(_, b)| b.len()).sum::<usize>(), 1024, "what came before the pause passed");
    // Elsewhere the sidecar's own limit (5 minutes by default) holds.
    let (got, whole) = frames(&s, "/stall/1000").await;
    assert!(whole && got.iter().map(|(_, b)| b.len()).sum::<usize>() == 2048);
}
