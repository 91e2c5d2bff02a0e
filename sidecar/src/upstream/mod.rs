//! Talking to upstreams: the per-endpoint connection pools (`pool.rs`), the registry that
//! shares them across snapshots so a policy push never drops warm connections, sending a
//! request, and sorting failures into the refusals the client sees.

mod pool;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};

pub use pool::{Affinity, Breakers, EndpointPool, InboundBody, RequestBody, UpstreamBody};

use crate::config::{InvalidSnapshot, Snapshot};

/// What went wrong talking to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Nothing listens there (connection refused, reset, unreachable, unresolvable).
    Refused,
    /// The TCP connect did not finish within `connect_timeout`.
    ConnectTimeout,
    /// The upstream broke the HTTP exchange.
    Protocol,
}

impl UpstreamFailure {
    fn from_connect(e: &io::Error) -> Self {
        if e.kind() == io::ErrorKind::TimedOut { UpstreamFailure::ConnectTimeout } else { UpstreamFailure::Refused }
    }
}

/// Endpoint pools by (endpoint, connect timeout and circuit breakers). Holds them weakly:
/// a pool lives as long as a snapshot uses it, and is found again by the next snapshot
/// that names it. Only touched when a snapshot is compiled, never per request.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<HashMap<(String, Breakers), Weak<EndpointPool>>>,
}

impl Pools {
    /// The shared pool for this endpoint and these settings.
    pub fn endpoint(&self, authority: &Authority, breakers: Breakers) -> Arc<EndpointPool> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|_, p| p.strong_count() > 0);
        let key = (authority.as_str().to_owned(), breakers);
        if let Some(p) = pools.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        let p = Arc::new(EndpointPool::new(authority.clone(), breakers));
        pools.insert(key, Arc::downgrade(&p));
        p
    }
}

/// Why a request could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Upstream(UpstreamFailure),
    /// The endpoint's circuit breakers are open: `max_connections` connections are busy and
    /// `max_pending` requests already wait for one.
    Overloaded,
    /// The request body passed the route's `max_body` while streaming.
    BodyTooLarge,
    /// The client's request body broke while streaming (its fault, not the upstream's).
    BadRequestBody,
}

impl From<UpstreamFailure> for SendError {
    fn from(f: UpstreamFailure) -> Self {
        SendError::Upstream(f)
    }
}

/// Sends a request (origin-form URI, Host set) to `endpoint` on a pooled connection,
/// preferring the one this downstream connection used last, streaming at most
/// `max_body` bytes of body. A reused connection that turns out closed before the
/// request was written is retried on another; once written, a failure is the caller's.
pub async fn send(
    endpoint: &Arc<EndpointPool>,
    affinity: &Arc<Affinity>,
    req: Request<InboundBody>,
    max_body: u64,
    stream_idle_timeout: Duration,
) -> Result<Response<UpstreamBody>, SendError> {
    let mut req = req.map(|b| RequestBody::new(b, max_body));
    let upload = req.body().upload();
    let failed = |f: UpstreamFailure| {
        use std::sync::atomic::Ordering::Acquire;
        match upload.as_deref() {
            Some(u) if u.too_large.load(Acquire) => SendError::BodyTooLarge,
            Some(u) if u.broken.load(Acquire) => SendError::BadRequestBody,
            _ => SendError::Upstream(f),
        }
    };
    // Two reused connections may be stale; the third attempt always dials (or waits).
    for attempt in 0..3 {
        let reused = if attempt < 2 { affinity.take(endpoint).or_else(|| endpoint.take_idle()) } else { None };
        let (mut sender, fresh) = match reused {
            Some(s) => (s, false),
            None => endpoint.acquire().await?,
        };
        if sender.ready().await.is_err() {
            if fresh {
                return Err(failed(UpstreamFailure::Protocol));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) if head_bytes(resp.headers()) > pool::UPSTREAM_BUFFER => {
                // hyper's buffer cap is a soft one (one read may bring more): the same
                // limit, held exactly. The connection is mid-message and goes with `sender`.
                tracing::debug!(endpoint = %endpoint.authority(), "upstream response head too large");
                return Err(failed(UpstreamFailure::Protocol));
            }
            Ok(resp) => {
                let upload = upload.clone();
                let lease = (sender, endpoint.clone(), affinity.clone());
                return Ok(resp.map(|body| UpstreamBody::new(body, upload, lease, stream_idle_timeout)));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => req = unsent,
                _ => {
                    tracing::debug!(error = %e.error(), endpoint = %endpoint.authority(), "upstream request failed");
                    return Err(failed(UpstreamFailure::Protocol));
                }
            },
        }
    }
    Err(failed(UpstreamFailure::Protocol))
}

/// A response head's size as sent: "name: value\r\n" per field.
fn head_bytes(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

/// Refuses a snapshot whose upstream host names do not resolve from this sidecar: only
/// the sidecar can tell, and serving it would turn every request on those routes into 502.
pub async fn check_resolvable(snapshot: &Snapshot) -> Result<(), InvalidSnapshot> {
    for up in snapshot.upstreams.iter().skip(1) {
        for ep in &up.endpoints {
            let ep = ep.authority();
            if ep.host().trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            let lookup = tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host(ep.as_str()))
                .await
                .map(|r| r.map(|addrs| addrs.count()));
            let reason = match lookup {
                Ok(Ok(n)) if n > 0 => continue,
                Ok(Ok(_)) => format!("endpoint '{ep}' resolves to no address"),
                Ok(Err(e)) => format!("endpoint '{ep}' does not resolve: {e}"),
                Err(_) => format!("endpoint '{ep}' did not resolve within 2s"),
            };
            return Err(InvalidSnapshot::Upstream { upstream: up.name.to_string(), reason });
        }
    }
    Ok(())
}
