//! The inbound listener: accepts TCP (up to a connection cap), terminates TLS when the
//! active policy has certificates, serves HTTP/1.1 and HTTP/2 (h2c, or h2 by ALPN) on the
//! same port (the protocol found under the header-read deadline, `detect.rs`), hands each
//! request to `proxy::handle`, and drains in-flight connections on shutdown.
//!
//! With several workers, each is a thread running a current-thread runtime with an accept
//! loop of its own on the shared socket, as nginx's and Envoy's workers are: a connection
//! lives on the worker that accepted it, with the tasks it spawns (its upstream connections,
//! HTTP/2 streams, tunnels), so a request never crosses threads and no work-stealing
//! scheduler's bookkeeping is paid for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::client_io::ClientIo;
use crate::detect::{Protocol, detect};
use crate::edge::EdgeLimits;
use crate::live::Live;
use crate::proxy::{self, Downstream};
use crate::telemetry::metrics::Open;

/// Serves one accepted (and, with TLS, handshaken) connection until it ends; with a
/// watcher, it drains on shutdown.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Option<Watcher>,
    io: I,
    live: Arc<Live>,
    peer: SocketAddr,
    tls: bool,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = Arc::new(Downstream::new(peer, tls));
    let service = service_fn(move |req| {
        let (live, conn) = (live.clone(), conn.clone());
        async move { Ok::<_, Infallible>(proxy::handle(&live, req, &conn).await) }
    });
    // With upgrades: a WebSocket handshake hands the connection to a tunnel (`tunnel.rs`).
    let conn = builder.serve_connection_with_upgrades(io, service).into_owned();
    let ended = match watcher {
        Some(watcher) => watcher.watch(conn).await,
        None => conn.await,
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// A plain (not TLS) connection: protocol detection within `cfg.header_read_timeout`,
/// then served.
async fn serve_plain<S>(
    mut stream: S,
    peer: SocketAddr,
    live: Arc<Live>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Option<Watcher>,
    cfg: &ListenerConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match detect(&mut stream, cfg.header_read_timeout, false).await {
        Ok((protocol, read)) => {
            let io = TokioIo::new(ClientIo::new(stream, read, cfg.send_timeout));
            serve_connection(&builder_for(builder, protocol), watcher, io, live, peer, false).await;
        }
        Err(e) => tracing::debug!(error = %e, %peer, "closing a connection before serving it"),
    }
}

/// Serves one plain-HTTP connection over any byte stream as `serve` serves an accepted TCP
/// connection when the policy has no TLS: protocol detection, then HTTP/1.1 or h2c into
/// `proxy::handle`, with the same builder settings. It does not drain on shutdown, take a
/// connection slot or count in `warden_active_connections`. For in-process tests and the
/// `http_front` fuzz target (`fuzz/`).
pub async fn serve_io<S>(io: S, peer: SocketAddr, live: Arc<Live>, cfg: &ListenerConfig)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = connection_builder(live.limits(), cfg);
    serve_plain(io, peer, live, builder, None, cfg).await;
}

/// Takes an accepted connection through TLS (when the policy has certificates) and
/// protocol detection, each within the header-read timeout, then serves it. A connection that never
/// says what it speaks must not hold a slot.
async fn serve_accepted(
    stream: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    cfg: ListenerConfig,
) {
    let within = cfg.header_read_timeout;
    let started = tokio::time::Instant::now();
    // The policy decides per connection: TLS when the active snapshot has it.
    let Some(tls) = live.tls_config() else {
        return serve_plain(stream, peer, live, builder, Some(watcher), &cfg).await;
    };
    let mut tls_stream = match tokio::time::timeout(within, TlsAcceptor::from(tls).accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(error = %e, %peer, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    // ALPN already chose the protocol. HTTP/1.1's header timer starts at once; HTTP/2's
    // preface and first frame must arrive in what is left of the time.
    if tls_stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        let io = TokioIo::new(ClientIo::new(tls_stream, Vec::new(), cfg.send_timeout));
        return serve_connection(&builder_for(builder, Protocol::Http1), Some(watcher), io, live, peer, true).await;
    }
    let left = within.saturating_sub(started.elapsed());
    match detect(&mut tls_stream, left, true).await {
        Ok((protocol, read)) => {
            let io = TokioIo::new(ClientIo::new(tls_stream, read, cfg.send_timeout));
            serve_connection(&builder_for(builder, protocol), Some(watcher), io, live, peer, true).await;
        }
        Err(e) => tracing::debug!(error = %e, %peer, "closing a connection before serving it"),
    }
}

fn builder_for(builder: auto::Builder<TokioExecutor>, protocol: Protocol) -> auto::Builder<TokioExecutor> {
    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    }
}

