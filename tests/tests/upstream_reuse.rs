//! The upstream pool never lends out a connection that is still busy: an upstream that
//! answers before it has read the request body (as apps refusing an upload do) leaves
//! that connection mid-message, and the next request, even on the same downstream
//! HTTP/2 connection, must get another one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use warden_e2e::{Client, Stack};

/// Serves as an upstream that answers 200 as soon as it has a request head, reads
/// nothing more, and keeps the connection open. Returns a connection counter.
fn serve_early_answers(listener: TcpListener) -> Arc<AtomicUsize> {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                // Hold the connection, never reading the body.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    connections
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_answered_before_its_upload_finished_is_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let early = listener.local_addr().unwrap().to_string();
    let connections = serve_early_answers(listener);
    let policy = format!(
        "service: orders
defaults: {{ max_body: 64MiB }}
upstreams:
  early: {{ endpoints: [\"{early}\"] }}
routes:
  - name: upload
    match: {{ path_prefix: /upload }}
    upstream: early
"
    );
    let s = Stack::start(&policy).await;

    // Far more than the socket buffers hold: the upload cannot finish while nobody reads.
    let big = Bytes::from(vec![b'u'; 32 << 20]);
    // One HTTP/2 connection carries both requests, so the second one could be handed the
    // connection the first one is still uploading on.
    let client = Client::h2();
    let uploader = client.clone();
    let url = s.sidecar.url("/upload/big");
    let upload = tokio::spawn(async move { uploader.send(Method::POST, &url, &[], big).await });
    // Wait until the early answer is in: the upstream has its one connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "the upload never reached the upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let r = client.get(&s.sidecar.url("/upload/small")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(3), "the second request waited {:?}", started.elapsed());
    assert_eq!(connections.load(Ordering::SeqCst), 2, "the second request got its own upstream connection");
    upload.abort();
}
