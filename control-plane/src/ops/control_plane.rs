//! `ControlPlane`: the state every operation works on. The store is the durable
//! authority; the hub (what sidecars are sent), the registry (who is connected and what
//! they said), the quota board and the traffic view are in-process views the operations
//! feed. Their fields are private to `ops`, so the gRPC server, the HTTP port and the CLI
//! reach them only through an operation.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::signature::Ed25519KeyPair;
use warden_telemetry::Traces;

use crate::change_trace::ChangeTraces;
use crate::hub::Hub;
use crate::ops::metrics::Metrics;
use crate::quota::QuotaBoard;
use crate::registry::Registry;
use crate::store::{Retention, SampleRetention, Store, StoreError};
use crate::traffic::Traffic;

/// How the control plane runs, beyond its store.
#[derive(Default)]
pub struct Options {
    /// This replica's name in `wardenctl status` ("" = "local").
    pub replica: String,
    /// How much of the deny log is kept.
    pub retention: Retention,
    /// How many decision samples are kept.
    pub sample_retention: SampleRetention,
    /// Where rollouts are traced (OTLP), if anywhere.
    pub traces: Option<Traces>,
    /// The key fallback bundles are signed with (`--fallback-signing-key`), if any.
    pub fallback_key: Option<Arc<Ed25519KeyPair>>,
}

/// A service whose current stored policy no longer validates with this build: found at
/// start-up, not served (its sidecars keep their last known good policy), and reported
/// by `wardenctl status`, the log and `warden_stored_policies_invalid` until a valid
/// version replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPolicy {
    pub service: String,
    pub version: u64,
    /// The validation errors, as `wardenctl validate` would print them.
    pub error: String,
}

/// The store's health, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Which store (`SQLite at …`, `PostgreSQL at host:port/db`).
    pub name: String,
    pub up: bool,
    /// Why it is down; empty when up.
    pub error: String,
    /// Since when it has been up or down (ms).
    pub since_unix_ms: i64,
}

/// Everything the operations share.
pub struct ControlPlane {
    pub(super) store: Arc<dyn Store>,
    pub(super) hub: Hub,
    pub(super) registry: Registry,
    pub(super) quotas: QuotaBoard,
    /// Each sidecar's latest per-route traffic.
    pub(super) traffic: Traffic,
    /// Policy changes being traced (apply → push → ACKs).
    pub(super) traces: Arc<ChangeTraces>,
    pub(super) retention: Retention,
    pub(super) sample_retention: SampleRetention,
    pub(super) metrics: Arc<Metrics>,
    /// One credentials refresh at a time, process-wide, so each change builds on the one
    /// before (two refreshes reading the same base would publish diverging changes).
    pub(super) refreshing: tokio::sync::Mutex<()>,
    /// Services whose stored policy no longer validates, by service.
    pub(super) invalid: Mutex<BTreeMap<String, InvalidPolicy>>,
    /// Whether the store answers (`health.rs`).
    pub(super) health: Mutex<StoreHealth>,
    /// Since when this replica is the evaluator (ms); None while it is not (`leader.rs`).
    pub(super) leading: Mutex<Option<i64>>,
    /// Signs fallback bundles (`fallback.rs`).
    pub(super) fallback_key: Option<Arc<Ed25519KeyPair>>,
}

impl ControlPlane {
    /// Runs `tick` every `period` (a tick that runs long delays the next, never bunches
    /// them) until the control plane is dropped: the background duties of the operations.
    pub(super) fn every<F, Fut>(self: &Arc<Self>, period: Duration, tick: F)
    where
        F: Fn(Arc<ControlPlane>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let cp = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(cp) = cp.upgrade() else { return };
                tick(cp).await;
            }
        });
    }

    /// Runs a store call, counting and logging its failure under `operation`.
    pub(super) async fn stored<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let out = call.await;
        match &out {
            // The store answered: it refused a change, as it should.
            Ok(_) | Err(StoreError::RolloutRunning { .. }) => self.store_answered(),
            Err(e) => {
                self.metrics.store_error(operation, e);
                self.store_failed(e);
                tracing::error!(error = %e, operation, "store failure");
            }
        }
        out
    }
}
