//! `AdminService`, what `wardenctl` calls: each method turns its request into the
//! operation's arguments, runs the operation, and turns the answer (or `OpsError`) back
//! into the wire's terms.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_server::AdminService;

use crate::ops::{ApplyRequest, ControlPlane, EndRollout, MarkRequest, PreviewRequest, RollbackRequest};

/// The samples a preview replays when the caller names no window: the last hour.
const DEFAULT_PREVIEW_WINDOW_MS: i64 = 3_600_000;
use crate::server::convert::{self, non_empty};
use crate::server::status::status;
use crate::store::SampleFilter;

/// The admin API over the shared control plane.
pub struct AdminApi(pub Arc<ControlPlane>);

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn apply(&self, req: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let r = req.into_inner();
        let rollout = r.rollout.map(convert::rollout_plan).transpose().map_err(Status::invalid_argument)?;
        let request = ApplyRequest {
            file_name: r.file_name,
            source: r.source,
            author: r.author,
            message: r.message,
            dry_run: r.dry_run,
            rollout,
            force: r.force,
        };
        let results = self.0.apply(request).await.map_err(status)?;
        Ok(Response::new(convert::apply_response(results)))
    }

    async fn get_policy(&self, req: Request<pb::GetPolicyRequest>) -> Result<Response<pb::PolicyVersion>, Status> {
        let r = req.into_inner();
        let version = (r.version != 0).then_some(r.version);
        let found = self.0.policy(&r.service, version).await.map_err(status)?;
        Ok(Response::new(convert::policy_version(found)))
    }

    async fn list_services(
        &self,
        _: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let current = self.0.services().await.map_err(status)?;
        Ok(Response::new(pb::ListServicesResponse {
            current: current.into_iter().map(convert::policy_version).collect(),
        }))
    }

    async fn history(&self, req: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        let versions = self.0.history(&req.into_inner().service).await.map_err(status)?;
        Ok(Response::new(pb::HistoryResponse {
            versions: versions
                .into_iter()
                .map(|(v, state)| pb::PolicyVersion {
                    rollout_state: state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    ..convert::policy_version(v)
                })
                .collect(),
        }))
    }

    async fn rollback(&self, req: Request<pb::RollbackRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let r = req.into_inner();
        let request = RollbackRequest {
            service: r.service,
            to_version: r.to_version,
            author: r.author,
            message: r.message,
            force: r.force,
        };
        let results = self.0.rollback(request).await.map_err(status)?;
        Ok(Response::new(convert::apply_response(results)))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let service = non_empty(req.into_inner().service);
        let s = self.0.status(service.as_deref()).await;
        Ok(Response::new(pb::StatusResponse {
            sidecars: s.sidecars.into_iter().map(convert::sidecar_status).collect(),
            invalid_policies: s.invalid_policies.into_iter().map(convert::invalid_policy).collect(),
            store: Some(convert::store_health(s.store)),
            evaluator: s.evaluator.map(|l| pb::Evaluator { replica: l.replica, since_unix_ms: l.since_unix_ms }),
            rollouts: s.rollouts.into_iter().map(convert::rollout).collect(),
        }))
    }

    async fn rollout_status(
        &self,
        req: Request<pb::RolloutStatusRequest>,
    ) -> Result<Response<pb::RolloutStatusResponse>, Status> {
        let report = self.0.rollout_status(&req.into_inner().service).await.map_err(status)?;
        Ok(Response::new(convert::rollout_report(report)))
    }

    async fn end_rollout(&self, req: Request<pb::EndRolloutRequest>) -> Result<Response<pb::Rollout>, Status> {
        let r = req.into_inner();
        let how = match r.action.as_str() {
            "promote" => EndRollout::Promote,
            "abort" => EndRollout::Abort,
            other => return Err(Status::invalid_argument(format!("unknown action '{other}': promote or abort"))),
        };
        let ended = self.0.end_rollout(&r.service, how, &r.author, &r.reason).await.map_err(status)?;
        Ok(Response::new(convert::rollout(ended)))
    }

    async fn create_key(&self, req: Request<pb::CreateKeyRequest>) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let (key, row) = self.0.create_key(convert::key_request(req.into_inner())).await.map_err(status)?;
        Ok(Response::new(pb::CreateKeyResponse { info: Some(convert::key_info(row)), key }))
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let r = req.into_inner();
        let rows = self.0.keys(non_empty(r.service), non_empty(r.client)).await.map_err(status)?;
        Ok(Response::new(pb::ListKeysResponse { keys: rows.into_iter().map(convert::key_info).collect() }))
    }

    async fn revoke_key(&self, req: Request<pb::RevokeKeyRequest>) -> Result<Response<pb::KeyInfo>, Status> {
        let row = self.0.revoke_key(&req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(convert::key_info(row)))
    }

    async fn lookup_key(&self, req: Request<pb::LookupKeyRequest>) -> Result<Response<pb::KeyInfo>, Status> {
        let r = req.into_inner();
        let row = self.0.lookup_key(&r.service, r.sha256).await.map_err(status)?;
        Ok(Response::new(convert::key_info(row)))
    }

    async fn set_secret(&self, req: Request<pb::SetSecretRequest>) -> Result<Response<pb::SecretInfo>, Status> {
        let r = req.into_inner();
        let row = self.0.set_secret(&r.name, r.value, r.retire_previous_after_ms).await.map_err(status)?;
        Ok(Response::new(convert::secret_info(row)))
    }

    async fn list_secrets(
        &self,
        _: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let rows = self.0.secrets().await.map_err(status)?;
        Ok(Response::new(pb::ListSecretsResponse { secrets: rows.into_iter().map(convert::secret_info).collect() }))
    }

    async fn list_denials(
        &self,
        req: Request<pb::ListDenialsRequest>,
    ) -> Result<Response<pb::ListDenialsResponse>, Status> {
        let r = req.into_inner();
        let filter = convert::denial_filter(&r);
        let resp = if r.group {
            let groups = self.0.denial_groups(filter).await.map_err(status)?;
            pb::ListDenialsResponse {
                groups: groups.into_iter().map(convert::denial_group).collect(),
                ..Default::default()
            }
        } else {
            let denials = self.0.denials(filter).await.map_err(status)?;
            pb::ListDenialsResponse {
                denials: denials.into_iter().map(convert::stored_denial).collect(),
                ..Default::default()
            }
        };
        Ok(Response::new(resp))
    }

    async fn mark_denials(&self, req: Request<pb::MarkDenialsRequest>) -> Result<Response<pb::DenialMark>, Status> {
        let r = req.into_inner();
        let request = MarkRequest { group: r.group_id, mark: r.mark, note: r.note, owner: r.owner, author: r.author };
        let mark = self.0.mark_denials(request).await.map_err(status)?;
        Ok(Response::new(convert::denial_mark(mark)))
    }

    async fn top(&self, req: Request<pb::TopRequest>) -> Result<Response<pb::TopResponse>, Status> {
        let rows = self.0.top(&req.into_inner().service).await;
        Ok(Response::new(pb::TopResponse { rows: rows.into_iter().map(convert::top_row).collect() }))
    }

    async fn preview(&self, req: Request<pb::PreviewRequest>) -> Result<Response<pb::PreviewResponse>, Status> {
        let r = req.into_inner();
        let window_ms = if r.window_ms > 0 { r.window_ms } else { DEFAULT_PREVIEW_WINDOW_MS };
        let request = PreviewRequest { file_name: r.file_name, source: r.source, window_ms };
        let services = self.0.preview(request).await.map_err(status)?;
        Ok(Response::new(pb::PreviewResponse {
            services: services.into_iter().map(convert::service_preview).collect(),
        }))
    }

    async fn list_samples(
        &self,
        req: Request<pb::ListSamplesRequest>,
    ) -> Result<Response<pb::ListSamplesResponse>, Status> {
        let r = req.into_inner();
        let filter = SampleFilter { service: r.service, since_unix_ms: r.since_unix_ms, limit: r.limit };
        let samples = self.0.samples(filter).await.map_err(status)?;
        Ok(Response::new(pb::ListSamplesResponse {
            samples: samples.into_iter().map(convert::stored_sample).collect(),
        }))
    }

    async fn export_fallback(
        &self,
        req: Request<pb::ExportFallbackRequest>,
    ) -> Result<Response<pb::ExportFallbackResponse>, Status> {
        let e = self.0.export_fallback(&req.into_inner().service).map_err(status)?;
        Ok(Response::new(pb::ExportFallbackResponse {
            bundle: e.bundle,
            version: e.version,
            keys: u32::try_from(e.keys).unwrap_or(u32::MAX),
            public_key: e.public_key.to_string(),
        }))
    }
}
