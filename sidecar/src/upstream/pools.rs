//! The registry that shares connection pools across snapshots, so a policy push never
//! drops warm connections, and a snapshot's upstreams bound to those pools.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use http::uri::Authority;
use warden_policy::snapshot::{Protocol, Snapshot, UpstreamTls};

use crate::upstream::pool::{Breakers, EndpointPool};
use crate::upstream::tls::ClientTls;

/// Endpoint pools by (endpoint, connect timeout and circuit breakers, TLS settings). Holds
/// them weakly: a pool lives as long as a snapshot uses it, and is found again by the next
/// snapshot that names it. Only touched when a snapshot is compiled, never per request.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Weak<EndpointPool>>>,
}

type PoolKey = (String, Breakers, Option<UpstreamTls>);

impl Pools {
    /// The shared pool for this endpoint and these settings.
    pub fn endpoint(
        &self,
        authority: &Authority,
        breakers: Breakers,
        tls: Option<&Arc<ClientTls>>,
    ) -> Arc<EndpointPool> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|_, p| p.strong_count() > 0);
        let key = (authority.as_str().to_owned(), breakers, tls.map(|t| t.spec.clone()));
        if let Some(p) = pools.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        let p = Arc::new(EndpointPool::new(authority.clone(), breakers, tls.cloned()));
        pools.insert(key, Arc::downgrade(&p));
        p
    }
}

impl Pools {
    /// The snapshot's upstreams bound to their pools, in the snapshot's order (`Upstream::
    /// index`); `app`'s one endpoint is the sidecar's `--upstream`. `tls` is each upstream's
    /// loaded TLS, by index (`tls::load_all`).
    pub fn bind(&self, snapshot: &Snapshot, app: &Authority, tls: &[Option<Arc<ClientTls>>]) -> Vec<BoundUpstream> {
        snapshot
            .upstreams
            .iter()
            .map(|u| {
                let breakers =
                    Breakers::new(u.connect_timeout, u.max_connections, u.max_pending, u.max_concurrent_streams);
                let tls = tls.get(u.index).and_then(Option::as_ref);
                let endpoints = match u.endpoints.is_empty() {
                    true => vec![self.endpoint(app, breakers, tls)],
                    false => u.endpoints.iter().map(|e| self.endpoint(e, breakers, tls)).collect(),
                };
                BoundUpstream { name: u.name.clone(), protocol: u.protocol, endpoints, next: AtomicUsize::new(0) }
            })
            .collect()
    }
}

/// An upstream of the active snapshot with its endpoints' pools, picked round-robin.
#[derive(Debug)]
pub struct BoundUpstream {
    pub name: Arc<str>,
    pub protocol: Protocol,
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::Authority;
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
        Snapshot::try_from(&build(&p.policy, &p.source, 1)).unwrap()
    }

    #[test]
    fn endpoints_rotate_and_app_is_the_sidecars_upstream() {
        let app = Authority::from_static("127.0.0.1:8080");
        let bound = Pools::default().bind(&compile(), &app, &[]);
        let picks: Vec<String> = (0..4).map(|_| bound[1].pick().authority().to_string()).collect();
        assert_eq!(picks, ["127.0.0.1:9090", "127.0.0.1:9091", "127.0.0.1:9090", "127.0.0.1:9091"]);
        assert_eq!(bound[0].pick().authority(), &app);
    }

    #[test]
    fn a_recompiled_snapshot_shares_connection_pools_until_none_uses_them() {
        let (pools, app) = (Pools::default(), Authority::from_static("127.0.0.1:8080"));
        let first = pools.bind(&compile(), &app, &[]);
        let second = pools.bind(&compile(), &app, &[]);
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
