//! Keep-alive HTTP/1.1 connections to one upstream endpoint, built on hyper's low-level
//! client connections.
//!
//! Why not hyper-util's pooling client: a sidecar's downstream HTTP/1.1 connection sends
//! its requests one after another, so the upstream connection it used last is free again
//! when its next request comes. Each downstream connection keeps that one connection aside
//! (`Affinity`) and reuses it without touching the shared pool; other requests take an
//! idle connection from the endpoint's LIFO list or dial a new one. A connection goes back
//! only when its request body was sent whole (`RequestBody`) and its response body read to
//! the end (`UpstreamBody`); one abandoned mid-body, or answered before the client finished
//! uploading, is closed, never reused.
//!
//! Circuit breakers (Envoy's `max_connections` and `max_pending_requests`, per endpoint):
//! at most `max_connections` connections are open to an endpoint; past that a request
//! waits for one to come back idle or to close, and at most `max_pending` requests wait.
//! One more is refused (503 `upstream_overloaded`) rather than dialled: a stalled
//! upstream then costs a bounded number of descriptors, and other routes keep theirs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use warden_policy::refusal::UpstreamFailure;

use crate::upstream::error::{SendError, connect_failure};

/// Idle connections kept per endpoint (nginx's `keepalive 256` is the usual peer setting).
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most a connection buffers from its upstream: a response head must fit.
pub(super) const UPSTREAM_BUFFER: usize = 64 << 10;

type Sender = SendRequest<RequestBody>;

/// The circuit breakers' default, per endpoint (Envoy's is 1024 for both).
pub const DEFAULT_BREAKER: u32 = 1024;

/// How an endpoint's connections are made and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Breakers {
    pub connect_timeout: Duration,
    /// Open connections at most.
    pub max_connections: u32,
    /// Requests waiting for a connection at most.
    pub max_pending: u32,
}

impl Breakers {
    /// 0 for either limit means the default.
    pub fn new(connect_timeout: Duration, max_connections: u32, max_pending: u32) -> Self {
        let or_default = |n: u32| if n == 0 { DEFAULT_BREAKER } else { n };
        Breakers { connect_timeout, max_connections: or_default(max_connections), max_pending: or_default(max_pending) }
    }
}

/// One endpoint's pool.
#[derive(Debug)]
pub struct EndpointPool {
    authority: Authority,
    breakers: Breakers,
    idle: Mutex<Vec<(Sender, Instant)>>,
    /// A permit per open connection, held by its I/O task.
    connections: Arc<Semaphore>,
    /// Requests waiting for a connection now.
    pending: AtomicUsize,
    /// Woken when a connection goes back to the idle list.
    returned: Notify,
    /// Requests refused because the breakers were open, since start.
    overflows: AtomicU64,
}

/// What an endpoint's breakers look like now, for `/config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BreakerState {
    pub max_connections: u32,
    pub max_pending: u32,
    pub open_connections: usize,
    pub pending: usize,
    pub overflows: u64,
}

impl EndpointPool {
    pub fn new(authority: Authority, breakers: Breakers) -> Self {
        EndpointPool {
            authority,
            breakers,
            idle: Mutex::new(Vec::new()),
            connections: Arc::new(Semaphore::new(breakers.max_connections as usize)),
            pending: AtomicUsize::new(0),
            returned: Notify::new(),
            overflows: AtomicU64::new(0),
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn breaker_state(&self) -> BreakerState {
        BreakerState {
            max_connections: self.breakers.max_connections,
            max_pending: self.breakers.max_pending,
            open_connections: self.breakers.max_connections as usize - self.connections.available_permits(),
            pending: self.pending.load(Ordering::Relaxed),
            overflows: self.overflows.load(Ordering::Relaxed),
        }
    }

    /// A connection for one request: a new one while under `max_connections`; otherwise,
    /// as one of at most `max_pending` waiters, the first to come back idle or the first
    /// slot a closed one frees. True when the connection is new.
    pub(super) async fn acquire(&self) -> Result<(Sender, bool), SendError> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Ok((self.connect(permit).await?, true));
        }
        let Some(_waiting) = Waiting::enter(&self.pending, self.breakers.max_pending as usize) else {
            self.overflows.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Overloaded);
        };
        loop {
            // Registered before looking, so a connection returned in between is not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(sender) = self.take_idle() {
                return Ok((sender, false));
            }
            tokio::select! {
                permit = self.connections.clone().acquire_owned() => {
                    let permit = permit.map_err(|_| SendError::Overloaded)?;
                    return Ok((self.connect(permit).await?, true));
                }
                () = &mut returned => {}
            }
        }
    }

    /// The most recently used idle connection that is still open and fresh.
    pub(super) fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
            drop(idle);
            self.returned.notify_one();
        }
    }

    /// Dials a new connection (resolving the host name now, so DNS changes are followed)
    /// and starts its I/O task, which holds `permit` for as long as the connection is open.
    async fn connect(&self, permit: OwnedSemaphorePermit) -> Result<Sender, UpstreamFailure> {
        let dial = TcpStream::connect(self.authority.as_str());
        let stream = match tokio::time::timeout(self.breakers.connect_timeout, dial).await {
            Err(_) => return Err(UpstreamFailure::ConnectTimeout),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, endpoint = %self.authority, "upstream connect failed");
                return Err(connect_failure(&e));
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        // writev(false): head and small bodies go out in one copy and one iovec, cheaper
        // than vectored writes for the small messages a sidecar mostly carries.
        // max_buf_size: hyper's read buffer otherwise grows to ~400 KiB per connection to fit
        // large bodies (and keeps it); 64 KiB bounds that and still fits any response head
        // Envoy (60 KiB) or nginx (a few KiB) would pass.
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .max_buf_size(UPSTREAM_BUFFER)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| UpstreamFailure::Protocol)?;
        let endpoint = self.authority.clone();
        tokio::spawn(async move {
            let _open = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %endpoint, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }
}

