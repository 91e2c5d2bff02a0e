//! The control plane's Prometheus metrics (`/metrics` on `--http`): counters the
//! operations bump as they happen (NACKs, applies by result, store errors) and gauges read
//! from the registry and the hub at scrape time (sidecars by state and version, version
//! skew, each service's current version), so a gauge is never stale and nothing on the
//! sidecar streams pays for it.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::StoreError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SidecarLabels {
    service: String,
    state: &'static str,
    version: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    service: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutModeLabels {
    service: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    operation: &'static str,
    kind: &'static str,
}

/// How an apply or rollback ended: the `result` label of `warden_applies_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyResult {
    /// Stored and pushed: at least one service has a new version.
    Applied,
    /// Every document equals its service's current version: nothing stored.
    Unchanged,
    /// Checked and compared, nothing stored.
    DryRun,
    /// Refused: does not validate, conflicts with another service, nothing to roll back to.
    Refused,
    /// The store (or the control plane itself) failed.
    Failed,
}

impl ApplyResult {
    fn label(self) -> &'static str {
        match self {
            ApplyResult::Applied => "applied",
            ApplyResult::Unchanged => "unchanged",
            ApplyResult::DryRun => "dry_run",
            ApplyResult::Refused => "refused",
            ApplyResult::Failed => "failed",
        }
    }
}

/// One known sidecar, as the fleet gauges count it.
#[derive(Debug, Clone)]
pub struct FleetMember {
    pub service: String,
    pub connected: bool,
    pub acked_version: u64,
    /// The version it should serve: its service's current one, or a running canary's
    /// candidate for the canary's sidecars (which are not behind).
    pub expected_version: u64,
}

/// The counters and the gauge that live between scrapes.
#[derive(Default)]
pub struct Metrics {
    nacks: Family<ServiceLabels, Counter>,
    applies: Family<ApplyLabels, Counter>,
    store_errors: Family<StoreErrorLabels, Counter>,
    store_up: Gauge,
    invalid_policies: Gauge,
    evaluator: Gauge,
    rollouts_ended: Family<RolloutLabels, Counter>,
}

impl Metrics {
    /// A rollout of `service` was promoted or aborted (by hand or by itself).
    pub fn rollout_ended(&self, service: &str, state: &'static str) {
        self.rollouts_ended.get_or_create(&RolloutLabels { service: service.to_owned(), state }).inc();
    }

    /// A sidecar of `service` refused a snapshot.
    pub fn nack(&self, service: &str) {
        self.nacks.get_or_create(&ServiceLabels { service: service.to_owned() }).inc();
    }

    /// An apply (`operation` "apply") or rollback ended.
    pub fn apply(&self, operation: &'static str, result: ApplyResult) {
        self.applies.get_or_create(&ApplyLabels { operation, result: result.label() }).inc();
    }

    /// A store call (`operation`: the `Store` method) failed.
    pub fn store_error(&self, operation: &'static str, e: &StoreError) {
        self.store_errors.get_or_create(&StoreErrorLabels { operation, kind: e.kind() }).inc();
    }

    /// Whether the store answered when last asked.
    pub fn store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    /// Whether this replica is the evaluator.
    pub fn evaluator(&self, leads: bool) {
        self.evaluator.set(i64::from(leads));
    }

