//! Whether a snapshot's upstream names resolve from here, checked before it goes live.

use std::time::Duration;

use warden_policy::snapshot::{InvalidSnapshot, InvalidUpstream, Snapshot};

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
            return Err(InvalidSnapshot::Upstream {
                upstream: up.name.to_string(),
                error: InvalidUpstream::Unresolvable(reason),
            });
        }
    }
    Ok(())
}
