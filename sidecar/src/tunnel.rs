//! WebSocket tunnels: an HTTP/1.1 `Upgrade: websocket` request on a route with
//! `upgrades: true` goes upstream as one (after access, auth, limits and identity headers,
//! like any request); when the app answers 101, the two upgraded connections are joined
//! and bytes flow both ways with back-pressure until either side closes or the tunnel
//! goes quiet for the route's idle timeout. A tunnel is a task of its own: a policy swap
//! never touches it, and the listener's drain does not see it (its connection left hyper
//! at the upgrade), so `Tunnels` gives open ones what is left of the drain period on
//! shutdown and then closes them. Each tunnel is logged, traced and counted when it closes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use http::header::{CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::{Closed, TunnelStats};
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
        let last = Arc::new(AtomicU64::new(now_ms()));
        let mut client = Watched { io: TokioIo::new(client), last: last.clone(), read: 0 };
        let mut app = Watched { io: TokioIo::new(app), last: last.clone(), read: 0 };
        let closed = {
            let copy = tokio::io::copy_bidirectional(&mut client, &mut app);
            tokio::pin!(copy);
            let idle_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
            loop {
                let quiet_for = now_ms().saturating_sub(last.load(Ordering::Relaxed));
                let wait = Duration::from_millis(idle_ms.saturating_sub(quiet_for).max(1));
                tokio::select! {
                    done = &mut copy => break if done.is_ok() { Closed::Closed } else { Closed::Broken },
                    () = closing.cancelled() => break Closed::Shutdown,
                    () = tokio::time::sleep(wait) => {
                        if now_ms().saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
                            break Closed::Idle;
                        }
                    }
                }
            }
        };
        let stats = TunnelStats {
            closed,
            bytes_to_app: client.read,
            bytes_to_client: app.read,
            opened,
            lasted: started.elapsed(),
        };
        on_close(stats);
    });
}

/// A connection that counts what was read from it and notes when bytes last moved.
struct Watched<T> {
    io: T,
    last: Arc<AtomicU64>,
    read: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.read += read as u64;
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
