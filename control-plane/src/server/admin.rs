//! `AdminService`: what `wardenctl` calls. Apply and rollback validate with the sidecar's
//! own policy model, store atomically, then publish the new snapshots to the hub. Key and
//! secret changes are stored, then the affected services' credentials are republished
//! (no policy is rebuilt for them).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warden_policy::yaml::{ParsedPolicy, build, content_hash, parse_file, parse_service};
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_server::AdminService;

use super::ControlPlane;
use super::keys;
use crate::hub::secret_names;
use crate::store::{DenialFilter, NewVersion, PolicyVersion, StoreError, Stored};
use opentelemetry::KeyValue;

/// The admin API over the shared control plane.
pub struct AdminApi(pub Arc<ControlPlane>);

fn internal(e: StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    Status::internal(e.to_string())
}

fn to_proto(v: PolicyVersion) -> pb::PolicyVersion {
    pb::PolicyVersion {
        service: v.service,
        version: v.version,
        author: v.author,
        created_unix_ms: v.created_unix_ms,
        message: v.message,
        content_hash: v.content_hash,
        source_yaml: v.source_yaml,
    }
}

impl AdminApi {
    /// Stores the parsed documents and, unless `dry_run`, pushes every changed one.
    async fn store_and_publish(
        &self,
        parsed: Vec<ParsedPolicy>,
        author: &str,
        message: &str,
        dry_run: bool,
    ) -> Result<pb::ApplyResponse, Status> {
        self.check_global_limits(&parsed)?;
        let author = if author.is_empty() { "unknown" } else { author };
        let docs = parsed
            .iter()
            .map(|p| NewVersion {
                service: p.policy.service.clone(),
                author: author.to_owned(),
                message: message.to_owned(),
                content_hash: content_hash(&p.source),
                source_yaml: p.source.clone(),
            })
            .collect();
        let services: Vec<String> = parsed.iter().map(|p| p.policy.service.clone()).collect();
        let apply_cx = match dry_run {
            true => None,
            false => self.0.rollouts.start_apply(
                "apply",
                vec![
                    KeyValue::new("warden.author", author.to_owned()),
                    KeyValue::new("warden.message", message.to_owned()),
                    KeyValue::new("warden.services", services.join(",")),
                ],
            ),
        };
        let stored: Vec<Stored> = self
            .0
            .rollouts
            .child(apply_cx.as_ref(), "store", self.0.store.apply(docs, dry_run))
            .await
            .map_err(internal)?;
        let set: Vec<String> = self.0.store.secrets().await.map_err(internal)?.into_iter().map(|s| s.name).collect();
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
            if s.changed && !dry_run {
                // Credentials first, so the policy never arrives before the secrets it names.
                let publish = self.0.publish_with_credentials(&s.version.service, Some(snapshot));
                self.0.rollouts.child(apply_cx.as_ref(), "build and push", publish).await.map_err(internal)?;
                let connected = self
                    .0
                    .registry
                    .list(Some(&s.version.service))
                    .into_iter()
                    .filter(|st| st.connected)
                    .map(|st| st.record.instance)
                    .collect();
                self.0.rollouts.published(apply_cx.as_ref(), &s.version.service, s.version.version, connected);
                tracing::info!(service = %s.version.service, version = s.version.version, %author, "applied");
            }
            results.push(pb::ApplyResult {
                service: s.version.service,
                version: s.version.version,
                changed: s.changed,
                previous_version: s.previous.as_ref().map_or(0, |v| v.version),
                previous_yaml: s.previous.map(|v| v.source_yaml).unwrap_or_default(),
                source_yaml: p.source.clone(),
                warnings,
            });
        }
        if let Some(cx) = apply_cx {
            opentelemetry::trace::TraceContextExt::span(&cx).end();
        }
        Ok(pb::ApplyResponse { results })
    }
}