    /// How many services' current stored policy no longer validates.
    pub fn invalid_policies(&self, n: usize) {
        self.invalid_policies.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition, with the fleet gauges computed from `fleet`, each service's
    /// current (published) version and the rollouts running (service → mode).
    pub fn encode(
        &self,
        fleet: &[FleetMember],
        current: &BTreeMap<String, u64>,
        rollouts: &BTreeMap<String, &'static str>,
    ) -> String {
        let mut registry = Registry::with_prefix("warden");
        let sidecars = Family::<SidecarLabels, Gauge>::default();
        let behind = Family::<ServiceLabels, Gauge>::default();
        let versions = Family::<ServiceLabels, Gauge>::default();
        for (service, version) in current {
            let labels = ServiceLabels { service: service.clone() };
            versions.get_or_create(&labels).set(i64::try_from(*version).unwrap_or(i64::MAX));
            // Present (at 0) for every service, so a dashboard sees "none behind".
            let _ = behind.get_or_create(&labels);
        }
        for m in fleet {
            let state = if m.connected { "connected" } else { "disconnected" };
            let labels = SidecarLabels { service: m.service.clone(), state, version: m.acked_version };
            sidecars.get_or_create(&labels).inc();
            if m.connected && m.acked_version != m.expected_version {
                behind.get_or_create(&ServiceLabels { service: m.service.clone() }).inc();
            }
        }
        let running = Family::<RolloutModeLabels, Gauge>::default();
        for (service, mode) in rollouts {
            running.get_or_create(&RolloutModeLabels { service: service.clone(), mode }).set(1);
        }
        registry.register(
            "rollout_running",
            "1 while a service has a rollout running, by mode (shadow, canary)",
            running,
        );
        registry.register(
            "sidecars",
            "Sidecars known, by service, connection state and the policy version they last ACKed",
            sidecars,
        );
        registry.register(
            "sidecars_behind",
            "Connected sidecars whose ACKed version is not their service's current one (version skew)",
            behind,
        );
        registry.register("service_version", "Each service's current published policy version", versions);
        registry.register("sidecar_nacks", "Snapshots sidecars refused, by service", self.nacks.clone());
        registry.register(
            "rollouts_ended",
            "Rollouts ended, by service and how (promoted, aborted)",
            self.rollouts_ended.clone(),
        );
        registry.register(
            "applies",
            "Applies and rollbacks by operation and result (applied, unchanged, dry_run, refused, failed)",
            self.applies.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store calls by operation and kind (unavailable, failed)",
            self.store_errors.clone(),
        );
        registry.register(
            "store_up",
            "1 when the store (the database) answered the last check, else 0; readiness does not depend on it",
            self.store_up.clone(),
        );
        registry.register(
            "stored_policies_invalid",
            "Services whose current stored policy no longer validates: not served; see wardenctl status",
            self.invalid_policies.clone(),
        );
        registry.register(
            "control_plane_evaluator",
            "1 on the replica elected to evaluate (the canary's automatic abort), else 0: one replica of a fleet",
            self.evaluator.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_gauges_count_states_versions_and_skew() {
        let m = Metrics::default();
        let member = |service: &str, connected, acked_version, expected_version| FleetMember {
            service: service.into(),
            connected,
            acked_version,
            expected_version,
        };
        // The fourth: a canary's sidecar on its candidate, v2 of b: not behind.
        let fleet = [
            member("orders", true, 3, 3),
            member("orders", true, 2, 3),
            member("orders", false, 1, 3),
            member("b", true, 2, 2),
        ];
        let current = BTreeMap::from([("orders".to_owned(), 3), ("b".to_owned(), 1)]);
        let rollouts = BTreeMap::from([("b".to_owned(), "canary")]);
        m.nack("orders");
        m.apply("apply", ApplyResult::Applied);
        m.store_error("apply", &StoreError::Unavailable("locked".into()));
        m.invalid_policies(2);
        let text = m.encode(&fleet, &current, &rollouts);
        for line in [
            r#"warden_sidecars{service="orders",state="connected",version="3"} 1"#,
            r#"warden_sidecars{service="orders",state="disconnected",version="1"} 1"#,
            r#"warden_sidecars_behind{service="orders"} 1"#,
            r#"warden_sidecars_behind{service="b"} 0"#,
            r#"warden_rollout_running{service="b",mode="canary"} 1"#,
            r#"warden_service_version{service="orders"} 3"#,
            r#"warden_sidecar_nacks_total{service="orders"} 1"#,
            r#"warden_applies_total{operation="apply",result="applied"} 1"#,
            r#"warden_store_errors_total{operation="apply",kind="unavailable"} 1"#,
            "warden_stored_policies_invalid 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
    }
}
