//! The sidecar's live state, as the rest of it sees it: what is active (one `ArcSwap`
//! of `Active`, loaded once per request), the caps and budgets every request shares, and
//! the way in for changes. Changes go to the installer (`installer.rs`), the one writer
//! of `Active`, whoever delivered them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::uri::Authority;
use rustls::ServerConfig;
use tokio::sync::{mpsc, oneshot};
use warden_policy::auth::{Credentials, InvalidCredentials};
use warden_policy::limits::{LimitState, Quotas};
use warden_policy::snapshot::{InvalidSnapshot, Snapshot};
use warden_proto::v1 as pb;

use crate::active::{Active, TlsInUse};
use crate::edge::EdgeLimits;
use crate::installer::{Change, Installed, Installer, Origin};
use crate::state::StateFile;
use crate::telemetry::Telemetry;
use crate::tls::{CertFiles, LoadedTls};
use crate::tunnel::Tunnels;

/// Why a change was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError<E> {
    #[error(transparent)]
    Invalid(#[from] E),
    /// The installer is gone: the sidecar is stopping.
    #[error("the sidecar is stopping")]
    Stopped,
}

/// Shared by the listener, the admin server and whatever delivers policy.
#[derive(Debug)]
pub struct Live {
    installer: Arc<Installer>,
    /// The installer's queue, opened (and its task started) by the first change.
    changes: OnceLock<mpsc::Sender<Change>>,
    draining: AtomicBool,
    /// Shares of global quotas, and the demand to report.
    quotas: Quotas,
    /// Metrics, the access log, deny records.
    telemetry: Telemetry,
    limits: EdgeLimits,
    /// KiB of request body that may be buffered at once (`EdgeLimits::max_buffered_bytes`).
    buffer_budget: Arc<tokio::sync::Semaphore>,
    /// Requests that may wait on upstreams at once (`EdgeLimits::max_in_flight`).
    in_flight: tokio::sync::Semaphore,
    /// Open WebSocket tunnels, drained on shutdown.
    tunnels: Tunnels,
}

impl Live {
    /// `app`: the sidecar's `--upstream`. `service`: refuse snapshots for any other
    /// service. `state`: where the last known good snapshot is kept, if anywhere.
    pub fn new(app: Authority, service: Option<String>, state: Option<StateFile>) -> Self {
        Live {
            installer: Arc::new(Installer::new(app, service, state)),
            changes: OnceLock::new(),
            draining: AtomicBool::new(false),
            quotas: Quotas::default(),
            telemetry: Telemetry::default(),
            limits: EdgeLimits::default(),
            buffer_budget: Arc::new(tokio::sync::Semaphore::new(EdgeLimits::default().max_buffered_bytes >> 10)),
            in_flight: tokio::sync::Semaphore::new(EdgeLimits::default().max_in_flight),
            tunnels: Tunnels::default(),
        }
    }

    /// Where requests are counted and logged.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// Sets up telemetry (the access log on or off).
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// This sidecar's shares of global quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Each rate limit tracks at most this many keys (clients, addresses) at once.
    pub fn with_limit_keys(mut self, max_keys: usize) -> Self {
        // Before the installer runs, nothing else holds it.
        if let Some(installer) = Arc::get_mut(&mut self.installer) {
            installer.limit_state = LimitState::new(max_keys);
        }
        self
    }

    /// Sets the limits on request heads (URI and header sizes).
    pub fn with_limits(mut self, limits: EdgeLimits) -> Self {
        self.limits = limits;
        self.buffer_budget = Arc::new(tokio::sync::Semaphore::new(limits.max_buffered_bytes.div_ceil(1024)));
        self.in_flight = tokio::sync::Semaphore::new(limits.max_in_flight);
        self
    }

    pub fn limits(&self) -> &EdgeLimits {
        &self.limits
    }

    /// What buffered request bodies may use, in KiB permits.
    pub fn buffer_budget(&self) -> Arc<tokio::sync::Semaphore> {
        self.buffer_budget.clone()
    }

    /// Slots for requests waiting on upstreams.
    pub fn in_flight(&self) -> &tokio::sync::Semaphore {
        &self.in_flight
    }

    /// What is active: one atomic load. Call once per request.
    pub fn active(&self) -> Arc<Active> {
        self.installer.active.load_full()
    }

