//! Applying policy: validate every document with the policy model, check that global
//! limits mean the same in every service that has them, store all new versions as one
//! unit, then publish each changed service's snapshot after the credentials it needs.
//! Secrets a policy names but nobody has set are warned about, not refused: the routes
//! that need them answer 503 until `wardenctl secrets set`.

use opentelemetry::KeyValue;
use warden_policy::yaml::{ParsedPolicy, build, content_hash, parse_file};
use warden_proto::v1 as pb;

use crate::hub::secret_names;
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::ops::metrics::ApplyResult;
use crate::ops::rollout::RolloutPlan;
use crate::store::{NewVersion, Rollout, StoreError, Stored};

/// A policy file to apply: one or more YAML documents, one per service.
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    /// Named in validation errors; "policy.yaml" when empty.
    pub file_name: String,
    pub source: String,
    /// "unknown" when empty.
    pub author: String,
    pub message: String,
    /// Validate and compare; store and push nothing.
    pub dry_run: bool,
    /// Start a rollout of each changed service instead of publishing it.
    pub rollout: Option<RolloutPlan>,
    /// Abort a running rollout of a service in the file first (else the apply is refused).
    pub force: bool,
}

/// What applying one document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub service: String,
    /// The version it is (or, in a dry run, would be), or the unchanged current one.
    pub version: u64,
    /// False when it equals the current version: nothing was stored.
    pub changed: bool,
    /// 0 for a service's first version.
    pub previous_version: u64,
    pub previous_yaml: String,
    pub source_yaml: String,
    /// The validator's warnings and the secrets it names that are not set.
    pub warnings: Vec<String>,
    /// The rollout this apply started (`version` is its candidate).
    pub rollout: Option<Rollout>,
}

/// How a change is stored and served.
#[derive(Debug, Clone, Default)]
pub(super) struct Change<'a> {
    pub author: &'a str,
    pub message: &'a str,
    pub dry_run: bool,
    pub rollout: Option<&'a RolloutPlan>,
    pub force: bool,
}

impl ControlPlane {
    /// Validates, stores and (unless a dry run) publishes a policy file.
    pub async fn apply(&self, r: ApplyRequest) -> Result<Vec<Applied>, OpsError> {
        let dry_run = r.dry_run;
        let out = async {
            let file = if r.file_name.is_empty() { "policy.yaml" } else { r.file_name.as_str() };
            let parsed = parse_file(file, &r.source).map_err(|e| OpsError::Invalid(e.to_string()))?;
            let change =
                Change { author: &r.author, message: &r.message, dry_run, rollout: r.rollout.as_ref(), force: r.force };
            self.store_and_publish(parsed, change).await
        }
        .await;
        self.metrics.apply("apply", result_of(&out, dry_run));
        out
    }

