//! The registry that shares connection pools across snapshots, so a policy push never
//! drops warm connections, and a snapshot's upstreams bound to those pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use http::uri::Authority;
use warden_policy::snapshot::{Outlier, Protocol, RetryBudget, Snapshot, UpstreamTls};

use crate::upstream::budget::Budget;
use crate::upstream::health::now_ms;
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
                BoundUpstream {
                    name: u.name.clone(),
                    protocol: u.protocol,
                    endpoints,
                    outlier: u.outlier,
                    retry_budget: u.retry_budget,
                    budget: Budget::default(),
                }
            })
            .collect()
    }
}

/// An upstream of the active snapshot with its endpoints' pools.
///
/// Balancing is the power of two choices over outstanding requests (linkerd2-proxy's P2C,
/// with the load it can see without a clock: requests in flight): two endpoints at random,
/// the less busy one wins. It needs no shared cursor, sends a slow or stalled endpoint
/// fewer requests at once, and its state (the counts) lives with the pools, so a swap keeps
/// it. An EWMA of latency would react to slowness that is not yet queueing, at the price of
/// a timestamp per request; in-flight counts already follow what a sidecar sees.
#[derive(Debug)]
pub struct BoundUpstream {
    pub name: Arc<str>,
    pub protocol: Protocol,
    pub endpoints: Vec<Arc<EndpointPool>>,
    pub outlier: Outlier,
    pub retry_budget: RetryBudget,
    /// Requests and retries counted against the budget (starts afresh with each snapshot).
    pub budget: Budget,
}

impl BoundUpstream {
    /// An endpoint for the next try: of those not `tried` yet, the less busy of two picked at
    /// random among the ones in rotation (or among all of them when every one is ejected);
    /// None when every endpoint was tried.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 1 {
            return (!tried.contains(&0)).then_some(0);
        }
        let now = now_ms();
        let fresh = |i: &usize| !tried.contains(i);
        let in_rotation = |i: &usize| fresh(i) && !self.endpoints[*i].health.ejected(now);
        let mut count = (0..n).filter(in_rotation).count();
        let candidates: &dyn Fn(&usize) -> bool = if count > 0 {
            &in_rotation
        } else {
            count = (0..n).filter(fresh).count();
            &fresh
        };
        if count == 0 {
            return None;
        }
        let nth = |k: usize| (0..n).filter(candidates).nth(k);
        let a = fastrand::usize(..count);
        if count == 1 {
            return nth(a);
        }
        let b = (a + 1 + fastrand::usize(..count - 1)) % count;
        let (a, b) = (nth(a)?, nth(b)?);
        Some(if self.endpoints[b].health.outstanding() < self.endpoints[a].health.outstanding() { b } else { a })
    }

    /// Notes how a try on endpoint `i` went, for outlier detection; an endpoint is ejected
    /// only while fewer than `max_ejected` of the upstream's are.
    pub fn report(&self, i: usize, ok: bool) {
        let now = now_ms();
        let Some(endpoint) = self.endpoints.get(i) else { return };
        let out = self.endpoints.iter().filter(|e| e.health.ejected(now)).count();
        let may_eject = out < self.outlier.max_ejected(self.endpoints.len());
        if endpoint.health.report(ok, &self.outlier, may_eject, now) {
            tracing::warn!(upstream = %self.name, endpoint = %endpoint.authority(), "endpoint ejected after failures in a row");
        }
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
    fn the_less_busy_endpoint_is_picked_and_tried_ones_are_not_again() {
        let app = Authority::from_static("127.0.0.1:8080");
        let bound = Pools::default().bind(&compile(), &app, &[]);
        assert_eq!(bound[0].endpoints[0].authority(), &app, "app is the sidecar's --upstream");
        assert_eq!((bound[0].pick(&[]), bound[0].pick(&[0])), (Some(0), None));
        let admin = &bound[1];
        let _busy = admin.endpoints[0].health.begin();
        assert!((0..20).all(|_| admin.pick(&[]) == Some(1)), "two endpoints: P2C always compares both");
        assert_eq!(admin.pick(&[1]), Some(0), "a retry goes to an endpoint not tried yet");
        assert_eq!(admin.pick(&[0, 1]), None);
    }

    #[test]
    fn failures_eject_an_endpoint_but_never_more_than_max_ejected() {
        let (pools, app) = (Pools::default(), Authority::from_static("127.0.0.1:8080"));
        let bound = pools.bind(&compile(), &app, &[]);
        let admin = &bound[1];
        for _ in 0..5 {
            admin.report(0, false);
            admin.report(1, false);
        }
        let now = now_ms();
        let ejected: Vec<bool> = admin.endpoints.iter().map(|e| e.health.ejected(now)).collect();
        assert_eq!(ejected, [true, false], "50 % of two endpoints is one");
        assert!((0..20).all(|_| admin.pick(&[]) == Some(1)), "an ejected endpoint gets no new requests");
        let again = pools.bind(&compile(), &app, &[]);
        assert!(again[1].endpoints[0].health.ejected(now_ms()), "the ejection outlives a swap");
        for _ in 0..5 {
            bound[0].report(0, false);
        }
        assert!(!bound[0].endpoints[0].health.ejected(now_ms()), "a lone endpoint is never ejected");
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