impl AdminApi {
    /// Global limits are shared by name across services, so every service that has one
    /// must define it the same way (the quota would otherwise mean two things).
    fn check_global_limits(&self, parsed: &[ParsedPolicy]) -> Result<(), Status> {
        let incoming: Vec<pb::Snapshot> = parsed.iter().map(|p| build(&p.policy, &p.source, 0)).collect();
        let published: Vec<_> = self
            .0
            .hub
            .services()
            .iter()
            .filter(|s| !incoming.iter().any(|i| &i.service == *s))
            .filter_map(|s| self.0.hub.snapshot(s))
            .collect();
        let current: Vec<&pb::Snapshot> = published.iter().map(|s| &***s).chain(&incoming).collect();
        for new in &incoming {
            for l in new.limits.iter().filter(|l| l.global) {
                let other = current.iter().filter(|s| s.service != new.service).find_map(|s| {
                    s.limits.iter().find(|o| o.global && o.name == l.name && o.fingerprint != l.fingerprint).map(|_| s)
                });
                if let Some(other) = other {
                    return Err(Status::invalid_argument(format!(
                        "{}: limits.{}: the global limit '{}' of service '{}' is defined differently; a global quota is shared by name across services, so every definition must be the same",
                        new.service, l.name, l.name, other.service
                    )));
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn apply(&self, req: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let r = req.into_inner();
        let file = if r.file_name.is_empty() { "policy.yaml" } else { r.file_name.as_str() };
        let parsed = parse_file(file, &r.source).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.store_and_publish(parsed, &r.author, &r.message, r.dry_run).await.map(Response::new)
    }

    async fn get_policy(&self, req: Request<pb::GetPolicyRequest>) -> Result<Response<pb::PolicyVersion>, Status> {
        let r = req.into_inner();
        let found = if r.version == 0 {
            self.0.store.current(&r.service).await
        } else {
            self.0.store.get(&r.service, r.version).await
        };
        match found.map_err(internal)? {
            Some(v) => Ok(Response::new(to_proto(v))),
            None if r.version == 0 => Err(Status::not_found(format!("service '{}' has no policy", r.service))),
            None => Err(Status::not_found(format!("service '{}' has no version {}", r.service, r.version))),
        }
    }

    async fn list_services(
        &self,
        _: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let current = self.0.store.list_current().await.map_err(internal)?;
        Ok(Response::new(pb::ListServicesResponse { current: current.into_iter().map(to_proto).collect() }))
    }

    async fn history(&self, req: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        let service = req.into_inner().service;
        let versions = self.0.store.history(&service).await.map_err(internal)?;
        if versions.is_empty() {
            return Err(Status::not_found(format!("service '{service}' has no policy")));
        }
        Ok(Response::new(pb::HistoryResponse { versions: versions.into_iter().map(to_proto).collect() }))
    }

    async fn rollback(&self, req: Request<pb::RollbackRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        let r = req.into_inner();
        let current = self
            .0
            .store
            .current(&r.service)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("service '{}' has no policy", r.service)))?;
        let to = if r.to_version == 0 { current.version.saturating_sub(1) } else { r.to_version };
        if to == 0 {
            return Err(Status::failed_precondition(format!(
                "service '{}' has only version {}: there is nothing to roll back to",
                r.service, current.version
            )));
        }
        if to == current.version {
            return Err(Status::failed_precondition(format!("version {to} is already current")));
        }
        let target = self
            .0
            .store
            .get(&r.service, to)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("service '{}' has no version {to}", r.service)))?;
        let parsed = parse_service(&format!("{}@v{to}", r.service), &target.source_yaml, Some(&r.service))
            .map_err(|e| Status::failed_precondition(format!("version {to} no longer validates:\n{e}")))?;
        let message = if r.message.is_empty() { format!("rollback to v{to}") } else { r.message };
        self.store_and_publish(vec![parsed], &r.author, &message, false).await.map(Response::new)
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let service = req.into_inner().service;
        let filter = (!service.is_empty()).then_some(service.as_str());
        let sidecars = self
            .0
            .registry
            .list(filter)
            .into_iter()
            .map(|s| {
                let current_version = self.0.hub.current_version(&s.record.service);
                let current_credentials = self.0.hub.current_credentials(&s.record.service);
                let r = s.record;
                pb::SidecarStatus {
                    service: r.service,
                    instance: r.instance,
                    connected: s.connected,
                    peer: r.peer,
                    acked_version: r.acked_version,
                    acked_unix_ms: r.acked_unix_ms,
                    nacked_version: r.nacked_version,
                    nack_error: r.nack_error,
                    nacked_unix_ms: r.nacked_unix_ms,
                    last_seen_unix_ms: r.last_seen_unix_ms,
                    current_version,
                    acked_credentials: s.acked_credentials,
                    current_credentials,
                }
            })
            .collect();
        Ok(Response::new(pb::StatusResponse { sidecars }))
    }

