//! The control-plane client: one long-lived `Subscribe` stream. Says hello with the
//! version it serves, installs every snapshot pushed to it and answers ACK (once its write
//! as the last known good has finished; a failed write is logged) or NACK, installs (or
//! drops) a rollout's candidate to decide in shadow and says so (`ShadowAck`), sends
//! heartbeats, and reconnects with jittered exponential backoff when the stream breaks.
//! While it is disconnected the sidecar keeps serving what it has. Given several replicas'
//! URLs it starts at a random one (so a fleet spreads over them) and, when a replica does
//! not answer, tries the next; both streams move together.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use warden_proto::MAX_MESSAGE_BYTES;
use warden_proto::v1 as pb;
use warden_proto::v1::sidecar_message::Kind;
use warden_proto::v1::sidecar_service_client::SidecarServiceClient;
use warden_proto::v1::{Ack, CredentialsAck, Heartbeat, Hello, Nack, ShadowAck, SidecarMessage};

use crate::installer::Origin;
use crate::live::{InstallError, Live};
use warden_policy::yaml::SCHEMA;

const HEARTBEAT: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Who this sidecar is to the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The replicas, any of which will do.
    pub urls: Vec<String>,
    /// The index in `urls` of the replica last connected to, where both streams start.
    pub current: Arc<AtomicUsize>,
    pub service: String,
    pub instance: String,
    pub token: Option<String>,
    /// PEM CA for an `https://` control plane.
    pub ca: Option<Vec<u8>>,
}

impl ControlConfig {
    /// `urls` is `--control-plane`: one URL or several, comma-separated.
    pub fn new(urls: &str, service: String, instance: String, token: Option<String>, ca: Option<Vec<u8>>) -> Self {
        let urls: Vec<String> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        let start = fastrand::usize(..urls.len().max(1));
        ControlConfig { urls, current: Arc::new(AtomicUsize::new(start)), service, instance, token, ca }
    }
}

/// Runs forever: connect, follow the stream, back off, reconnect.
pub async fn run(cfg: ControlConfig, live: Arc<Live>) {
    let mut failures: u32 = 0;
    loop {
        let ended = session(&cfg, &live, &mut failures).await;
        live.telemetry().metrics.control_plane_connected.set(0);
        match ended {
            Ok(()) => {
                tracing::warn!("control plane closed the stream; serving the current snapshot and reconnecting")
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "control plane unreachable; serving the current snapshot");
                // A replica that accepts connections but fails the stream (stuck, overloaded)
                // is not tried first again: both streams move on to the next.
                if cfg.urls.len() > 1 {
                    let next = (cfg.current.load(Ordering::Relaxed) + 1) % cfg.urls.len();
                    cfg.current.store(next, Ordering::Relaxed);
                }
            }
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// Full jitter: a random wait up to base·2ⁿ, capped, so a fleet does not reconnect in step.
pub(crate) fn backoff(failures: u32) -> Duration {
    let cap = BACKOFF_BASE.saturating_mul(1 << failures.min(16)).min(BACKOFF_MAX);
    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(ms / 2..=ms))
}

/// Adds the sidecar's bearer token to every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

pub(crate) type Client = SidecarServiceClient<InterceptedService<Channel, Bearer>>;

/// Connects to a control-plane replica (both streams use this): the one last connected
/// to, else each other in turn; returns the client and the URL that answered.
pub(crate) async fn connect(cfg: &ControlConfig) -> anyhow::Result<(Client, String)> {
    let token = cfg.token.as_ref().map(|t| MetadataValue::try_from(format!("Bearer {t}"))).transpose()?;
    let first = cfg.current.load(Ordering::Relaxed);
    let mut errors = Vec::new();
    for i in 0..cfg.urls.len() {
        let index = (first + i) % cfg.urls.len();
        let url = &cfg.urls[index];
        match channel(cfg, url).await {
            Ok(channel) => {
                cfg.current.store(index, Ordering::Relaxed);
                let client = SidecarServiceClient::with_interceptor(channel, Bearer(token))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES);
                return Ok((client, url.clone()));
            }
            Err(e) => errors.push(format!("{url}: {e:#}")),
        }
    }
    anyhow::bail!("no control-plane replica answered: {}", errors.join("; "))
}

/// A channel to one replica. A DNS name with several addresses is tried address by
/// address (hyper-util's connector), within the connect timeout.
async fn channel(cfg: &ControlConfig, url: &str) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())?;
    if let Some(ca) = &cfg.ca {
        endpoint = endpoint.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect()
        .await?)
}