    /// Stores the parsed documents and, unless a dry run, pushes every changed one (or,
    /// for a rollout, serves it as the candidate).
    pub(super) async fn store_and_publish(
        &self,
        parsed: Vec<ParsedPolicy>,
        change: Change<'_>,
    ) -> Result<Vec<Applied>, OpsError> {
        let Change { author, message, dry_run, rollout, force } = change;
        self.check_global_limits(&parsed)?;
        let author = if author.is_empty() { "unknown" } else { author };
        let services: Vec<String> = parsed.iter().map(|p| p.policy.service.clone()).collect();
        let mut docs = Vec::with_capacity(parsed.len());
        for p in &parsed {
            let hash = content_hash(&p.source);
            // A document equal to the live version starts nothing (and is stored as nothing).
            let unchanged = self.hub.snapshot(&p.policy.service).is_some_and(|s| s.content_hash == hash);
            let rollout = match rollout {
                Some(plan) if !unchanged => Some(self.new_rollout(&p.policy.service, plan).await?),
                _ => None,
            };
            docs.push(NewVersion {
                service: p.policy.service.clone(),
                author: author.to_owned(),
                message: message.to_owned(),
                content_hash: hash,
                source_yaml: p.source.clone(),
                rollout,
                force,
            });
        }
        let apply_cx = match dry_run {
            true => None,
            false => self.traces.start_apply(
                "apply",
                vec![
                    KeyValue::new("warden.author", author.to_owned()),
                    KeyValue::new("warden.message", message.to_owned()),
                    KeyValue::new("warden.services", services.join(",")),
                ],
            ),
        };
        let stored: Vec<Stored> = self
            .traces
            .child(apply_cx.as_ref(), "store", self.stored("apply", self.store.apply(docs, dry_run)))
            .await
            .map_err(|e| match e {
                StoreError::RolloutRunning { ref service, .. } => OpsError::Precondition(format!(
                    "{e}: `wardenctl rollout promote {service}` or `wardenctl rollout abort {service}` first, or add --force to abort it"
                )),
                e => e.into(),
            })?;
        let set: Vec<String> =
            self.stored("secrets", self.store.secrets()).await?.into_iter().map(|s| s.name).collect();
        let mut results = Vec::with_capacity(stored.len());
        for (p, s) in parsed.iter().zip(stored) {
            let snapshot = build(&p.policy, &p.source, s.version.version);
            let names = secret_names(&snapshot);
            let mut warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
            for missing in names.iter().filter(|n| !set.contains(n)) {
                warnings.push(format!(
                    "secret '{missing}' is not set: its routes answer 503 until `wardenctl secrets set {missing}`"
                ));
            }
            if let (Some(r), false) = (&s.rollout, dry_run) {
                self.serve_rollout(&r.service).await?;
                self.traces.finished(
                    apply_cx.as_ref(),
                    "rollout started",
                    vec![
                        KeyValue::new("warden.service", r.service.clone()),
                        KeyValue::new("warden.version", i64::try_from(r.version).unwrap_or(i64::MAX)),
                        KeyValue::new("warden.rollout.mode", r.mode.as_str()),
                        KeyValue::new("warden.rollout.canary", r.canary_instances.join(",")),
                        KeyValue::new("warden.rollout.abort_if", r.abort_if.join(",")),
                    ],
                );
                tracing::info!(service = %r.service, version = r.version, mode = r.mode.as_str(), %author, "rollout started");
            } else if s.changed && !dry_run {
                // Credentials first, so the policy never arrives before the secrets it names.
                let publish = self.publish_with_credentials(&s.version.service, Some(snapshot));
                self.traces.child(apply_cx.as_ref(), "build and push", publish).await?;
                self.valid_again(&s.version.service);
                let connected = self
                    .registry
                    .list(Some(&s.version.service))
                    .into_iter()
                    .filter(|st| st.connected)
                    .map(|st| st.record.instance)
                    .collect();
                self.traces.published(apply_cx.as_ref(), &s.version.service, s.version.version, connected);
                tracing::info!(service = %s.version.service, version = s.version.version, %author, "applied");
            }
            // A rollout a forced change ended: its candidate is no longer served.
            if let Some(a) = &s.aborted {
                self.ended(a);
                self.serve_rollout(&a.service).await?;
            }
            results.push(Applied {
                service: s.version.service,
                version: s.version.version,
                changed: s.changed,
                previous_version: s.previous.as_ref().map_or(0, |v| v.version),
                previous_yaml: s.previous.map(|v| v.source_yaml).unwrap_or_default(),
                source_yaml: p.source.clone(),
                warnings,
                rollout: s.rollout,
            });
        }
        if let Some(cx) = apply_cx {
            opentelemetry::trace::TraceContextExt::span(&cx).end();
        }
        Ok(results)
    }

    /// Global limits are shared by name across services, so every service that has one
    /// must define it the same way (the quota would otherwise mean two things).
    pub(super) fn check_global_limits(&self, parsed: &[ParsedPolicy]) -> Result<(), OpsError> {
        let incoming: Vec<pb::Snapshot> = parsed.iter().map(|p| build(&p.policy, &p.source, 0)).collect();
        let published: Vec<_> = self
            .hub
            .services()
            .iter()
            .filter(|s| !incoming.iter().any(|i| &i.service == *s))
            .filter_map(|s| self.hub.snapshot(s))
            .collect();
        let current: Vec<&pb::Snapshot> = published.iter().map(|s| &***s).chain(&incoming).collect();
        for new in &incoming {
            for l in new.limits.iter().filter(|l| l.global) {
                let other = current.iter().filter(|s| s.service != new.service).find_map(|s| {
                    s.limits.iter().find(|o| o.global && o.name == l.name && o.fingerprint != l.fingerprint).map(|_| s)
                });
                if let Some(other) = other {
                    return Err(OpsError::Invalid(format!(
                        "{}: limits.{}: the global limit '{}' of service '{}' is defined differently; a global quota is shared by name across services, so every definition must be the same",
                        new.service, l.name, l.name, other.service
                    )));
                }
            }
        }
        Ok(())
    }

    /// A valid version of `service` is being served: it is no longer reported invalid.
    pub(super) fn valid_again(&self, service: &str) {
        let mut invalid = self.invalid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if invalid.remove(service).is_some() {
            self.metrics.invalid_policies(invalid.len());
            tracing::info!(%service, "a valid version replaced the stored policy that no longer validated");
        }
    }
}

/// The `result` label of an apply or rollback that ended with `out`.
pub(super) fn result_of(out: &Result<Vec<Applied>, OpsError>, dry_run: bool) -> ApplyResult {
    match out {
        Ok(_) if dry_run => ApplyResult::DryRun,
        Ok(results) if results.iter().any(|r| r.changed) => ApplyResult::Applied,
        Ok(_) => ApplyResult::Unchanged,
        Err(OpsError::Store(StoreError::Unavailable(_) | StoreError::Failed(_)) | OpsError::Internal(_)) => {
            ApplyResult::Failed
        }
        Err(_) => ApplyResult::Refused,
    }
}
