//! TLS termination through a real sidecar: SNI picks the certificate (exact and wildcard
//! names), ALPN offers h2 and http/1.1, rotated certificate files are picked up without a
//! restart, and unusable certificate files are NACKed while the old ones keep serving.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use warden_e2e::tls::{cert, connect, install};
use warden_e2e::{Stack, eventually};

fn policy(certs: &[(String, String)]) -> String {
    let list: Vec<String> = certs.iter().map(|(c, k)| format!("    - {{ cert: {c}, key: {k} }}")).collect();
    format!("service: orders\ntls:\n  certificates:\n{}\nroutes:\n  - name: all\n", list.join("\n"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_terminated_with_the_certificate_sni_names() {
    let certs = tempfile::tempdir().unwrap();
    let (api, tenants) = (cert(&["api.example.com"]), cert(&["*.tenants.example.com"]));
    let api_files = install(certs.path(), "api", &api);
    let tenant_files = install(certs.path(), "tenants", &tenants);
    let s = Stack::start(&policy(&[api_files.clone(), tenant_files.clone()])).await;
    let both = [&api, &tenants];

    let (_, presented, alpn) = connect(&s, "api.example.com", &both, &[b"h2", b"http/1.1"]).await;
    assert_eq!(presented, api.der.to_vec());
    assert_eq!(alpn, b"h2");
    let (_, presented, _) = connect(&s, "acme.tenants.example.com", &both, &[b"http/1.1"]).await;
    assert_eq!(presented, tenants.der.to_vec(), "a wildcard name serves its subdomains");

    // HTTP/1.1 and HTTP/2 over TLS reach the app, which is told the client used https.
    let (tls, _, alpn) = connect(&s, "api.example.com", &both, &[b"http/1.1"]).await;
    assert_eq!(alpn, b"http/1.1");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/orders/1").header("host", "api.example.com").body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.app.last().headers.get("x-forwarded-proto").unwrap(), "https");

    let (tls, _, _) = connect(&s, "api.example.com", &both, &[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://api.example.com/orders/2").body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await.unwrap();
    assert_eq!(s.app.last().path_and_query, "/orders/2");

    // Rotation: new files for the same name are served without a restart.
    let rotated = cert(&["api.example.com"]);
    install(certs.path(), "api", &rotated);
    let roots = [&api, &tenants, &rotated];
    eventually("new connections get the rotated certificate", Duration::from_secs(10), || async {
        connect(&s, "api.example.com", &roots, &[b"http/1.1"]).await.1 == rotated.der.to_vec()
    })
    .await;

    // A key that does not belong to its certificate, and a missing file: refused (NACK),
    // and the certificates in use keep serving.
    let mismatched = (api_files.0.clone(), tenant_files.1.clone());
    let v = s.apply(&policy(&[mismatched])).await;
    let missing = (certs.path().join("nope.crt").to_string_lossy().into_owned(), api_files.1.clone());
    s.wait_for_nack(v, "does not match certificate").await;
    let v = s.apply(&policy(&[missing])).await;
    s.wait_for_nack(v, "nope.crt").await;
    let (_, presented, _) = connect(&s, "api.example.com", &roots, &[b"http/1.1"]).await;
    assert_eq!(presented, rotated.der.to_vec(), "the last good certificates still serve");
}
