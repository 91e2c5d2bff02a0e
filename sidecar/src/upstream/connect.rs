//! Dialling an endpoint: TCP (resolving its name now, so DNS changes are followed), TLS
//! when the upstream has it, then the HTTP/1.1 or HTTP/2 handshake, with the connection's
//! I/O task holding its breaker permit for as long as it is open.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use warden_policy::refusal::UpstreamFailure;

use crate::upstream::error::connect_failure;
use crate::upstream::request_body::RequestBody;
use crate::upstream::tls::ClientTls;

pub(super) type Http1Sender = http1::SendRequest<RequestBody>;
pub(super) type Http2Sender = http2::SendRequest<RequestBody>;

/// The most a connection buffers from its upstream: a response head must fit.
pub(super) const UPSTREAM_BUFFER: usize = 64 << 10;

/// A dialled connection, plain or TLS.
pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `authority` within `connect_timeout`, with TLS when `tls` is given (its ALPN
/// offering `h2` when `http2`; the certificate checked against `name`'s host, the endpoint
/// as written, unless the policy names a server).
pub(super) async fn dial(
    authority: &Authority,
    name: &Authority,
    connect_timeout: Duration,
    tls: Option<&ClientTls>,
    http2: bool,
) -> Result<Io, UpstreamFailure> {
    let connecting = async {
        let stream = TcpStream::connect(authority.as_str()).await.map_err(|e| {
            tracing::debug!(error = %e, endpoint = %authority, "upstream connect failed");
            connect_failure(&e)
        })?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else { return Ok(Io::Plain(stream)) };
        let name = tls.server_name(name).map_err(|_| UpstreamFailure::Protocol)?;
        let connector = TlsConnector::from(tls.config(http2));
        match connector.connect(name, stream).await {
            Ok(s) => Ok(Io::Tls(Box::new(s))),
            Err(e) => {
                tracing::debug!(error = %e, endpoint = %authority, "upstream TLS handshake failed");
                Err(UpstreamFailure::Tls)
            }
        }
    };
    // The handshake counts against the connect timeout: both are "reaching the upstream".
    tokio::time::timeout(connect_timeout, connecting).await.unwrap_or(Err(UpstreamFailure::ConnectTimeout))
}

/// Starts HTTP/1.1 on a dialled connection.
pub(super) async fn http1(
    io: Io,
    permit: OwnedSemaphorePermit,
    endpoint: Authority,
) -> Result<Http1Sender, UpstreamFailure> {
    // writev(false): head and small bodies go out in one copy and one iovec, cheaper
    // than vectored writes for the small messages a sidecar mostly carries.
    // max_buf_size: hyper's read buffer otherwise grows to ~400 KiB per connection to fit
    // large bodies (and keeps it); 64 KiB bounds that and still fits any response head
    // Envoy (60 KiB) or nginx (a few KiB) would pass.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .max_buf_size(UPSTREAM_BUFFER)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|_| UpstreamFailure::Protocol)?;
    tokio::spawn(async move {
        let _open = permit;
        // with_upgrades: a 101 hands the connection to a WebSocket tunnel (`tunnel.rs`).
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, %endpoint, "upstream connection closed with an error");
        }
    });
    Ok(sender)
}

/// Starts HTTP/2 on a dialled connection (prior knowledge on plain TCP).
pub(super) async fn http2(
    io: Io,
    permit: OwnedSemaphorePermit,
    endpoint: Authority,
) -> Result<Http2Sender, UpstreamFailure> {
    // adaptive_window: the flow-control windows follow the measured bandwidth-delay
    // product instead of h2's 64 KiB default, so one large stream is not throttled by
    // round trips. max_send_buf_size bounds what a slow upstream makes us hold per stream
    // (hyper's default is 1 MiB, times every stream).
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_send_buf_size(4 * UPSTREAM_BUFFER)
        .max_header_list_size(UPSTREAM_BUFFER as u32)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .handshake(TokioIo::new(io))
        .await
        .map_err(|_| UpstreamFailure::Protocol)?;
    tokio::spawn(async move {
        let _open = permit;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, %endpoint, "upstream HTTP/2 connection closed with an error");
        }
    });
    Ok(sender)
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
