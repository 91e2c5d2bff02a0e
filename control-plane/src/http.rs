//! The control plane's HTTP port (`--http`, default `127.0.0.1:7071`): `/healthz` (the
//! process answers; its body says whether the store does), `/readyz` (it serves streams,
//! which it does from what it holds even while its database is down: readiness does not
//! follow the store) and `/metrics` (Prometheus / OpenMetrics text); everything else is
//! the console (`console/`), unless it is off. Over TLS with the gRPC port's certificate
//! when the control plane has one. Translation only, like the gRPC server.
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
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::console::Console;
use crate::console::page::Req;
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
/// The largest request head kept in memory; a console request's cookies fit well within.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// The largest form the console reads (a note, an explain form's headers).
const MAX_FORM_BYTES: usize = 64 << 10;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the port serves besides the probes and `/metrics`.
#[derive(Clone, Default)]
pub struct Options {
    /// None: `--console off`.
    pub console: Option<Arc<Console>>,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Serves the endpoints on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, cp: Arc<ControlPlane>, options: Options) {
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
        let (cp, builder, options) = (cp.clone(), builder.clone(), options.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let console = options.console.clone();
            let service = service_fn(move |req| {
                let (cp, console) = (cp.clone(), console.clone());
                async move { Ok::<_, Infallible>(route(&cp, console.as_deref(), req).await) }
            });
            match options.tls {
                Some(config) => {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => return tracing::debug!(error = %e, %peer, "http TLS handshake failed"),
                            Err(_) => return tracing::debug!(%peer, "http TLS handshake timed out"),
                        };
                    drive(builder.serve_connection(TokioIo::new(tls), service), peer).await;
                }
                None => drive(builder.serve_connection(TokioIo::new(stream), service), peer).await,
            }
        });
    }
}

/// Runs one connection within its life limit.
async fn drive<C>(conn: C, peer: std::net::SocketAddr)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
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
}

async fn route(cp: &ControlPlane, console: Option<&Console>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    match (probe, console) {
        (true, _) if req.method() != Method::GET => text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into()),
        (true, _) => probes(cp, req.uri().path()),
        (false, Some(console)) => {
            let method = req.method().clone();
            match read(req).await {
                Ok(req) => console.handle(cp, &method, &req).await,
                Err(resp) => resp,
            }
        }
        (false, None) => text(StatusCode::NOT_FOUND, "try /healthz, /readyz or /metrics (the console is off)\n".into()),
    }
}

/// A console request as its pages read it: path, query, cookies and (a form POST) fields.
async fn read(req: Request<Incoming>) -> Result<Req, Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let pairs = |b: &[u8]| form_urlencoded::parse(b).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let cookies =
        parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join("; ");
    let form = match parts.method {
        Method::POST => {
            let bytes =
                Limited::new(body, MAX_FORM_BYTES).collect().await.map_err(|e| match e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                {
                    Some(_) => text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("a console form is at most {MAX_FORM_BYTES} bytes\n"),
                    ),
                    None => text(StatusCode::BAD_REQUEST, "the request body could not be read\n".into()),
                })?;
            pairs(&bytes.to_bytes())
        }
        _ => Vec::new(),
    };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Ok(Req {
        host,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(|q| pairs(q.as_bytes())).unwrap_or_default(),
        form,
        cookies,
    })
}

fn probes(cp: &ControlPlane, path: &str) -> Response<Full<Bytes>> {
    match path {
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
