//! The thin gRPC server: the sidecar streams (`sidecar.rs`, with what they send checked in
//! `receipt.rs`) and the admin API (`admin.rs`) over one port. Both only translate between the wire and the store, the hub
//! and the registry; no policy logic lives here.

mod admin;
mod auth;
pub mod keys;
mod receipt;
mod sidecar;

pub use auth::{Admitted, BearerToken, SidecarTokens};

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warden_proto::v1::admin_service_server::AdminServiceServer;
use warden_proto::v1::sidecar_service_server::SidecarServiceServer;

use warden_proto::v1 as pb;

use crate::hub::{CredentialsState, Hub, secret_names, snapshot_of};
use crate::quota::QuotaBoard;
use crate::registry::Registry;
use crate::rollout::Rollouts;
use crate::store::{KeyRow, Retention, SecretRow, Store, StoreError};
use crate::traffic::Traffic;
use warden_telemetry::Traces;

/// Everything the handlers share.
pub struct ControlPlane {
    pub store: Store,
    pub hub: Hub,
    pub registry: Registry,
    pub quotas: QuotaBoard,
    /// How much of the deny log is kept.
    pub retention: Retention,
    /// Each sidecar's latest per-route traffic.
    pub traffic: Traffic,
    /// Policy rollouts being traced.
    pub rollouts: Arc<Rollouts>,
    /// One credentials refresh at a time, so each change builds on the one before.
    refreshing: tokio::sync::Mutex<()>,
}

impl ControlPlane {
    /// Opens the registry and publishes every service's current version.
    pub async fn start(store: Store) -> anyhow::Result<Arc<ControlPlane>> {
        ControlPlane::start_with(store, Retention::default(), None).await
    }

    /// `start`, keeping the deny log within `retention`, tracing rollouts with `traces`.
    pub async fn start_with(
        store: Store,
        retention: Retention,
        traces: Option<Traces>,
    ) -> anyhow::Result<Arc<ControlPlane>> {
        let registry = Registry::load(store.clone()).await?;
        let hub = Hub::default();
        for v in store.list_current().await? {
            match snapshot_of(&v) {
                Ok(s) => hub.publish(s),
                Err(e) => {
                    tracing::error!(service = %v.service, version = v.version, "stored policy no longer validates; not serving it:\n{e}")
                }
            }
        }
        let cp = Arc::new(ControlPlane {
            store,
            hub,
            registry,
            quotas: QuotaBoard::default(),
            retention,
            traffic: Traffic::default(),
            rollouts: Rollouts::new(traces),
            refreshing: tokio::sync::Mutex::new(()),
        });
        for service in cp.hub.services() {
            cp.refresh_credentials(&service).await?;
        }
        Ok(cp)
    }

    /// Publishes what changed in a service's credentials (its keys, and the secrets its
    /// current policy names) since the revision its sidecars were last sent, or the whole
    /// set the first time. Called after every key, secret or policy change.
    pub async fn refresh_credentials(&self, service: &str) -> Result<(), StoreError> {
        self.publish_with_credentials(service, None).await
    }

    /// Refreshes the credentials for the secrets `snapshot` names, then publishes it: its
    /// sidecars get the secrets before the policy that needs them. Under the same lock, so
    /// no other refresh reads the old policy's secret names in between.
    pub async fn publish_with_credentials(
        &self,
        service: &str,
        snapshot: Option<pb::Snapshot>,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let names = match &snapshot {
            Some(s) => secret_names(s),
            None => self.hub.secret_names(service),
        };
        self.refresh_locked(service, names).await?;
        if let Some(s) = snapshot {
            self.hub.publish(s);
        }
        Ok(())
    }

    async fn refresh_locked(&self, service: &str, names: Vec<String>) -> Result<(), StoreError> {
        let state = match self.hub.credentials(service) {
            None => {
                let (revision, keys, secrets) = self.store.credentials(service, 0, names.clone()).await?;
                CredentialsState::new(credentials(self.store.epoch(), service, revision, 0, keys, secrets), names)
            }
            Some(current) => {
                if current.secret_names != names {
                    // The secrets sent change with no key or secret row changing.
                    self.store.bump_credentials_revision().await?;
                }
                let base = current.full.revision;
                let (revision, keys, secrets) = self.store.credentials(service, base, names.clone()).await?;
                if revision == base {
                    return Ok(());
                }
                current.apply(credentials(self.store.epoch(), service, revision, base, keys, secrets), names)
            }
        };
        self.hub.publish_credentials(service, state);
        Ok(())
    }
}

/// Serves both services on `listener` until the future is dropped. Sidecar streams
/// require a sidecar token, the admin API `admin_token`; with `tls`, only TLS.
pub async fn serve(
    listener: TcpListener,
    cp: Arc<ControlPlane>,
    admin_token: BearerToken,
    sidecar_tokens: SidecarTokens,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<(), tonic::transport::Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(SidecarServiceServer::with_interceptor(sidecar::SidecarApi(cp.clone()), sidecar_tokens))
        .add_service(AdminServiceServer::with_interceptor(admin::AdminApi(cp), admin_token))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

fn credentials(
    epoch: u64,
    service: &str,
    revision: u64,
    base: u64,
    keys: Vec<KeyRow>,
    secrets: Vec<SecretRow>,
) -> pb::Credentials {
    pb::Credentials {
        epoch,
        service: service.to_owned(),
        revision,
        base_revision: base,
        keys: keys
            .into_iter()
            .map(|k| pb::ApiKey {
                id: k.id,
                sha256: k.sha256,
                client: k.client,
                plan: k.plan,
                expires_unix_ms: k.expires_unix_ms,
                revoked_unix_ms: k.revoked_unix_ms,
            })
            .collect(),
        secrets: secrets
            .into_iter()
            .map(|s| pb::Secret { name: s.name, id: s.id, value: s.value, expires_unix_ms: s.expires_unix_ms })
            .collect(),
    }
}
