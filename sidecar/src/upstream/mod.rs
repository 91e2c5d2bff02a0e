//! Talking to upstreams: the per-endpoint connection pools (`pool.rs`), the registry that
//! shares them across snapshots so a policy push never drops warm connections, sending a
//! request, and sorting failures into the refusals the client sees.

mod pool;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};

pub use pool::{Affinity, Breakers, EndpointPool, InboundBody, RequestBody, UpstreamBody};

use warden_policy::snapshot::{InvalidSnapshot, Snapshot};

pub use warden_policy::refusal::UpstreamFailure;

/// A failed connect, as the client is told.
fn connect_failure(e: &io::Error) -> UpstreamFailure {
    if e.kind() == io::ErrorKind::TimedOut { UpstreamFailure::ConnectTimeout } else { UpstreamFailure::Refused }
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

impl Pools {
    /// The snapshot's upstreams bound to their pools, in the snapshot's order (`Upstream::
    /// index`); `app`'s one endpoint is the sidecar's `--upstream`.
    pub fn bind(&self, snapshot: &Snapshot, app: &Authority) -> Vec<BoundUpstream> {
        snapshot
            .upstreams
            .iter()
            .map(|u| {
                let breakers = Breakers::new(u.connect_timeout, u.max_connections, u.max_pending);
                let endpoints = match u.endpoints.is_empty() {
                    true => vec![self.endpoint(app, breakers)],
                    false => u.endpoints.iter().map(|e| self.endpoint(e, breakers)).collect(),
                };
                BoundUpstream { name: u.name.clone(), endpoints, next: AtomicUsize::new(0) }
            })
            .collect()
    }
}

/// An upstream of the active snapshot with its endpoints' pools, picked round-robin.
#[derive(Debug)]
pub struct BoundUpstream {
    pub name: Arc<str>,
    pub endpoints: Vec<Arc<EndpointPool>>,
    next: AtomicUsize,
}

impl BoundUpstream {
    /// The next endpoint in round-robin order.
    pub fn pick(&self) -> &Arc<EndpointPool> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.endpoints[i % self.endpoints.len()]
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

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::limits::LimitState;
    use warden_policy::snapshot::CompileContext;
    use warden_policy::yaml::{build, parse_service};

    const POLICY: &str = "service: orders
upstreams:
  admin: { endpoints: [\"127.0.0.1:9090\", \"127.0.0.1:9091\"] }
routes:
  - name: admin
    match: { path_prefix: /admin }
    upstream: admin
";

    fn compile() -> Snapshot {
        let p = parse_service("p.yaml", POLICY, None).unwrap();
        let ctx = CompileContext { service: None, read_files: true, limits: &LimitState::default() };
        Snapshot::compile(&build(&p.policy, &p.source, 1), &ctx).unwrap()
    }

    #[test]
    fn endpoints_rotate_and_app_is_the_sidecars_upstream() {
        let app = Authority::from_static("127.0.0.1:8080");
        let bound = Pools::default().bind(&compile(), &app);
        let picks: Vec<String> = (0..4).map(|_| bound[1].pick().authority().to_string()).collect();
        assert_eq!(picks, ["127.0.0.1:9090", "127.0.0.1:9091", "127.0.0.1:9090", "127.0.0.1:9091"]);
        assert_eq!(bound[0].pick().authority(), &app);
    }

    #[test]
    fn a_recompiled_snapshot_shares_connection_pools_until_none_uses_them() {
        let (pools, app) = (Pools::default(), Authority::from_static("127.0.0.1:8080"));
        let first = pools.bind(&compile(), &app);
        let second = pools.bind(&compile(), &app);
        for (a, b) in first.iter().zip(&second) {
            for (x, y) in a.endpoints.iter().zip(&b.endpoints) {
                assert!(Arc::ptr_eq(x, y), "{} is shared", x.authority());
            }
        }
        let admin = Arc::downgrade(&first[1].endpoints[0]);
        drop((first, second));
        assert!(admin.upgrade().is_none(), "a pool no snapshot uses is dropped with its connections");
    }
}
