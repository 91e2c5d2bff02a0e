//! Starting the control plane: the registry from what the store remembers, then every
//! service's current version re-validated with this build's policy model and published
//! with its credentials, then the store's health watched (`health.rs`) and the change
//! feed followed (`follow.rs`). A stored policy that
//! no longer validates (an upgrade made a rule stricter) is not served, and never silently
//! dropped: it is logged as an error, counted in `warden_stored_policies_invalid`, and
//! listed by `wardenctl status` until a valid version of the service replaces it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::change_trace::ChangeTraces;
use crate::hub::{Hub, snapshot_of};
use crate::ops::control_plane::{ControlPlane, InvalidPolicy, Options, StoreHealth};
use crate::ops::metrics::Metrics;
use crate::quota::QuotaBoard;
use crate::registry::Registry;
use crate::store::{PolicyVersion, Store, StoreError};
use crate::traffic::Traffic;

impl ControlPlane {
    /// Starts over `store` with default options (no tracing, the default deny-log bounds).
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<ControlPlane>, StoreError> {
        ControlPlane::start_with(store, Options::default()).await
    }

    /// Loads the registry, publishes every service's current version that still
    /// validates (with its credentials), reports those that do not, and follows the
    /// changes other replicas make.
    pub async fn start_with(store: Arc<dyn Store>, options: Options) -> Result<Arc<ControlPlane>, StoreError> {
        let metrics = Arc::new(Metrics::default());
        let on_save_error = {
            let metrics = metrics.clone();
            move |e: &StoreError| metrics.store_error("save_sidecars", e)
        };
        let replica = if options.replica.is_empty() { "local".to_owned() } else { options.replica };
        let registry = Registry::load(store.clone(), replica, on_save_error).await?;
        let changes = store.changes();
        let store_name = store.describe();
        let cp = Arc::new(ControlPlane {
            store,
            hub: Hub::default(),
            registry,
            quotas: QuotaBoard::default(),
            traffic: Traffic::default(),
            traces: ChangeTraces::new(options.traces),
            retention: options.retention,
            sample_retention: options.sample_retention,
            metrics,
            refreshing: tokio::sync::Mutex::new(()),
            invalid: Mutex::new(BTreeMap::new()),
            health: Mutex::new(StoreHealth { name: store_name, ..StoreHealth::default() }),
            leading: Mutex::new(None),
            fallback_key: options.fallback_key,
        });
        for v in cp.store.list_current().await? {
            cp.serve_stored(v).await?;
        }
        cp.serve_rollouts().await?;
        cp.store_answered();
        cp.watch_store();
        cp.judge_canaries();
        cp.beat_sidecars();
        cp.stand_for_evaluator();
        // A store several replicas share: follow what the others change, and share
        // global quotas and `top`'s traffic with them.
        if let Some(changes) = changes {
            cp.follow(changes);
            cp.exchange_quota_demand();
            cp.share_traffic();
        }
        Ok(cp)
    }

    /// Serves a stored version that is newer than the one served, with its credentials;
    /// one that no longer validates is reported instead (once per version).
    pub(super) async fn serve_stored(&self, v: PolicyVersion) -> Result<(), StoreError> {
        if v.version <= self.hub.current_version(&v.service) {
            return Ok(());
        }
        match snapshot_of(&v) {
            Ok(snapshot) => {
                self.publish_with_credentials(&v.service, Some(snapshot)).await?;
                self.valid_again(&v.service);
            }
            Err(e) => {
                let mut invalid = self.invalid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if invalid.get(&v.service).is_some_and(|i| i.version == v.version) {
                    return Ok(());
                }
                tracing::error!(
                    service = %v.service,
                    version = v.version,
                    "the stored policy of service '{}' (v{}) no longer validates with this release: it is NOT \
                     served (its sidecars keep their last known good policy) until a valid version is applied \
                     or rolled back to; `wardenctl status` lists it:\n{e}",
                    v.service,
                    v.version
                );
                let service = v.service.clone();
                invalid.insert(service, InvalidPolicy { service: v.service, version: v.version, error: e.to_string() });
                self.metrics.invalid_policies(invalid.len());
            }
        }
        Ok(())
    }
}
