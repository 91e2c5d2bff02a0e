//! WebSocket tunnels: an HTTP/1.1 `Upgrade: websocket` request on a route with
//! `upgrades: true` goes upstream as one (after access, auth, limits and identity headers,
//! like any request); when the app answers 101, the two upgraded connections are joined
//! and bytes flow both ways with back-pressure until either side closes or the tunnel
//! goes quiet for the route's idle timeout. A tunnel is a task of its own: a policy swap
//! never touches it, and the listener's drain does not see it (its connection left hyper
//! at the upgrade), so `Tunnels` gives open ones what is left of the drain period on
//! shutdown and then closes them. Each tunnel is logged, traced and counted when it closes.

use http::HeaderMap;
use http::header::{CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::{Closed, TunnelStats};

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

/// The open tunnels, for the drain.
#[derive(Debug, Default)]
pub struct Tunnels {
    tracker: TaskTracker,
    closing: CancellationToken,
}

impl Tunnels {
    /// On shutdown: lets open tunnels run until `deadline`, then closes those left (each
    /// still logs its close) and waits for them to finish.
    pub async fn drain(&self, deadline: tokio::time::Instant) {
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait()).await.is_err() {
            tracing::warn!(open = self.tracker.len(), "drain timeout reached; closing the open tunnels");
            self.closing.cancel();
            self.tracker.wait().await;
        }
    }
}

/// Joins the client's and the app's upgraded connections once both are ready, and calls
/// `on_close` with the tunnel's account when it ends (not if the upgrade never completes).
///
/// The bytes are copied by a task of their own that does nothing else, so an event on
/// either connection wakes only the copy; this task watches it, the drain and the idle
/// timeout (checked every quarter of it, so a quiet tunnel closes within 1¼ of it).
pub fn join(
    tunnels: &Tunnels,
    client: OnUpgrade,
    app: OnUpgrade,
    idle_timeout: Duration,
    on_close: impl FnOnce(TunnelStats) + Send + 'static,
) {
    let closing = tunnels.closing.clone();
    tunnels.tracker.spawn(async move {
        let (client, app) = match tokio::try_join!(client, app) {
            Ok(both) => both,
            Err(e) => return tracing::debug!(error = %e, "a WebSocket upgrade did not complete"),
        };
        let (opened, started) = (SystemTime::now(), Instant::now());
        let (to_app, to_client) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut client = Counted { io: TokioIo::new(client), read: to_app.clone() };
        let mut app = Counted { io: TokioIo::new(app), read: to_client.clone() };
        let mut copy = tokio::spawn(async move { tokio::io::copy_bidirectional(&mut client, &mut app).await.is_ok() });
        let tick = (idle_timeout / 4).max(Duration::from_millis(1));
        let moved = || to_app.load(Ordering::Relaxed) + to_client.load(Ordering::Relaxed);
        let (mut seen, mut quiet_since) = (0, Instant::now());
        let closed = loop {
            tokio::select! {
                done = &mut copy => break if matches!(done, Ok(true)) { Closed::Closed } else { Closed::Broken },
                () = closing.cancelled() => break Closed::Shutdown,
                () = tokio::time::sleep(tick) => {
                    let now = moved();
                    if now != seen {
                        (seen, quiet_since) = (now, Instant::now());
                    } else if quiet_since.elapsed() >= idle_timeout {
                        break Closed::Idle;
                    }
                }
            }
        };
        if matches!(closed, Closed::Shutdown | Closed::Idle) {
            // Dropping the copy's connections closes them on both sides.
            copy.abort();
            let _ = copy.await;
        }
        let stats = TunnelStats {
            closed,
            bytes_to_app: to_app.load(Ordering::Relaxed),
            bytes_to_client: to_client.load(Ordering::Relaxed),
            opened,
            lasted: started.elapsed(),
        };
        on_close(stats);
    });
}

/// A connection that counts the bytes read from it.
struct Counted<T> {
    io: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
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
