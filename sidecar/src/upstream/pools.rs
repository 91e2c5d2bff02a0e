//! The registry that shares connection pools across snapshots, so a policy push never
//! drops warm connections, and a snapshot's upstreams bound to those pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use http::uri::Authority;
use warden_policy::snapshot::{Outlier, Protocol, RetryBudget, Snapshot, Upstream, UpstreamTls};

use crate::upstream::budget::Budget;
use crate::upstream::health::now_ms;
use crate::upstream::pool::{Breakers, EndpointPool};
use crate::upstream::tls::ClientTls;

/// Endpoint pools by (address, the name it was resolved from, connect timeout and circuit
/// breakers, TLS settings). Holds them weakly: a pool lives as long as a snapshot (or a
/// request) uses it, and is found again by the next snapshot or DNS refresh that names it.
/// Only touched when a snapshot is compiled or names are resolved, never per request.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Weak<EndpointPool>>>,
}

type PoolKey = (String, String, Breakers, Option<UpstreamTls>);

impl Pools {
    /// The shared pool for this address (resolved from `name`) and these settings.
    pub fn endpoint(
        &self,
        address: &Authority,
        name: &Authority,
        breakers: Breakers,
        tls: Option<&Arc<ClientTls>>,
    ) -> Arc<EndpointPool> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|_, p| p.strong_count() > 0);
        let key = (address.as_str().to_owned(), name.as_str().to_owned(), breakers, tls.map(|t| t.spec.clone()));
        if let Some(p) = pools.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        let p = Arc::new(EndpointPool::new(address.clone(), name.clone(), breakers, tls.cloned()));
        pools.insert(key, Arc::downgrade(&p));
        p
    }

    /// An upstream's pools, one per resolved address.
    pub fn endpoints_for(
        &self,
        u: &Upstream,
        resolved: &[Resolved],
        tls: Option<&Arc<ClientTls>>,
    ) -> Vec<Arc<EndpointPool>> {
        let breakers = Breakers::new(u.connect_timeout, u.max_connections, u.max_pending, u.max_concurrent_streams);
        resolved.iter().flat_map(|r| r.addresses.iter().map(|a| self.endpoint(a, &r.name, breakers, tls))).collect()
    }

    /// The snapshot's upstreams bound to their pools, in the snapshot's order (`Upstream::
    /// index`); `app`'s one endpoint is the sidecar's `--upstream`. `tls` is each upstream's
    /// loaded TLS and `resolved` its endpoints' addresses, by index (`tls::load_all`,
    /// `resolve::resolve_all`).
    pub fn bind(
        &self,
        snapshot: &Snapshot,
        app: &Authority,
        tls: &[Option<Arc<ClientTls>>],
        resolved: &[Vec<Resolved>],
    ) -> Vec<BoundUpstream> {
        snapshot
            .upstreams
            .iter()
            .map(|u| {
                let tls = tls.get(u.index).and_then(Option::as_ref);
                let endpoints = match u.endpoints.is_empty() {
                    true => {
                        let app = Resolved { name: app.clone(), addresses: vec![app.clone()] };
                        self.endpoints_for(u, &[app], tls)
                    }
                    false => self.endpoints_for(u, resolved.get(u.index).map_or(&[][..], Vec::as_slice), tls),
                };
                BoundUpstream {
                    name: u.name.clone(),
                    protocol: u.protocol,
                    set: Arc::new(EndpointSet { list: ArcSwap::from_pointee(endpoints) }),
                    outlier: u.outlier,
                    retry_budget: u.retry_budget,
                    budget: Budget::default(),
                }
            })
            .collect()
    }
}

/// One endpoint as written and the addresses it stands for (`resolve.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: Authority,
    pub addresses: Vec<Authority>,
}

/// An upstream's endpoints now: replaced whole when its names resolve differently.
#[derive(Debug)]
pub struct EndpointSet {
    list: ArcSwap<Vec<Arc<EndpointPool>>>,
}

impl EndpointSet {
    pub fn current(&self) -> Arc<Vec<Arc<EndpointPool>>> {
        self.list.load_full()
    }

