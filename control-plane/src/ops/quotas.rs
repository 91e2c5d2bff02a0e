//! Global quotas across replicas: every `EXCHANGE_EVERY` this replica publishes its
//! sidecars' demand through the store and takes the others' into its quota board, so a
//! share is a sidecar's demand over the whole fleet's, whichever replica each sidecar is
//! on. Demand is exchanged through the database rather than relayed to an elected owner:
//! no replica is special, so none has to fail over. While the exchange fails (the
//! database down) the others' last known demand keeps counting; a replica that stops
//! publishing stops counting after `FRESH_MS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ops::control_plane::ControlPlane;
use crate::quota::KeyDemand;
use crate::store::QuotaDemand;

/// How often demand is exchanged: as often as sidecars report it.
const EXCHANGE_EVERY: Duration = Duration::from_millis(250);
/// Another replica's demand counts while it published within this long.
const FRESH_MS: i64 = 2_000;

impl ControlPlane {
    /// Exchanges quota demand with the other replicas until the control plane is dropped.
    pub(super) fn exchange_quota_demand(self: &Arc<Self>) {
        self.every(EXCHANGE_EVERY, |cp| async move {
            let (demand, peers) = cp.quotas.local(Instant::now());
            let mine = QuotaDemand { keys: demand.into_iter().map(|d| (d.limit, d.key, d.rate)).collect(), peers };
            match cp.store.exchange_demand(cp.registry.replica(), mine, FRESH_MS).await {
                Ok(theirs) => {
                    let keys = theirs.keys.into_iter().map(|(limit, key, rate)| KeyDemand { limit, key, rate });
                    cp.quotas.set_remote(keys.collect(), theirs.peers);
                }
                Err(e) => tracing::debug!(error = %e, "quota demand not exchanged; the last known counts"),
            }
        });
    }
}
