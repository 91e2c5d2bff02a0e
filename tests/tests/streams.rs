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

/// The body's next data frame, within a deadline; None at its end.
async fn next_data(body: &mut hyper::body::Incoming) -> Option<Bytes> {
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("a frame within 10 s");
    frame.map(|f| f.unwrap().into_data().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_arrive_as_they_are_sent() {
    let s = Stack::start(POLICY).await;
    let tcp = tokio::net::TcpStream::connect(s.sidecar.proxy).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/events").header("host", "x").body(Empty::<Bytes>::new()).unwrap();
    let mut body = send.send_request(req).await.unwrap().into_body();
    // The app holds its second event until told: the first must come through alone.
    assert_eq!(
        next_data(&mut body).await.as_deref(),
        Some(&b"data: first\n\n"[..]),
        "the first event, before the rest"
    );
    assert!(!hyper::body::Body::is_end_stream(&body), "the stream is still open");
    // Straight to the app: the release is not what is measured.
    let released = s.client.get(&format!("http://{}/events-release", s.app.addr)).await.unwrap();
    assert_eq!(released.text(), "released");
    assert_eq!(next_data(&mut body).await.as_deref(), Some(&b"data: second\n\n"[..]), "the second when it was sent");
    assert_eq!(next_data(&mut body).await, None, "then the end");
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