async fn session(cfg: &ControlConfig, live: &Live, failures: &mut u32) -> anyhow::Result<()> {
    let (mut client, url) = connect(cfg).await?;

    let (tx, rx) = mpsc::channel(16);
    let hello = Hello {
        service: cfg.service.clone(),
        instance: cfg.instance.clone(),
        version: live.version(),
        sidecar_version: env!("CARGO_PKG_VERSION").into(),
        schema: SCHEMA,
        credentials_revision: live.credentials().revision,
        credentials_epoch: live.credentials().epoch,
    };
    tx.send(SidecarMessage { kind: Some(Kind::Hello(hello)) }).await?;
    let mut pushes = client.subscribe(ReceiverStream::new(rx)).await?.into_inner();
    tracing::info!(%url, service = %cfg.service, instance = %cfg.instance, "connected to the control plane");
    live.telemetry().metrics.control_plane_connected.set(1);
    *failures = 0;

    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    // Swapped in, ACKed once written: (write ticket, version), oldest first.
    let mut unwritten: VecDeque<(u64, u64)> = VecDeque::new();
    let mut writes = live.snapshot_writes();
    loop {
        tokio::select! {
            push = pushes.message() => {
                let Some(push) = push? else { return Ok(()) };
                // Undecodable bytes are a broken stream, not a policy to NACK: reconnect.
                let creds = push.credentials.map(pb::Credentials::decode).transpose()?;
                let snapshot = match push.snapshot {
                    Some(bytes) => Some((pb::Snapshot::decode(bytes.clone())?, bytes)),
                    None => None,
                };
                // Empty: stop shadowing.
                let shadow = match push.shadow {
                    Some(bytes) if bytes.is_empty() => Some(None),
                    Some(bytes) => Some(Some(pb::Snapshot::decode(bytes)?)),
                    None => None,
                };
                if let Some(creds) = creds {
                    let revision = creds.revision;
                    match live.install_credentials(creds, Origin::ControlPlane).await {
                        Ok(()) => {
                            let ack = CredentialsAck { revision };
                            tx.send(SidecarMessage { kind: Some(Kind::CredentialsAck(ack)) }).await?;
                        }
                        // A change that does not fit what this sidecar holds: reconnect, saying
                        // which revision it has, and get what it misses.
                        Err(InstallError::Invalid(e @ warden_policy::auth::InvalidCredentials::Gap { .. })) => return Err(e.into()),
                        Err(e) => tracing::error!(revision, error = %e, "credentials refused; the previous ones stay"),
                    }
                }
                if let Some((snapshot, encoded)) = snapshot {
                    let version = snapshot.version;
                    match live.install_pushed(snapshot, encoded).await {
                        Ok(installed) => {
                            unwritten.push_back((installed.ticket, version));
                            let written = writes.as_ref().map_or(u64::MAX, |w| *w.borrow());
                            ack_written(&mut unwritten, written, &tx).await?;
                        }
                        Err(e) => {
                            tracing::error!(version, error = %e, "snapshot refused (NACK); the previous one keeps serving");
                            let nack = Nack { version, error: e.to_string() };
                            tx.send(SidecarMessage { kind: Some(Kind::Nack(nack)) }).await?;
                        }
                    }
                }
                // After the snapshot: a promote sends the new live version and the end of
                // its shadow together.
                if let Some(shadow) = shadow {
                    let version = shadow.as_ref().map_or(0, |s| s.version);
                    let ack = match live.install_shadow(shadow).await {
                        Ok(()) => ShadowAck { version, error: String::new() },
                        Err(e) => {
                            tracing::error!(version, error = %e, "shadow candidate refused; the live version serves on");
                            ShadowAck { version, error: e.to_string() }
                        }
                    };
                    tx.send(SidecarMessage { kind: Some(Kind::ShadowAck(ack)) }).await?;
                }
            }
            Some(written) = next_write(&mut writes), if !unwritten.is_empty() => {
                ack_written(&mut unwritten, written, &tx).await?;
            }
            _ = heartbeat.tick() => {
                tx.send(SidecarMessage { kind: Some(Kind::Heartbeat(Heartbeat {})) }).await?;
            }
        }
    }
}

/// ACKs, oldest first, every swapped-in version whose write ticket is `written` or older.
async fn ack_written(
    unwritten: &mut VecDeque<(u64, u64)>,
    written: u64,
    tx: &mpsc::Sender<SidecarMessage>,
) -> anyhow::Result<()> {
    while let Some(&(ticket, version)) = unwritten.front()
        && ticket <= written
    {
        unwritten.pop_front();
        tx.send(SidecarMessage { kind: Some(Kind::Ack(Ack { version })) }).await?;
    }
    Ok(())
}

/// The next ticket the snapshot writer finishes; None without one (never ready then).
async fn next_write(writes: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<u64> {
    let w = writes.as_mut()?;
    w.changed().await.ok()?;
    Some(*w.borrow_and_update())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 0..40 {
            let d = backoff(n);
            assert!(d <= BACKOFF_MAX, "{n}: {d:?}");
        }
        assert!(backoff(1) <= BACKOFF_BASE * 2);
        assert!(backoff(30) >= BACKOFF_MAX / 2);
    }
}
