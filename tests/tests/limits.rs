//! Size and time limits at the edge: bodies refused at the route's `max_body` (declared or
//! streamed), long URIs and large header blocks, slow header senders, and the connection
//! cap. Raw TCP where a polite client library would not misbehave on purpose.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_e2e::{Client, Stack};

const POLICY: &str = "service: orders
defaults: { max_body: 4KiB }
routes:
  - name: upload
    match: { path_prefix: /upload }
    max_body: 1KiB
  - name: orders
    match: { path_prefix: /orders }
";

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_refused_declared_or_streamed() {
    let s = Stack::start(POLICY).await;

    let r = s.client.send(Method::POST, &s.sidecar.url("/upload"), &[], Bytes::from(vec![b'x'; 2048])).await.unwrap();
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "body_too_large");
    assert_eq!(r.json()["error"]["route"], "upload");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("1KiB"), "{}", r.text());
    assert!(s.app.requests().is_empty(), "a declared length over the limit never reaches the app");

    // Within the route's own limit, and the default applies elsewhere.
    let r = s.client.send(Method::POST, &s.sidecar.url("/upload"), &[], Bytes::from(vec![b'x'; 1024])).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let r = s.client.send(Method::POST, &s.sidecar.url("/orders"), &[], Bytes::from(vec![b'x'; 3000])).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);

    // Chunked, no length declared: cut off while streaming, once past the limit.
    let mut req = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..8 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'y'; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let raw = s.sidecar.raw(&req).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"code\":\"body_too_large\""), "{raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn long_uris_and_large_headers_are_refused() {
    let s = Stack::start(POLICY).await;
    let long = format!("/orders/{}", "a".repeat(9000));
    let r = s.get(&long).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    assert_eq!(r.json()["error"]["code"], "uri_too_long");

    let big = "v".repeat(70_000);
    let r = s.get_with("/orders", &[("x-big", &big)]).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "headers_too_large");
    assert!(s.app.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_headers_too_slowly_is_disconnected() {
    let s = Stack::start_with(POLICY, &["--header-read-timeout", "300ms"]).await;
    let mut tcp = TcpStream::connect(s.sidecar.proxy).await.unwrap();
    tcp.write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the sidecar closed the slow connection");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    assert!(s.app.requests().is_empty());
    // A well-behaved client is still served.
    assert_eq!(s.get("/orders").await.status, StatusCode::OK);

    // So is a connection that never sends a byte, so silent sockets cannot hold slots.
    let mut silent = TcpStream::connect(s.sidecar.proxy).await.unwrap();
    let opened = Instant::now();
    let mut nothing = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut nothing)).await.unwrap().unwrap();
    assert!(opened.elapsed() < Duration::from_secs(3), "silent connection closed after {:?}", opened.elapsed());

    // An idle keep-alive connection is closed after the same time: the clock starts
    // whenever the connection waits for a request's headers.
    let mut tcp = TcpStream::connect(s.sidecar.proxy).await.unwrap();
    tcp.write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(idle.elapsed() < Duration::from_secs(3), "idle connection closed after {:?}", idle.elapsed());
}

/// Protocol detection is under the header-read timer too: a byte that could begin the
/// HTTP/2 preface, half of it, or all of it without the first frame used to hold a
/// connection (and a slot of `--max-connections`) forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_stalls_before_its_protocol_is_known_is_closed() {
    let s = Stack::start_with(POLICY, &["--header-read-timeout", "300ms", "--max-connections", "3"]).await;
    let stalls: [&[u8]; 3] = [b"P", b"PRI * HTTP/2.0\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"];
    let mut held = Vec::new();
    for bytes in stalls {
        let mut tcp = TcpStream::connect(s.sidecar.proxy).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        held.push(tcp);
    }
    let started = Instant::now();
    for (tcp, bytes) in held.iter_mut().zip(stalls) {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{:?} was not closed", String::from_utf8_lossy(bytes));
    }
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    // They held every slot; once closed, others are served again.
    assert_eq!(s.get("/orders").await.status, StatusCode::OK);
    assert_eq!(Client::h2().get(&s.sidecar.url("/orders")).await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_body_that_stalls_is_cut_off() {
    let s = Stack::start_with(
        "service: orders\nroutes:\n  - name: all\n    timeout: 10s\n",
        &["--stream-idle-timeout", "300ms"],
    )
    .await;
    let started = Instant::now();
    let cut = s.client.get(&s.sidecar.url("/stall/3000")).await;
    assert!(cut.is_err(), "a body that went quiet for 3 s is cut off: {cut:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "cut off after {:?}", started.elapsed());
    // Pauses shorter than the limit are fine.
    let r = s.get("/stall/100").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 2048);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let s = Stack::start_with(POLICY, &["--max-connections", "2"]).await;
    let held: Vec<TcpStream> =
        vec![TcpStream::connect(s.sidecar.proxy).await.unwrap(), TcpStream::connect(s.sidecar.proxy).await.unwrap()];
    // The kernel hands connections to accept() in arrival order: these two take both slots.
    let mut third = TcpStream::connect(s.sidecar.proxy).await.unwrap();
    third.write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(400), third.read_to_end(&mut buf)).await;
    assert!(early.is_err(), "the third connection is not served while two are open");
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
}
