//! Connections to one upstream endpoint, built on hyper's low-level client connections:
//! keep-alive HTTP/1.1 connections, one request at a time each, and multiplexed HTTP/2
//! connections, up to `max_concurrent_streams` requests each.
//!
//! Why not hyper-util's pooling client: a sidecar's downstream HTTP/1.1 connection sends
//! its requests one after another, so the upstream connection it used last is free again
//! when its next request comes. Each downstream connection keeps that one connection aside
//! (`Affinity`) and reuses it without touching the shared pool; other requests take an
//! idle connection from the endpoint's LIFO list or dial a new one. The idle lists are per
//! worker (`crate::shards`): a connection's I/O task runs on the worker that dialled it,
//! and a request on another worker would wake that one for every read and write; only a
//! request waiting at the breakers' limit takes another worker's idle connection. A
//! connection goes back only when its request body was sent whole and its response body
//! read to the end (`response_body.rs`); one abandoned mid-body, or answered before the
//! client finished uploading, is closed, never reused. An HTTP/2 request takes a stream on the least busy open
//! connection with one free; one connection is dialled at a time, and the requests that
//! arrive meanwhile wait for its streams instead of each dialling their own.
//!
//! Circuit breakers (Envoy's `max_connections` and `max_pending_requests`, per endpoint):
//! at most `max_connections` connections are open to an endpoint; past that a request
//! waits for one to come back idle (a stream to free) or to close, and at most
//! `max_pending` requests wait. One more is refused (503 `upstream_overloaded`) rather than
//! dialled: a stalled upstream then costs a bounded number of descriptors, and other
//! routes keep theirs.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::Authority;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use warden_policy::refusal::UpstreamFailure;

use crate::shards::Sharded;
use crate::upstream::connect::{self, Http1Sender, Http2Sender};
use crate::upstream::error::SendError;
use crate::upstream::health::Health;
use crate::upstream::tls::ClientTls;

/// Idle connections kept per endpoint and worker (nginx's `keepalive 256` is the usual
/// peer setting).
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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
    /// Requests at once on one HTTP/2 connection.
    pub max_streams: u32,
}

impl Breakers {
    /// 0 for either connection limit means the default.
    pub fn new(connect_timeout: Duration, max_connections: u32, max_pending: u32, max_streams: u32) -> Self {
        let or_default = |n: u32| if n == 0 { DEFAULT_BREAKER } else { n };
        Breakers {
            connect_timeout,
            max_connections: or_default(max_connections),
            max_pending: or_default(max_pending),
            max_streams: max_streams.max(1),
        }
    }
}

/// One endpoint's pool.
#[derive(Debug)]
pub struct EndpointPool {
    /// The address dialled.
    authority: Authority,
    /// The endpoint as the policy wrote it (a name resolves to several addresses): the
    /// name TLS expects.
    name: Authority,
    breakers: Breakers,
    tls: Option<Arc<ClientTls>>,
    /// Per worker: its own connections, most recently used last.
    idle: Sharded<Vec<(Http1Sender, Instant)>>,
    /// Open HTTP/2 connections.
    multiplexed: Mutex<Vec<Arc<Multiplexed>>>,
    /// Held while an HTTP/2 connection is dialled.
    dialing: tokio::sync::Mutex<()>,
    /// A permit per open connection, held by its I/O task.
    connections: Arc<Semaphore>,
    /// Requests waiting for a connection now.
    pending: AtomicUsize,
    /// Woken when an HTTP/1.1 connection goes back to the idle list.
    returned: Notify,
    /// Woken when an HTTP/2 stream frees or a connection is added.
    streams_freed: Notify,
    /// Requests refused because the breakers were open, since start.
    overflows: AtomicU64,
    /// What its answers say about it: shared, like the pool, by every snapshot.
    pub health: Arc<Health>,
}

/// An open HTTP/2 connection and how many of its streams are in use.
#[derive(Debug)]
pub(super) struct Multiplexed {
    sender: Http2Sender,
    streams: AtomicU32,
}