    async fn create_key(&self, req: Request<pb::CreateKeyRequest>) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let r = req.into_inner();
        keys::check_create(&r)?;
        let (key, new) = keys::generate(&r)?;
        let row = self.0.store.create_key(new).await.map_err(internal)?;
        self.0.refresh_credentials(&row.service).await.map_err(internal)?;
        tracing::info!(id = %row.id, service = %row.service, client = %row.client, "API key created");
        Ok(Response::new(pb::CreateKeyResponse { info: Some(keys::info(row)), key }))
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let r = req.into_inner();
        let opt = |s: String| (!s.is_empty()).then_some(s);
        let rows = self.0.store.keys(opt(r.service), opt(r.client)).await.map_err(internal)?;
        Ok(Response::new(pb::ListKeysResponse { keys: rows.into_iter().map(keys::info).collect() }))
    }

    async fn revoke_key(&self, req: Request<pb::RevokeKeyRequest>) -> Result<Response<pb::KeyInfo>, Status> {
        let id = req.into_inner().id;
        let row = self
            .0
            .store
            .revoke_key(&id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no key with id '{id}'")))?;
        self.0.refresh_credentials(&row.service).await.map_err(internal)?;
        tracing::info!(id = %row.id, service = %row.service, client = %row.client, "API key revoked");
        Ok(Response::new(keys::info(row)))
    }

    async fn lookup_key(&self, req: Request<pb::LookupKeyRequest>) -> Result<Response<pb::KeyInfo>, Status> {
        let r = req.into_inner();
        match self.0.store.lookup_key(&r.service, r.sha256).await.map_err(internal)? {
            Some(row) => Ok(Response::new(keys::info(row))),
            None => Err(Status::not_found(format!("no key of service '{}' matches", r.service))),
        }
    }

    async fn set_secret(&self, req: Request<pb::SetSecretRequest>) -> Result<Response<pb::SecretInfo>, Status> {
        let r = req.into_inner();
        keys::check_secret(&r)?;
        let retire = i64::try_from(r.retire_previous_after_ms).unwrap_or(i64::MAX);
        let row = self.0.store.set_secret(&r.name, r.value, retire).await.map_err(internal)?;
        for service in self.0.hub.services() {
            if self.0.hub.secret_names(&service).contains(&row.name) {
                self.0.refresh_credentials(&service).await.map_err(internal)?;
            }
        }
        tracing::info!(name = %row.name, id = %row.id, "secret value added");
        Ok(Response::new(keys::secret_info(row)))
    }

    async fn list_secrets(
        &self,
        _: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let rows = self.0.store.secrets().await.map_err(internal)?;
        Ok(Response::new(pb::ListSecretsResponse { secrets: rows.into_iter().map(keys::secret_info).collect() }))
    }

    async fn list_denials(
        &self,
        req: Request<pb::ListDenialsRequest>,
    ) -> Result<Response<pb::ListDenialsResponse>, Status> {
        let r = req.into_inner();
        let filter = DenialFilter {
            service: r.service,
            since_unix_ms: r.since_unix_ms,
            route: r.route,
            rule: r.rule,
            client: r.client,
            limit: if r.limit == 0 { 50 } else { r.limit.min(10_000) },
        };
        let resp = if r.group {
            pb::ListDenialsResponse {
                groups: self.0.store.denial_groups(filter).await.map_err(internal)?,
                ..Default::default()
            }
        } else {
            pb::ListDenialsResponse {
                denials: self.0.store.denials(filter).await.map_err(internal)?,
                ..Default::default()
            }
        };
        Ok(Response::new(resp))
    }

    async fn top(&self, req: Request<pb::TopRequest>) -> Result<Response<pb::TopResponse>, Status> {
        Ok(Response::new(pb::TopResponse { rows: self.0.traffic.rows(&req.into_inner().service) }))
    }
}
