//! Rollouts: one candidate version per service at a time, tried before it is trusted.
//! `apply --shadow` stores the candidate as the next version in state `shadow` and every
//! sidecar decides it beside the live version, never enforcing it; `apply --canary N%`
//! stores it in state `canary` and a share of the service's sidecars serve it. The live
//! version stays current until `promote`; `abort` (by hand, or the evaluator's automatic
//! abort: `canary.rs`) puts every sidecar back on it and adds no version. The state is
//! kept with the versions in the store, so every replica serves the same candidate to its
//! own sidecars (`serve_rollout`, on start-up and on every change the feed announces).

use std::collections::HashSet;

use opentelemetry::KeyValue;

use crate::hub::{Candidate, snapshot_of};
use crate::ops::canary::{AbortIf, CanaryReport};
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{NewRollout, Rollout, RolloutMode, RolloutState, ShadowCount, StoreError};

/// How `apply` is asked to roll a change out instead of publishing it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub mode: RolloutMode,
    /// Canary: the share of the service's sidecars, 1..=99.
    pub canary_percent: u32,
    /// Canary: conditions that abort it by themselves.
    pub abort_if: Vec<AbortIf>,
}

/// How a running rollout is ended by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRollout {
    Promote,
    Abort,
}

/// `rollout status`: the rollout and how its candidate compares so far.
#[derive(Debug, Clone, Default)]
pub struct RolloutReport {
    /// None: the service never had one.
    pub rollout: Option<Rollout>,
    /// Shadow: where the candidate decides otherwise, most first.
    pub differences: Vec<ShadowCount>,
    /// Canary: both sides over the judging window.
    pub canary: Option<CanaryReport>,
}

/// How many groups of shadow differences `rollout status` lists.
const DIFFERENCE_GROUPS: usize = 50;

impl ControlPlane {
    /// What `apply` stores with each changed service's candidate: for a canary, which of
    /// its sidecars (connected now, by name) serve it: the share rounded up, at least one,
    /// and at least one left on the live version.
    pub(super) async fn new_rollout(&self, service: &str, plan: &RolloutPlan) -> Result<NewRollout, OpsError> {
        if self.hub.current_version(service) == 0 {
            return Err(OpsError::Precondition(format!(
                "service '{service}' has no live version to compare a candidate with: apply its first version without --shadow or --canary"
            )));
        }
        let mut canary_instances = Vec::new();
        if plan.mode == RolloutMode::Canary {
            let mut connected: Vec<String> = self
                .status(Some(service))
                .await
                .sidecars
                .into_iter()
                .filter(|s| s.connected)
                .map(|s| s.record.instance)
                .collect();
            connected.sort();
            if connected.len() < 2 {
                return Err(OpsError::Precondition(format!(
                    "service '{service}' has {} connected sidecar(s): a canary needs one to serve the candidate and one to compare it with; use --shadow to try it on every sidecar without enforcing it",
                    connected.len()
                )));
            }
            let n = connected.len();
            let share = (n * plan.canary_percent as usize).div_ceil(100).clamp(1, n - 1);
            canary_instances = connected.into_iter().take(share).collect();
        }
        Ok(NewRollout {
            mode: plan.mode,
            canary_percent: plan.canary_percent,
            canary_instances,
            abort_if: plan.abort_if.iter().map(ToString::to_string).collect(),
        })
    }

    /// A service's latest rollout and how its candidate compares so far.
    pub async fn rollout_status(&self, service: &str) -> Result<RolloutReport, OpsError> {
        let rollout = self.stored("rollouts", self.store.rollouts(Some(service))).await?.into_iter().next();
        let Some(r) = rollout else {
            return Ok(RolloutReport::default());
        };
        let mut report = RolloutReport { differences: Vec::new(), canary: None, rollout: None };
        match r.mode {
            RolloutMode::Shadow => {
                let counts = self.stored("shadow_counts", self.store.shadow_counts(service, r.version)).await?;
                report.differences = counts.into_iter().take(DIFFERENCE_GROUPS).collect();
            }
            RolloutMode::Canary => report.canary = Some(self.compare_canary(&r).await),
        }
        report.rollout = Some(r);
        Ok(report)
    }

