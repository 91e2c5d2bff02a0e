//! The gRPC port: both services on one listener, each behind its token check, optionally
//! over TLS.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warden_proto::v1::admin_service_server::AdminServiceServer;
use warden_proto::v1::sidecar_service_server::SidecarServiceServer;

use crate::ops::ControlPlane;
use crate::server::admin::AdminApi;
use crate::server::auth::{BearerToken, SidecarTokens};
use crate::server::sidecar::SidecarApi;

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
        .add_service(SidecarServiceServer::with_interceptor(SidecarApi(cp.clone()), sidecar_tokens))
        .add_service(AdminServiceServer::with_interceptor(AdminApi(cp), admin_token))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}
