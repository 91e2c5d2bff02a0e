//! The thin gRPC server: the sidecar streams (`sidecar.rs`) and the admin API
//! (`admin.rs`) over one port. Both only translate between the wire and the store, the hub
//! and the registry; no policy logic lives here.

mod admin;
mod auth;
mod keys;
mod sidecar;

pub use auth::BearerToken;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warden_proto::v1::admin_service_server::AdminServiceServer;
use warden_proto::v1::sidecar_service_server::SidecarServiceServer;

use warden_proto::v1 as pb;

use crate::hub::{Hub, snapshot_of};
use crate::registry::Registry;
use crate::store::{Store, StoreError};

/// Everything the handlers share.
pub struct ControlPlane {
    pub store: Store,
    pub hub: Hub,
    pub registry: Registry,
}

impl ControlPlane {
    /// Opens the registry and publishes every service's current version.
    pub async fn start(store: Store) -> anyhow::Result<Arc<ControlPlane>> {
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
        let cp = Arc::new(ControlPlane { store, hub, registry });
        for service in cp.hub.services() {
            cp.refresh_credentials(&service).await?;
        }
        Ok(cp)
    }

    /// Reads a service's keys and the secrets its current policy names from the store
    /// and publishes them to its sidecars. Called after every key, secret or policy change.
    pub async fn refresh_credentials(&self, service: &str) -> Result<(), StoreError> {
        let (revision, keys, secrets) = self.store.credentials(service, self.hub.secret_names(service)).await?;
        self.hub.publish_credentials(pb::Credentials {
            service: service.to_owned(),
            revision,
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
        });
        Ok(())
    }
}

/// Serves both services on `listener` until the future is dropped.
/// Sidecar streams require `sidecar_token`, the admin API `admin_token`.
pub async fn serve(
    listener: TcpListener,
    cp: Arc<ControlPlane>,
    admin_token: BearerToken,
    sidecar_token: BearerToken,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(SidecarServiceServer::with_interceptor(sidecar::SidecarApi(cp.clone()), sidecar_token))
        .add_service(AdminServiceServer::with_interceptor(admin::AdminApi(cp), admin_token))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}