    /// The active snapshot.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.installer.active.load().policy.as_ref().map(|p| p.snapshot.clone())
    }

    /// The active credentials.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.installer.active.load().credentials.clone()
    }

    /// The TLS configuration to terminate new connections with; None: plain HTTP.
    pub fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        self.installer.active.load().tls.as_ref().map(|t| t.config.clone())
    }

    /// The certificates in use, with their files and digest.
    pub fn tls_in_use(&self) -> Option<Arc<TlsInUse>> {
        self.installer.active.load().tls.clone()
    }

    pub fn origin(&self) -> Option<Origin> {
        self.installer.origin()
    }

    /// How many snapshots have gone live since start.
    pub fn swaps(&self) -> u64 {
        self.installer.swaps()
    }

    /// Ready for traffic: a snapshot is loaded and the sidecar is not draining.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.installer.active.load().policy.is_some()
    }

    /// From now on `/readyz` says no, so load balancers stop sending new requests.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The version being served, 0 for none.
    pub fn version(&self) -> u64 {
        self.installer.active.load().version()
    }

    /// Writes the snapshot being served if it is still queued: on shutdown, so a restart
    /// finds what was served, not a version up to one burst older.
    pub async fn flush_snapshot(&self) {
        if let Some(w) = &self.installer.writer {
            w.flush().await;
        }
    }

    /// How far the writes of the last known good snapshot have got: an install's ticket is
    /// on disk once this reaches it. None without `--state-dir`.
    pub fn snapshot_writes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.installer.writer.as_ref().map(|w| w.done())
    }

    /// Compiles and checks a snapshot, then makes it the active one and (from the control
    /// plane) queues it to be written as the last known good. On error nothing changes:
    /// the old snapshot keeps serving.
    pub async fn install(
        &self,
        proto: pb::Snapshot,
        origin: Origin,
    ) -> Result<Installed, InstallError<InvalidSnapshot>> {
        self.change(|done| Change::Snapshot { proto: Box::new(proto), origin, encoded: None, done }).await
    }

    /// `install` of a snapshot from the control plane, with the bytes it came as: they are
    /// what gets written as the last known good, without encoding it again.
    pub async fn install_pushed(
        &self,
        proto: pb::Snapshot,
        encoded: Bytes,
    ) -> Result<Installed, InstallError<InvalidSnapshot>> {
        let origin = Origin::ControlPlane;
        self.change(|done| Change::Snapshot { proto: Box::new(proto), origin, encoded: Some(encoded), done }).await
    }

    /// Makes pushed credentials (a whole set, or a change on top of the active ones) the
    /// active ones, and persists the whole set when the control plane sent them. On error
    /// the old ones stay.
    pub async fn install_credentials(
        &self,
        proto: pb::Credentials,
        origin: Origin,
    ) -> Result<(), InstallError<InvalidCredentials>> {
        self.change(|done| Change::Credentials { proto: Box::new(proto), origin, done }).await
    }

    /// Makes `proto` the candidate decided in shadow beside the live version (None: stop).
    /// On error the previous shadow (or none) stays.
    pub async fn install_shadow(&self, proto: Option<pb::Snapshot>) -> Result<(), InstallError<InvalidSnapshot>> {
        self.change(|done| Change::Shadow { proto: proto.map(Box::new), done }).await
    }

    /// Swaps in reloaded certificates, if `files` are still the ones in use when the
    /// installer gets to it.
    pub async fn replace_tls(&self, files: Vec<CertFiles>, loaded: LoadedTls) {
        let _ = self.changes().send(Change::Tls { files, loaded }).await;
    }

    /// Sends a change to the installer and waits for its outcome.
    async fn change<T, E>(
        &self,
        change: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Change,
    ) -> Result<T, InstallError<E>> {
        let (done, outcome) = oneshot::channel();
        self.changes().send(change(done)).await.map_err(|_| InstallError::Stopped)?;
        outcome.await.map_err(|_| InstallError::Stopped)?.map_err(InstallError::Invalid)
    }

    fn changes(&self) -> &mpsc::Sender<Change> {
        self.changes.get_or_init(|| {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(self.installer.clone().run(rx));
            tx
        })
    }

    /// Loads the last known good snapshot (and the last credentials) from `--state-dir`,
    /// if there is one.
    pub async fn load_from_disk(&self) -> Option<u64> {
        let state = self.installer.state.as_ref()?;
        match state.load_credentials().await {
            Ok(Some(creds)) => {
                if let Err(e) = self.install_credentials(creds, Origin::Disk).await {
                    tracing::warn!(error = %e, "the credentials on disk cannot be used");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %state.credentials_path().display(), "could not read the credentials on disk")
            }
        }
        match state.load().await {
            Ok(Some(proto)) => match self.install(proto, Origin::Disk).await {
                Ok(i) => Some(i.snapshot.version),
                Err(e) => {
                    tracing::warn!(error = %e, "the snapshot on disk cannot be served");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, file = %state.path().display(), "could not read the snapshot on disk");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::yaml::{build, parse_service};

    fn snapshot(version: u64) -> pb::Snapshot {
        // A host name to resolve: the install waits on DNS, so two installs overlap.
        let yaml = "service: orders\nupstreams:\n  db: { endpoints: [\"localhost:9\"] }\nroutes:\n  - name: all\n    match: { path_prefix: / }\n";
        let p = parse_service("p.yaml", yaml, None).unwrap();
        build(&p.policy, &p.source, version)
    }

    #[tokio::test]
    async fn changes_from_two_sources_are_applied_one_at_a_time() {
        let live = Live::new(Authority::from_static("127.0.0.1:1"), Some("orders".into()), None);
        // The same version from two sources at once: the second finds it active and
        // swaps nothing (checked and swapped in one step, not two that can interleave).
        let (a, b) = tokio::join!(
            live.install(snapshot(3), Origin::PolicyFile),
            live.install(snapshot(3), Origin::ControlPlane)
        );
        assert_eq!((a.unwrap().snapshot.version, b.unwrap().snapshot.version), (3, 3));
        assert_eq!(live.swaps(), 1, "one swap for one version");
        assert_eq!(live.origin(), Some(Origin::ControlPlane), "in the order they arrived");

        // Credentials and a snapshot land in one `Active`: neither undoes the other.
        let creds = pb::Credentials { service: "orders".into(), revision: 7, epoch: 1, ..Default::default() };
        let (s, c) = tokio::join!(
            live.install(snapshot(4), Origin::ControlPlane),
            live.install_credentials(creds, Origin::ControlPlane)
        );
        s.unwrap();
        c.unwrap();
        let active = live.active();
        assert_eq!((active.version(), active.credentials.revision), (4, 7));

        // A snapshot for another service is refused, and nothing changes.
        let mut other = snapshot(5);
        other.service = "billing".into();
        let refused = live.install(other, Origin::ControlPlane).await.unwrap_err();
        assert!(matches!(refused, InstallError::Invalid(InvalidSnapshot::WrongService { .. })), "{refused}");
        assert_eq!(live.version(), 4);
    }
}