    /// Promotes or aborts a service's running rollout.
    pub async fn end_rollout(
        &self,
        service: &str,
        how: EndRollout,
        author: &str,
        reason: &str,
    ) -> Result<Rollout, OpsError> {
        let running = self
            .stored("rollouts", self.store.rollouts(Some(service)))
            .await?
            .into_iter()
            .find(|r| r.state.running())
            .ok_or_else(|| OpsError::Precondition(format!("service '{service}' has no rollout running")))?;
        let author = if author.is_empty() { "unknown" } else { author };
        let (state, why) = match how {
            EndRollout::Promote => (RolloutState::Promoted, format!("promoted by {author}")),
            EndRollout::Abort => (RolloutState::Aborted, format!("aborted by {author}")),
        };
        let reason = if reason.is_empty() { why } else { format!("{why}: {reason}") };
        self.end_running(service, running.version, state, author, &reason).await
    }

    /// Ends the rollout of `version` in the store (once, whoever asks first) and serves
    /// what that leaves.
    pub(super) async fn end_running(
        &self,
        service: &str,
        version: u64,
        state: RolloutState,
        by: &str,
        reason: &str,
    ) -> Result<Rollout, OpsError> {
        let ended = self
            .stored("end_rollout", self.store.end_rollout(service, version, state, by, reason))
            .await?
            .ok_or_else(|| OpsError::Precondition(format!("the rollout of v{version} of '{service}' already ended")))?;
        self.ended(&ended);
        self.serve_rollout(&ended.service).await?;
        Ok(ended)
    }

    /// Logs, counts and traces a rollout that ended (by hand, by itself, or forced).
    pub(super) fn ended(&self, ended: &Rollout) {
        let (by, reason) = (ended.ended_by.as_str(), ended.reason.as_str());
        tracing::warn!(service = %ended.service, version = ended.version, state = ended.state.as_str(), by, reason, "rollout ended");
        let attributes = vec![
            KeyValue::new("warden.service", ended.service.clone()),
            KeyValue::new("warden.version", i64::try_from(ended.version).unwrap_or(i64::MAX)),
            KeyValue::new("warden.rollout.state", ended.state.as_str()),
            KeyValue::new("warden.rollout.ended_by", by.to_owned()),
            KeyValue::new("warden.rollout.reason", reason.to_owned()),
        ];
        if let Some(cx) = self.traces.start_apply(ended.state.as_str(), attributes) {
            opentelemetry::trace::TraceContextExt::span(&cx).end();
        }
        self.metrics.rollout_ended(&ended.service, ended.state.as_str());
    }

    /// Serves what the store says of a service: its current version, and its running
    /// rollout's candidate (or none).
    pub(super) async fn serve_rollout(&self, service: &str) -> Result<(), StoreError> {
        if let Some(v) = self.stored("current", self.store.current(service)).await? {
            self.serve_stored(v).await?;
        }
        let running =
            self.stored("rollouts", self.store.rollouts(Some(service))).await?.into_iter().find(|r| r.state.running());
        let candidate = match running {
            None => None,
            Some(r) => {
                let Some(v) = self.stored("version", self.store.version(service, r.version)).await? else {
                    return Ok(());
                };
                match snapshot_of(&v) {
                    Ok(snapshot) => Some(Candidate {
                        snapshot: std::sync::Arc::new(warden_proto::Encoded::new(snapshot)),
                        canary: (r.mode == RolloutMode::Canary)
                            .then(|| r.canary_instances.iter().cloned().collect::<HashSet<String>>()),
                    }),
                    Err(e) => {
                        tracing::error!(%service, version = r.version, error = %e, "a rollout's candidate no longer validates: not served");
                        None
                    }
                }
            }
        };
        self.publish_candidate(service, candidate).await
    }

    /// Serves every running rollout's candidate and drops those that ended (start-up, and
    /// a resync with the store).
    pub(super) async fn serve_rollouts(&self) -> Result<(), StoreError> {
        let running: Vec<String> = self
            .stored("rollouts", self.store.rollouts(None))
            .await?
            .into_iter()
            .filter(|r| r.state.running())
            .map(|r| r.service)
            .collect();
        let mut services: Vec<String> =
            self.hub.services().into_iter().filter(|s| self.hub.candidate(s).is_some()).collect();
        services.extend(running);
        services.sort();
        services.dedup();
        for service in services {
            self.serve_rollout(&service).await?;
        }
        Ok(())
    }
}