/// The HTTP/1.1 and HTTP/2 settings every downstream connection is served with.
fn connection_builder(limits: &EdgeLimits, cfg: &ListenerConfig) -> auto::Builder<TokioExecutor> {
    // hyper's own buffer cap sits above Warden's limits, so an oversized head normally gets
    // Warden's 414/431 with a reason; only a far larger one is cut off by hyper itself.
    let buf_cap = (limits.head.max_uri_bytes + limits.head.max_header_bytes + (16 << 10)).max(8 << 10);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // writev(false): hyper copies head and body into one buffer, one iovec per write.
    // For the small messages a sidecar mostly carries this costs less than vectored writes
    // (see docs/performance.md, "Where Warden's time goes").
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .writev(false)
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(buf_cap);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(limits.head.max_header_bytes + limits.head.max_uri_bytes).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(cfg.header_read_timeout);
    builder
}

/// How the listener treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// After SIGTERM, how long in-flight requests may take.
    pub drain_timeout: Duration,
    /// How long a client may take to send a request's headers (slowloris); also the
    /// HTTP/2 keep-alive ping interval.
    pub header_read_timeout: Duration,
    /// Open downstream connections at most.
    pub max_connections: usize,
    /// The longest a write to a client may make no progress (`client_io`).
    pub send_timeout: Duration,
}

/// Serves on `workers` threads (this one and `workers - 1` more, `warden-worker-N`, started
/// here) until `shutdown` flips to true, then stops accepting and waits up to
/// `drain_timeout` for in-flight requests to finish on every worker. The future is this
/// thread's worker; it ends when every worker has drained.
pub fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: watch::Receiver<bool>,
    cfg: ListenerConfig,
    workers: usize,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    // The connection cap holds across workers.
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let socket = listener.into_std()?;
    let mut finished = Vec::new();
    for n in 1..workers {
        let (socket, live, shutdown, slots) = (socket.try_clone()?, live.clone(), shutdown.clone(), slots.clone());
        let (done, finish) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name(format!("warden-worker-{n}")).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => accept(listener, live, shutdown, cfg, slots).await,
                    Err(e) => tracing::error!(error = %e, worker = n, "a worker could not take the listening socket"),
                }
            });
            // Dropping the runtime ends what the worker's connections left behind.
            drop(runtime);
            drop(done);
        })?;
        finished.push(finish);
    }
    let listener = TcpListener::from_std(socket)?;
    Ok(async move {
        accept(listener, live, shutdown, cfg, slots).await;
        for worker in finished {
            let _ = worker.await;
        }
    })
}

/// One worker's accept loop, then its drain. Behind a `dyn` future: its two callers would
/// otherwise each inline their own copy of every connection's code (~650 KB of text, half
/// a MiB more of a sidecar's resident memory).
fn accept(
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: watch::Receiver<bool>,
    cfg: ListenerConfig,
    slots: Arc<Semaphore>,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(accept_loop(listener, live, shutdown, cfg, slots))
}

async fn accept_loop(
    listener: TcpListener,
    live: Arc<Live>,
    mut shutdown: watch::Receiver<bool>,
    cfg: ListenerConfig,
    slots: Arc<Semaphore>,
) {
    let builder = connection_builder(live.limits(), &cfg);
    let graceful = GracefulShutdown::new();

    loop {
        // At the connection cap, stop accepting: new connections wait in the kernel's
        // backlog instead of being accepted and dropped.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (live, builder, watcher) = (live.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let _slot = slot;
                    let _open = Open::new(&live.telemetry().metrics.active_connections);
                    serve_accepted(stream, peer, live, builder, watcher, cfg).await;
                });
            }
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        }
    }
    drop(listener);
    tracing::info!(timeout = ?cfg.drain_timeout, "draining in-flight requests");
    // HTTP/2 connections get GOAWAY, HTTP/1.1 ones close after their request; tunnels,
    // which left hyper at their upgrade, run on meanwhile. All share one deadline.
    let deadline = tokio::time::Instant::now() + cfg.drain_timeout;
    let connections = async {
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("drained"),
            () = tokio::time::sleep_until(deadline) => tracing::warn!("drain timeout reached; closing the remaining connections"),
        }
    };
    tokio::join!(connections, live.tunnels().drain(deadline));
}