    /// Stores `endpoints` if they are not the ones there; true when it did.
    pub(super) fn replace_if_changed(&self, endpoints: Vec<Arc<EndpointPool>>) -> bool {
        let same = {
            let now = self.list.load();
            now.len() == endpoints.len() && now.iter().zip(&endpoints).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if !same {
            self.list.store(Arc::new(endpoints));
        }
        !same
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
    /// Its endpoints, refreshed from DNS.
    pub set: Arc<EndpointSet>,
    pub outlier: Outlier,
    pub retry_budget: RetryBudget,
    /// Requests and retries counted against the budget (starts afresh with each snapshot).
    pub budget: Budget,
}

impl BoundUpstream {
    /// An endpoint for the next try: of those not `tried` yet, the less busy of two picked at
    /// random among the ones in rotation (or among all of them when every one is ejected);
    /// None when every endpoint was tried.
    pub fn pick(&self, endpoints: &[Arc<EndpointPool>], tried: &[usize]) -> Option<usize> {
        let n = endpoints.len();
        if n == 1 {
            return (!tried.contains(&0)).then_some(0);
        }
        let now = now_ms();
        let fresh = |i: &usize| !tried.contains(i);
        let in_rotation = |i: &usize| fresh(i) && !endpoints[*i].health.ejected(now);
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
        Some(if endpoints[b].health.outstanding() < endpoints[a].health.outstanding() { b } else { a })
    }

    /// Notes how a try on endpoint `i` went, for outlier detection; an endpoint is ejected
    /// only while fewer than `max_ejected` of the upstream's are. True when this ejected it.
    pub fn report(&self, endpoints: &[Arc<EndpointPool>], i: usize, ok: bool) -> bool {
        let now = now_ms();
        let Some(endpoint) = endpoints.get(i) else { return false };
        let out = endpoints.iter().filter(|e| e.health.ejected(now)).count();
        let may_eject = out < self.outlier.max_ejected(endpoints.len());
        let ejected = endpoint.health.report(ok, &self.outlier, may_eject, now);
        if ejected {
            tracing::warn!(upstream = %self.name, endpoint = %endpoint.authority(), "endpoint ejected after failures in a row");
        }
        ejected
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

    /// The snapshot's endpoints as they are written (addresses only here).
    fn bind(pools: &Pools, s: &Snapshot, app: &Authority) -> Vec<BoundUpstream> {
        let resolved: Vec<Vec<Resolved>> = s
            .upstreams
            .iter()
            .map(|u| u.endpoints.iter().map(|e| Resolved { name: e.clone(), addresses: vec![e.clone()] }).collect())
            .collect();
        pools.bind(s, app, &[], &resolved)
    }

    #[test]
    fn the_less_busy_endpoint_is_picked_and_tried_ones_are_not_again() {
        let app = Authority::from_static("127.0.0.1:8080");
        let bound = bind(&Pools::default(), &compile(), &app);
        let (own, admin) = (bound[0].set.current(), bound[1].set.current());
        assert_eq!(own[0].authority(), &app, "app is the sidecar's --upstream");
        assert_eq!((bound[0].pick(&own, &[]), bound[0].pick(&own, &[0])), (Some(0), None));
        let _busy = admin[0].health.begin();
        assert!((0..20).all(|_| bound[1].pick(&admin, &[]) == Some(1)), "two endpoints: P2C always compares both");
        assert_eq!(bound[1].pick(&admin, &[1]), Some(0), "a retry goes to an endpoint not tried yet");
        assert_eq!(bound[1].pick(&admin, &[0, 1]), None);
        assert_eq!(bound[1].pick(&[], &[]), None, "no endpoints, no pick");
    }

    #[test]
    fn failures_eject_an_endpoint_but_never_more_than_max_ejected() {
        let (pools, app) = (Pools::default(), Authority::from_static("127.0.0.1:8080"));
        let bound = bind(&pools, &compile(), &app);
        let (own, admin) = (bound[0].set.current(), bound[1].set.current());
        for _ in 0..5 {
            bound[1].report(&admin, 0, false);
            bound[1].report(&admin, 1, false);
        }
        let now = now_ms();
        let ejected: Vec<bool> = admin.iter().map(|e| e.health.ejected(now)).collect();
        assert_eq!(ejected, [true, false], "50 % of two endpoints is one");
        assert!((0..20).all(|_| bound[1].pick(&admin, &[]) == Some(1)), "an ejected endpoint gets no new requests");
        let again = bind(&pools, &compile(), &app);
        assert!(again[1].set.current()[0].health.ejected(now_ms()), "the ejection outlives a swap");
        for _ in 0..5 {
            bound[0].report(&own, 0, false);
        }
        assert!(!own[0].health.ejected(now_ms()), "a lone endpoint is never ejected");
    }

    #[test]
    fn a_recompiled_snapshot_shares_connection_pools_until_none_uses_them() {
        let (pools, app) = (Pools::default(), Authority::from_static("127.0.0.1:8080"));
        let first = bind(&pools, &compile(), &app);
        let second = bind(&pools, &compile(), &app);
        for (a, b) in first.iter().zip(&second) {
            for (x, y) in a.set.current().iter().zip(b.set.current().iter()) {
                assert!(Arc::ptr_eq(x, y), "{} is shared", x.authority());
            }
        }
        let admin = Arc::downgrade(&first[1].set.current()[0]);
        drop((first, second));
        assert!(admin.upgrade().is_none(), "a pool no snapshot uses is dropped with its connections");
    }

    #[test]
    fn a_changed_resolution_replaces_the_set_and_keeps_the_pools_it_still_has() {
        let pools = Pools::default();
        let s = compile();
        let name = Authority::from_static("admin.internal:9090");
        let at = |ips: &[&'static str]| Resolved {
            name: name.clone(),
            addresses: ips.iter().map(|a| Authority::from_static(a)).collect(),
        };
        let set = EndpointSet {
            list: ArcSwap::from_pointee(pools.endpoints_for(
                &s.upstreams[1],
                &[at(&["10.0.0.1:9090", "10.0.0.2:9090"])],
                None,
            )),
        };
        let kept = set.current()[1].clone();
        assert!(!set.replace_if_changed(pools.endpoints_for(
            &s.upstreams[1],
            &[at(&["10.0.0.1:9090", "10.0.0.2:9090"])],
            None
        )));
        assert!(set.replace_if_changed(pools.endpoints_for(&s.upstreams[1], &[at(&["10.0.0.2:9090"])], None)));
        assert!(Arc::ptr_eq(&set.current()[0], &kept), "the address still there keeps its pool and health");
        assert!(set.replace_if_changed(Vec::new()));
        assert!(set.current().is_empty(), "a name that resolves to nothing: no endpoints");
    }
}
