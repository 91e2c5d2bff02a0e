//! WebSocket tunnels: an HTTP/1.1 `Upgrade: websocket` request on a route with
//! `upgrades: true` goes upstream as one (after access, auth, limits and identity headers,
//! like any request); when the app answers 101, the two upgraded connections are joined
//! and bytes flow both ways with back-pressure until either side closes or the tunnel
//! goes quiet for the route's idle timeout. A tunnel is a task of its own: a policy swap
//! never touches it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use http::header::{CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::upstream::health::now_ms;

/// Whether a request asks for a WebSocket (RFC 6455 §4.1: `Upgrade: websocket` and
/// `Connection: upgrade`). Any other upgrade (`h2c`, ...) is stripped as a hop-by-hop header.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

/// Joins the client's and the app's upgraded connections once both are ready.
pub fn join(client: OnUpgrade, app: OnUpgrade, idle_timeout: Duration, route: Arc<str>) {
    tokio::spawn(async move {
        let (client, app) = match tokio::try_join!(client, app) {
            Ok(both) => both,
            Err(e) => return tracing::debug!(error = %e, %route, "a WebSocket upgrade did not complete"),
        };
        let started = std::time::Instant::now();
        let last = Arc::new(AtomicU64::new(now_ms()));
        let mut client = Watched { io: TokioIo::new(client), last: last.clone() };
        let mut app = Watched { io: TokioIo::new(app), last: last.clone() };
        let copy = tokio::io::copy_bidirectional(&mut client, &mut app);
        tokio::pin!(copy);
        let idle_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let (up, down, why) = loop {
            let quiet_for = now_ms().saturating_sub(last.load(Ordering::Relaxed));
            let wait = Duration::from_millis(idle_ms.saturating_sub(quiet_for).max(1));
            tokio::select! {
                done = &mut copy => match done {
                    Ok((up, down)) => break (up, down, "closed"),
                    Err(_) => break (0, 0, "broken"),
                },
                () = tokio::time::sleep(wait) => {
                    if now_ms().saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
                        break (0, 0, "idle");
                    }
                }
            }
        };
        tracing::info!(%route, why, bytes_to_app = up, bytes_to_client = down, seconds = started.elapsed().as_secs_f64(), "websocket tunnel closed");
    });
}

/// A connection that notes when bytes last moved.
struct Watched<T> {
    io: T,
    last: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
