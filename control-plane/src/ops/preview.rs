//! `apply --preview`: what a policy file would do to the requests sidecars sampled
//! recently, replayed through each service's current and proposed policy
//! (`warden_policy::preview`). Nothing is stored or pushed. The replay runs off the async
//! workers: 100,000 samples are a second or so of CPU.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use opentelemetry::KeyValue;
use warden_policy::auth::Credentials;
use warden_policy::preview::{Report, preview};
use warden_policy::sample::SampledHeaders;
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{ParsedPolicy, build, parse_file};
use warden_proto::v1 as pb;

use crate::clock::now_unix_ms;
use crate::hub::snapshot_of;
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{Sample, SampleFilter};

/// The most samples one preview replays per service (the newest).
const MAX_SAMPLES: u32 = 1_000_000;

/// A policy file to preview.
#[derive(Debug, Clone, Default)]
pub struct PreviewRequest {
    /// Named in validation errors; "policy.yaml" when empty.
    pub file_name: String,
    pub source: String,
    /// Replays the samples of this long ago until now.
    pub window_ms: i64,
}

/// One service's preview.
#[derive(Debug, Clone)]
pub struct ServicePreview {
    pub service: String,
    /// The version the samples are replayed through beside the proposal (0: none yet).
    pub current_version: u64,
    pub report: Report,
}

impl ControlPlane {
    /// Replays each document's service's recent samples through its current and proposed
    /// policy.
    pub async fn preview(&self, r: PreviewRequest) -> Result<Vec<ServicePreview>, OpsError> {
        let file = if r.file_name.is_empty() { "policy.yaml" } else { r.file_name.as_str() };
        let parsed = parse_file(file, &r.source).map_err(|e| OpsError::Invalid(e.to_string()))?;
        self.check_global_limits(&parsed)?;
        let services: Vec<String> = parsed.iter().map(|p| p.policy.service.clone()).collect();
        let cx = self.traces.start_apply("preview", vec![KeyValue::new("warden.services", services.join(","))]);
        let out = self.preview_parsed(parsed, r.window_ms, cx.as_ref()).await;
        if let Some(cx) = cx {
            opentelemetry::trace::TraceContextExt::span(&cx).end();
        }
        out
    }

    async fn preview_parsed(
        &self,
        parsed: Vec<ParsedPolicy>,
        window_ms: i64,
        cx: Option<&opentelemetry::Context>,
    ) -> Result<Vec<ServicePreview>, OpsError> {
        let mut out = Vec::with_capacity(parsed.len());
        for p in parsed {
            let service = p.policy.service.clone();
            // A service with no policy served yet has no sidecar deciding anything: no samples.
            let Some(current) = self.hub.snapshot(&service) else {
                out.push(ServicePreview { service, current_version: 0, report: Report::default() });
                continue;
            };
            let current_version = current.version;
            let current = compile(&current)?;
            let candidate = compile(&build(&p.policy, &p.source, current_version + 1))?;
            let creds = match self.hub.credentials(&service) {
                Some(c) => {
                    Credentials::compile(&c.full, Some(&service)).map_err(|e| OpsError::Internal(e.to_string()))?
                }
                None => Credentials::default(),
            };
            let filter = SampleFilter {
                service: service.clone(),
                since_unix_ms: now_unix_ms() - window_ms.max(0),
                limit: MAX_SAMPLES,
            };
            let samples: Vec<pb::DecisionSample> = self
                .stored("samples", self.store.samples(filter))
                .await?
                .into_iter()
                .map(|s| pb::DecisionSample { instance: s.instance, ..sample_to_proto(s.sample) })
                .collect();
            let recorded = self.recorded_headers(&service, &samples).await?;
            let report =
                tokio::task::spawn_blocking(move || preview(&current, &candidate, &creds, &samples, &recorded))
                    .await
                    .map_err(|e| OpsError::Internal(format!("the preview failed: {e}")))?;
            self.traces.finished(
                cx,
                "preview service",
                vec![
                    KeyValue::new("warden.service", service.clone()),
                    KeyValue::new("warden.current_version", i64::try_from(current_version).unwrap_or(i64::MAX)),
                    KeyValue::new("warden.samples", i64::try_from(report.samples).unwrap_or(i64::MAX)),
                    KeyValue::new("warden.requests", report.requests),
                    KeyValue::new("warden.newly_refused_share", report.newly_refused_share()),
                    KeyValue::new(
                        "warden.not_evaluable_requests",
                        report.not_evaluable.iter().map(|n| n.requests).sum::<f64>(),
                    ),
                ],
            );
            out.push(ServicePreview { service, current_version, report });
        }
        Ok(out)
    }
}

impl ControlPlane {
    /// What the samples of each policy version among `samples` kept of the headers: what
    /// that version reads. A version gone from the store is left out (the replay then
    /// takes the current one's).
    async fn recorded_headers(
        &self,
        service: &str,
        samples: &[pb::DecisionSample],
    ) -> Result<HashMap<u64, SampledHeaders>, OpsError> {
        let versions: BTreeSet<u64> = samples.iter().map(|s| s.policy_version).collect();
        let mut out = HashMap::new();
        for v in versions {
            let Some(stored) = self.stored("version", self.store.version(service, v)).await? else { continue };
            if let Ok(snapshot) = snapshot_of(&stored)
                && let Ok(compiled) = Snapshot::try_from(&snapshot)
            {
                out.insert(v, SampledHeaders::of(&compiled));
            }
        }
        Ok(out)
    }
}

fn compile(s: &pb::Snapshot) -> Result<Arc<Snapshot>, OpsError> {
    Snapshot::try_from(s).map(Arc::new).map_err(|e| OpsError::Internal(format!("snapshot v{}: {e}", s.version)))
}

/// A stored sample as the replay reads it (and the admin API sends it).
pub fn sample_to_proto(x: Sample) -> pb::DecisionSample {
    pb::DecisionSample {
        unix_ms: x.unix_ms,
        request_id: x.request_id,
        method: x.method,
        host: x.host,
        path: x.path,
        client_ip: x.client_ip,
        client_id: x.client_id,
        auth_provider: x.auth_provider,
        key_id: x.key_id,
        headers: x.headers.into_iter().map(|(name, value)| pb::Header { name, value }).collect(),
        credential_headers: x.credential_headers,
        route: x.route,
        decision: x.decision,
        rule: x.rule,
        code: x.code,
        status: x.status,
        policy_version: x.policy_version,
        weight: x.weight,
        plan: x.plan,
        instance: String::new(),
    }
}
