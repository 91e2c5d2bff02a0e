//! What is going on: every sidecar's state against its service's current version and
//! credentials revision, the stored policies that no longer validate, the store's health,
//! which replica is the evaluator, and the metrics (`/metrics`). With several replicas the fleet is what this replica
//! holds plus what the others wrote to the store: a sidecar on another replica counts as
//! connected while that replica's record of it is fresh (it rewrites them every beat).

use std::collections::BTreeMap;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::{ControlPlane, InvalidPolicy, StoreHealth};
use crate::ops::metrics::FleetMember;
use crate::registry::Status as Sidecar;
use crate::store::{Leader, Rollout, SidecarRecord};

/// One sidecar, as `wardenctl status` shows it.
#[derive(Debug, Clone)]
pub struct SidecarStatus {
    pub record: SidecarRecord,
    pub connected: bool,
    /// The credentials revision it checks against.
    pub acked_credentials: u64,
    /// Its service's current version and credentials revision, to tell who is behind.
    pub current_version: u64,
    pub current_credentials: u64,
}

/// The fleet and what is wrong with the stored policies.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub sidecars: Vec<SidecarStatus>,
    /// Services whose current stored policy no longer validates (not served).
    pub invalid_policies: Vec<InvalidPolicy>,
    /// Whether the store answers.
    pub store: StoreHealth,
    /// The replica elected to evaluate, if one is.
    pub evaluator: Option<Leader>,
    /// Each service's latest rollout: running, or how the last one ended.
    pub rollouts: Vec<Rollout>,
}

/// A record another replica wrote is of a connected sidecar while it is this fresh: a
/// few of its beats.
const FRESH_MS: i64 = 15_000;

impl ControlPlane {
    /// Every known sidecar and every invalid stored policy, optionally of one service.
    /// With the store down, the sidecars this replica holds and what it remembers.
    pub async fn status(&self, service: Option<&str>) -> Status {
        let mut fleet: BTreeMap<(String, String), Sidecar> = BTreeMap::new();
        for s in self.registry.list(service) {
            fleet.insert((s.record.service.clone(), s.record.instance.clone()), s);
        }
        if let Ok(stored) = self.stored("sidecars", self.store.sidecars()).await {
            let now = now_unix_ms();
            for r in stored.into_iter().filter(|r| service.is_none_or(|s| r.service == s)) {
                let key = (r.service.clone(), r.instance.clone());
                let held_here = fleet.get(&key).is_some_and(|s| s.connected);
                let newer = fleet.get(&key).is_none_or(|s| r.last_seen_unix_ms > s.record.last_seen_unix_ms);
                if !held_here && newer {
                    let connected = r.connected && now - r.last_seen_unix_ms < FRESH_MS;
                    fleet.insert(key, Sidecar { acked_credentials: r.acked_credentials, record: r, connected });
                }
            }
        }
        let sidecars = fleet
            .into_values()
            .map(|s| SidecarStatus {
                current_version: self.hub.current_version(&s.record.service),
                current_credentials: self.hub.current_credentials(&s.record.service),
                record: s.record,
                connected: s.connected,
                acked_credentials: s.acked_credentials,
            })
            .collect();
        let invalid_policies = {
            let invalid = self.invalid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            invalid.values().filter(|p| service.is_none_or(|s| p.service == s)).cloned().collect()
        };
        let mut rollouts: Vec<Rollout> = Vec::new();
        // Newest first: the first of each service is its latest.
        for r in self.stored("rollouts", self.store.rollouts(service)).await.unwrap_or_default() {
            if !rollouts.iter().any(|x| x.service == r.service) {
                rollouts.push(r);
            }
        }
        rollouts.sort_by(|a, b| a.service.cmp(&b.service));
        Status { sidecars, invalid_policies, store: self.store_health(), evaluator: self.evaluator().await, rollouts }
    }

    /// The metrics in Prometheus / OpenMetrics text.
    pub fn metrics_text(&self) -> String {
        let fleet: Vec<FleetMember> = self
            .registry
            .list(None)
            .into_iter()
            .map(|s| {
                let candidate = self.hub.candidate(&s.record.service);
                let canary = candidate.as_ref().filter(|c| c.for_instance(&s.record.instance).0);
                FleetMember {
                    expected_version: canary
                        .map_or_else(|| self.hub.current_version(&s.record.service), |c| c.snapshot.version),
                    service: s.record.service,
                    connected: s.connected,
                    acked_version: s.record.acked_version,
                }
            })
            .collect();
        let current: BTreeMap<String, u64> =
            self.hub.services().into_iter().map(|s| (s.clone(), self.hub.current_version(&s))).collect();
        let rollouts: BTreeMap<String, &'static str> = self
            .hub
            .services()
            .into_iter()
            .filter_map(|s| {
                let mode = if self.hub.candidate(&s)?.canary.is_some() { "canary" } else { "shadow" };
                Some((s, mode))
            })
            .collect();
        self.metrics.encode(&fleet, &current, &rollouts)
    }
}