/// Counts a request among an endpoint's waiters while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(pending: &'a AtomicUsize, max: usize) -> Option<Waiting<'a>> {
        pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Waiting(pending))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The upstream connection a downstream connection used last, kept for its next request.
/// Dropped with the downstream connection, it goes back to its endpoint's pool.
#[derive(Debug, Default)]
pub struct Affinity {
    slot: Mutex<Option<(Arc<EndpointPool>, Sender, Instant)>>,
}

impl Affinity {
    /// The kept connection, if it is to `endpoint` and still open and fresh.
    pub(super) fn take(&self, endpoint: &Arc<EndpointPool>) -> Option<Sender> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some((p, s, since)) if Arc::ptr_eq(&p, endpoint) => {
                (!s.is_closed() && since.elapsed() < IDLE_TIMEOUT).then_some(s)
            }
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Keeps `sender` for the next request, or gives it to the pool if one is kept already.
    fn keep(&self, endpoint: Arc<EndpointPool>, sender: Sender) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some((endpoint, sender, Instant::now()));
        } else {
            drop(slot);
            endpoint.put(sender);
        }
    }
}

impl Drop for Affinity {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((endpoint, sender, _)) = slot.take() {
            endpoint.put(sender);
        }
    }
}

/// How a request body's upload went, shared by the request side, the response side and
/// the caller.
#[derive(Debug, Default)]
pub struct Upload {
    /// Sent whole: the connection may be reused once the response is read.
    pub(super) sent: AtomicBool,
    /// Cut off at the route's `max_body`.
    pub(super) too_large: AtomicBool,
    /// The client's body broke (bad chunk framing, connection lost mid-body).
    pub(super) broken: AtomicBool,
}

/// A request body as it arrives: streamed from the client, or already buffered (a signed
/// webhook, whose signature had to be checked before forwarding).
pub type InboundBody = http_body_util::Either<Incoming, http_body_util::Full<Bytes>>;

/// The request body on its way upstream: streamed, never buffered, cut off with an error
/// once it passes `limit` bytes, and recording when it has been sent whole.
pub struct RequestBody {
    inner: InboundBody,
    limit: u64,
    seen: u64,
    /// None for a request without a body (most of them): nothing to track, nothing to
    /// allocate.
    upload: Option<Arc<Upload>>,
}

/// The error a body cut off at its limit ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body passed its limit of {0} bytes")]
pub struct BodyTooLarge(u64);

impl RequestBody {
    pub(super) fn new(inner: InboundBody, limit: u64) -> Self {
        let upload = (!inner.is_end_stream()).then(Arc::default);
        RequestBody { inner, limit, seen: 0, upload }
    }

    pub(super) fn upload(&self) -> Option<Arc<Upload>> {
        self.upload.clone()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.seen = self.seen.saturating_add(data.len() as u64);
            if self.seen > self.limit {
                if let Some(u) = &self.upload {
                    u.too_large.store(true, Ordering::Release);
                }
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge(self.limit)))));
            }
        }
        if let Some(u) = &self.upload {
            if matches!(polled, Poll::Ready(Some(Err(_)))) {
                u.broken.store(true, Ordering::Release);
            } else if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
                u.sent.store(true, Ordering::Release);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An upstream response body that returns its connection for reuse once read to the end.
pub struct UpstreamBody {
    inner: Incoming,
    done: bool,
    upload: Option<Arc<Upload>>,
    lease: Option<Lease>,
    /// The longest wait for the next piece of the body.
    idle_timeout: Duration,
    /// Armed the first time the body has to wait (most small bodies never do).
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error a stalled response body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?} in the middle of a response body")]
pub struct StreamIdle(Duration);

impl UpstreamBody {
    pub(super) fn new(inner: Incoming, upload: Option<Arc<Upload>>, lease: Lease, idle_timeout: Duration) -> Self {
        UpstreamBody { inner, done: false, upload, lease: Some(lease), idle_timeout, idle: None }
    }
}

/// A connection on loan to one exchange, and where it goes back.
pub(super) type Lease = (Sender, Arc<EndpointPool>, Arc<Affinity>);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => {
                let timeout = self.idle_timeout;
                let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if idle.as_mut().poll(cx).is_ready() {
                    // The connection is mid-message: it cannot be reused.
                    self.lease = None;
                    return Poll::Ready(Some(Err(Box::new(StreamIdle(timeout)))));
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                let timeout = self.idle_timeout;
                if let Some(idle) = self.idle.as_mut() {
                    idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
            }
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Err(_))) => self.lease = None,
        }
        polled.map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // The server side may drop a body as soon as it has written Content-Length bytes,
        // without polling for the end: `is_end_stream` covers that case.
        let request_sent = self.upload.as_ref().is_none_or(|u| u.sent.load(Ordering::Acquire));
        let finished = (self.done || self.inner.is_end_stream()) && request_sent;
        if finished && let Some((sender, endpoint, affinity)) = self.lease.take() {
            affinity.keep(endpoint, sender);
        }
    }
}
