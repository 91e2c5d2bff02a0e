//! The control plane's HTTP port (`--http`, default `127.0.0.1:7071`): `/healthz` (the
//! process answers; its body says whether the store does), `/readyz` (it serves streams,
//! which it does from what it holds even while its database is down: readiness does not
//! follow the store) and `/metrics` (Prometheus / OpenMetrics text). Translation
//! only, like the gRPC server; the console will be served here too.
//!
//! Bounded like the sidecar's admin port: a connection must send a whole request head
//! within `HEADER_READ_TIMEOUT` (also its keep-alive idle limit), lives at most
//! `MAX_CONNECTION_LIFE`, and at most `MAX_CONNECTIONS` are open (past that the port stops
//! accepting and new connections wait in the kernel's backlog), so idle or slow clients
//! cannot take the process's file descriptors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ops::ControlPlane;

/// Open connections at most. Probes and a scraper need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send a request head, from when it opens or from its
/// previous response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay open in all; then it is closed after its current
/// response (a scraper's keep-alive simply reconnects).
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(30);
/// After `MAX_CONNECTION_LIFE`, how long the response in flight may take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The largest request head kept in memory (hyper's minimum); these requests are tiny.
const MAX_HEAD_BYTES: usize = 8 << 10;

/// Serves the endpoints on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, cp: Arc<ControlPlane>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (cp, builder) = (cp.clone(), builder.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let cp = cp.clone();
                async move { Ok::<_, Infallible>(route(&cp, &req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = match tokio::time::timeout(MAX_CONNECTION_LIFE, conn.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(CLOSE_GRACE, conn).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "http connection ended with an error");
            }
        });
    }
}

async fn route(cp: &ControlPlane, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/healthz" => {
            let store = cp.store_health();
            let detail = match store.up {
                true => format!("store: up ({})", store.name),
                false => format!("store: DOWN ({}): {}", store.name, store.error),
            };
            text(StatusCode::OK, format!("ok\n{detail}\n"))
        }
        // Serving streams needs no database: what the hub holds keeps going out.
        "/readyz" => text(StatusCode::OK, "ready\n".into()),
        "/metrics" => {
            let mut resp = Response::new(Full::new(Bytes::from(cp.metrics_text())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "try /healthz, /readyz or /metrics\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