/// A stream taken on an HTTP/2 connection: freed when dropped.
#[derive(Debug)]
pub(super) struct StreamSlot {
    conn: Arc<Multiplexed>,
    endpoint: Arc<EndpointPool>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::AcqRel);
        self.endpoint.streams_freed.notify_waiters();
    }
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
    pub fn new(authority: Authority, name: Authority, breakers: Breakers, tls: Option<Arc<ClientTls>>) -> Self {
        EndpointPool {
            authority,
            name,
            breakers,
            tls,
            idle: Sharded::default(),
            multiplexed: Mutex::new(Vec::new()),
            dialing: tokio::sync::Mutex::new(()),
            connections: Arc::new(Semaphore::new(breakers.max_connections as usize)),
            pending: AtomicUsize::new(0),
            returned: Notify::new(),
            streams_freed: Notify::new(),
            overflows: AtomicU64::new(0),
            health: Arc::default(),
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Whether connections to it are TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
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

    fn overflow(&self) -> SendError {
        self.overflows.fetch_add(1, Ordering::Relaxed);
        SendError::Overloaded
    }

    /// An HTTP/1.1 connection for one request: a new one while under `max_connections`;
    /// otherwise, as one of at most `max_pending` waiters, the first to come back idle or
    /// the first slot a closed one frees. True when the connection is new.
    pub(super) async fn acquire(&self) -> Result<(Http1Sender, bool), SendError> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Ok((self.connect_http1(permit).await?, true));
        }
        let Some(_waiting) = Waiting::enter(&self.pending, self.breakers.max_pending as usize) else {
            return Err(self.overflow());
        };
        loop {
            // Registered before looking, so a connection returned in between is not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            // At the limit: any worker's idle connection beats waiting.
            if let Some(sender) = self.take_idle().or_else(|| self.idle.each().find_map(|mut i| fresh(&mut i))) {
                return Ok((sender, false));
            }
            tokio::select! {
                permit = self.connections.clone().acquire_owned() => {
                    let permit = permit.map_err(|_| SendError::Overloaded)?;
                    return Ok((self.connect_http1(permit).await?, true));
                }
                () = &mut returned => {}
            }
        }
    }

    /// This worker's most recently used idle connection that is still open and fresh.
    pub(super) fn take_idle(&self) -> Option<Http1Sender> {
        fresh(&mut self.idle.mine())
    }

    /// Back to this worker's idle list (the worker that used it last: the one whose
    /// requests it serves, and nearly always the one that dialled it).
    fn put(&self, sender: Http1Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.mine();
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
            drop(idle);
            self.returned.notify_one();
        }
    }

    async fn connect_http1(&self, permit: OwnedSemaphorePermit) -> Result<Http1Sender, UpstreamFailure> {
        let io = connect::dial(&self.authority, &self.name, self.breakers.connect_timeout, self.tls.as_deref(), false)
            .await?;
        connect::http1(io, permit, self.authority.clone()).await
    }

    /// A stream on an HTTP/2 connection: on the least busy open one with a stream free;
    /// else on a new connection while under `max_connections` (one dialled at a time: who
    /// comes meanwhile waits for its streams); else, as one of at most `max_pending`
    /// waiters, the first stream to free. True when the connection is new.
    pub(super) async fn acquire_stream(self: &Arc<Self>) -> Result<(Http2Sender, StreamSlot, bool), SendError> {
        if let Some((sender, slot)) = self.take_stream() {
            return Ok((sender, slot, false));
        }
        let Some(_waiting) = Waiting::enter(&self.pending, self.breakers.max_pending as usize) else {
            return Err(self.overflow());
        };
        loop {
            let freed = self.streams_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some((sender, slot)) = self.take_stream() {
                return Ok((sender, slot, false));
            }
            // Not dialling now (a dial in progress wakes the waiters when it is done).
            let Ok(dialing) = self.dialing.try_lock() else {
                freed.await;
                continue;
            };
            // A dial that finished between the look above and the lock left streams free.
            if let Some((sender, slot)) = self.take_stream() {
                return Ok((sender, slot, false));
            }
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                // Every connection is open and full: wait for a stream, or for one to close.
                drop(dialing);
                tokio::select! {
                    permit = self.connections.clone().acquire_owned() => drop(permit),
                    () = &mut freed => {}
                }
                continue;
            };
            let dialed = self.connect_http2(permit).await;
            let taken = dialed.map(|sender| {
                let conn = Arc::new(Multiplexed { sender, streams: AtomicU32::new(1) });
                self.multiplexed.lock().unwrap_or_else(PoisonError::into_inner).push(conn.clone());
                (conn.sender.clone(), StreamSlot { conn, endpoint: self.clone() }, true)
            });
            drop(dialing);
            // Whatever happened, the others waiting look again (and may dial).
            self.streams_freed.notify_waiters();
            return taken;
        }
    }

    fn take_stream(self: &Arc<Self>) -> Option<(Http2Sender, StreamSlot)> {
        let mut conns = self.multiplexed.lock().unwrap_or_else(PoisonError::into_inner);
        conns.retain(|c| !c.sender.is_closed());
        let max = self.breakers.max_streams;
        let conn = conns
            .iter()
            .filter(|c| c.streams.load(Ordering::Acquire) < max)
            .min_by_key(|c| c.streams.load(Ordering::Relaxed))?;
        conn.streams.fetch_add(1, Ordering::AcqRel);
        Some((conn.sender.clone(), StreamSlot { conn: conn.clone(), endpoint: self.clone() }))
    }

    async fn connect_http2(&self, permit: OwnedSemaphorePermit) -> Result<Http2Sender, SendError> {
        let io = connect::dial(&self.authority, &self.name, self.breakers.connect_timeout, self.tls.as_deref(), true)
            .await?;
        Ok(connect::http2(io, permit, self.authority.clone()).await?)
    }
}

/// The most recently used connection of an idle list that is still open and fresh; the
/// closed and stale ones above it are dropped.
fn fresh(idle: &mut Vec<(Http1Sender, Instant)>) -> Option<Http1Sender> {
    while let Some((sender, since)) = idle.pop() {
        if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
            return Some(sender);
        }
    }
    None
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

/// The upstream HTTP/1.1 connection a downstream connection used last, kept for its next
/// request. Dropped with the downstream connection, it goes back to its endpoint's pool.
#[derive(Debug, Default)]
pub struct Affinity {
    slot: Mutex<Option<(Arc<EndpointPool>, Http1Sender, Instant)>>,
}

impl Affinity {
    /// The kept connection, if it is to `endpoint` and still open and fresh.
    pub(super) fn take(&self, endpoint: &Arc<EndpointPool>) -> Option<Http1Sender> {
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
    pub(super) fn keep(&self, endpoint: Arc<EndpointPool>, sender: Http1Sender) {
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
