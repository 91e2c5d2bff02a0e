//! Endpoint names, resolved: every A/AAAA record of a name is an endpoint of its own, and
//! names are resolved again every `dns_refresh` while a snapshot uses them. A record that
//! disappears gets no new requests (what it serves finishes on the pool it holds); a name
//! that resolves to nothing leaves the upstream without endpoints (503 `no_endpoints`)
//! rather than refusing the policy.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::uri::Authority;
use warden_policy::snapshot::{Snapshot, Upstream};

use crate::upstream::pools::{EndpointSet, Pools, Resolved};
use crate::upstream::tls::ClientTls;

/// The longest a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

fn literal(ep: &Authority) -> bool {
    ep.host().trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
}

/// Resolves an upstream's endpoints now. An address is itself; a name that does not
/// resolve (within 2 s) stands for no address, logged.
pub async fn resolve(endpoints: &[Authority]) -> Vec<Resolved> {
    let mut out = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        if literal(ep) {
            out.push(Resolved { name: ep.clone(), addresses: vec![ep.clone()] });
            continue;
        }
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(ep.as_str())).await;
        let mut addresses: Vec<Authority> = match lookup {
            Ok(Ok(addrs)) => addrs.filter_map(|a| a.to_string().parse().ok()).collect(),
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %ep, error = %e, "endpoint name does not resolve: no endpoints for it");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(endpoint = %ep, "endpoint name did not resolve within 2s: no endpoints for it");
                Vec::new()
            }
        };
        addresses.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        addresses.dedup();
        out.push(Resolved { name: ep.clone(), addresses });
    }
    out
}

/// Every upstream's endpoints, resolved, by `Upstream::index` (`app`: none here, it is
/// the sidecar's `--upstream`).
pub async fn resolve_all(snapshot: &Snapshot) -> Vec<Vec<Resolved>> {
    let mut out = Vec::with_capacity(snapshot.upstreams.len());
    for u in &snapshot.upstreams {
        out.push(resolve(&u.endpoints).await);
    }
    out
}

/// Resolves `upstream`'s names again every `dns_refresh` and swaps the endpoint set when
/// the addresses change, for as long as a snapshot holds the set.
pub fn spawn_refresh(pools: Arc<Pools>, set: &Arc<EndpointSet>, upstream: Arc<Upstream>, tls: Option<Arc<ClientTls>>) {
    if upstream.endpoints.iter().all(literal) {
        return;
    }
    let weak: Weak<EndpointSet> = Arc::downgrade(set);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(upstream.dns_refresh).await;
            if weak.strong_count() == 0 {
                return;
            }
            let resolved = resolve(&upstream.endpoints).await;
            let Some(set) = weak.upgrade() else { return };
            let endpoints = pools.endpoints_for(&upstream, &resolved, tls.as_ref());
            if set.replace_if_changed(endpoints) {
                tracing::info!(upstream = %upstream.name, endpoints = set.current().len(), "endpoints changed");
            }
        }
    });
}
