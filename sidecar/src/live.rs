//! The sidecar's live state: the active snapshot behind one `ArcSwap`, the connection
//! pools that outlive snapshots, and `install`, the one way a new policy goes live
//! (compile → check → swap → persist), whoever delivered it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::uri::Authority;
use rustls::ServerConfig;
use warden_proto::v1 as pb;

use crate::edge::EdgeLimits;
use crate::state::{SnapshotWriter, StateFile};
use crate::telemetry::Telemetry;
use crate::tls::{self, CertFiles, LoadedTls};
use crate::upstream::{BoundUpstream, Pools, check_resolvable};
use warden_policy::auth::{Credentials, InvalidCredentials};
use warden_policy::limits::{Buckets, LimitState, Quotas};
use warden_policy::snapshot::{CompileContext, InvalidSnapshot, Snapshot};

/// Where the active snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    ControlPlane,
    /// The last known good snapshot in `--state-dir`.
    Disk,
    PolicyFile,
}

/// The active policy: the snapshot and its upstreams bound to connection pools. One
/// atomic load per request gets both.
#[derive(Debug)]
pub struct Active {
    pub snapshot: Arc<Snapshot>,
    /// By `Upstream::index`.
    upstreams: Vec<BoundUpstream>,
    /// Each limit's counters, by `Limit::index`: shared with every snapshot that has the
    /// same definition, so a push resets no budget.
    pub limits: Vec<Arc<Buckets>>,
}

impl Active {
    /// The pools of one of the snapshot's upstreams.
    pub fn upstream(&self, u: &warden_policy::snapshot::Upstream) -> &BoundUpstream {
        &self.upstreams[u.index]
    }

    /// Every upstream, in the snapshot's order.
    pub fn upstreams(&self) -> &[BoundUpstream] {
        &self.upstreams
    }
}

/// A snapshot `install` made active.
#[derive(Debug)]
pub struct Installed {
    pub snapshot: Arc<Snapshot>,
    /// Its write as the last known good: on disk once `Live::snapshot_writes` reaches it
    /// (0: nothing to write).
    pub ticket: u64,
}

/// Shared by the listener, the admin server and whatever delivers policy.
#[derive(Debug)]
pub struct Live {
    active: ArcSwapOption<Active>,
    /// API keys and secrets; empty until the control plane (or disk) provides them.
    credentials: ArcSwap<Credentials>,
    origin: Mutex<Option<Origin>>,
    swaps: AtomicU64,
    draining: AtomicBool,
    pools: Pools,
    /// Limit counters, shared by every snapshot with the same limit definition.
    limit_state: LimitState,
    /// Shares of global quotas, and the demand to report.
    quotas: Quotas,
    /// Metrics, the access log, deny records.
    telemetry: Telemetry,
    app: Authority,
    service: Option<String>,
    state: Option<StateFile>,
    /// Writes the control plane's snapshots to `state` (group commit).
    writer: Option<Arc<SnapshotWriter>>,
    limits: EdgeLimits,
    /// KiB of request body that may be buffered at once (`EdgeLimits::max_buffered_bytes`).
    buffer_budget: Arc<tokio::sync::Semaphore>,
    /// Requests that may wait on upstreams at once (`EdgeLimits::max_in_flight`).
    in_flight: tokio::sync::Semaphore,
    /// The TLS configuration of the active snapshot; None: plain HTTP.
    tls: ArcSwapOption<ServerConfig>,
    /// Its files and their digest, for `tls::watch`.
    tls_files: Mutex<Option<(Vec<CertFiles>, Vec<u8>)>>,
}

impl Live {
    /// `service`: refuse snapshots for any other service. `state`: where the last known
    /// good snapshot is kept, if anywhere.
    pub fn new(app: Authority, service: Option<String>, state: Option<StateFile>) -> Self {
        Live {
            active: ArcSwapOption::empty(),
            credentials: ArcSwap::from_pointee(Credentials::default()),
            origin: Mutex::new(None),
            swaps: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            pools: Pools::default(),
            limit_state: LimitState::default(),
            quotas: Quotas::default(),
            telemetry: Telemetry::default(),
            app,
            service,
            writer: state.clone().map(SnapshotWriter::new),
            state,
            limits: EdgeLimits::default(),
            buffer_budget: Arc::new(tokio::sync::Semaphore::new(EdgeLimits::default().max_buffered_bytes >> 10)),
            in_flight: tokio::sync::Semaphore::new(EdgeLimits::default().max_in_flight),
            tls: ArcSwapOption::empty(),
            tls_files: Mutex::new(None),
        }
    }

    /// The TLS configuration to terminate new connections with; None: plain HTTP.
    pub fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        self.tls.load_full()
    }

    /// The certificate files in use and the digest of their content.
    pub fn tls_files(&self) -> Option<(Vec<CertFiles>, Vec<u8>)> {
        self.tls_files.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Swaps in reloaded certificates, if `files` are still the ones in use.
    pub fn replace_tls(&self, files: &[CertFiles], loaded: &LoadedTls) {
        let mut current = self.tls_files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((in_use, digest)) = current.as_mut()
            && in_use.as_slice() == files
        {
            *digest = loaded.digest.clone();
            self.tls.store(Some(loaded.config.clone()));
        }
    }

    /// Where requests are counted and logged.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
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
        self.limit_state = LimitState::new(max_keys);
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

    /// The active policy: one atomic load. Call once per request.
    pub fn active(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    /// The active snapshot.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.active.load().as_ref().map(|a| a.snapshot.clone())
    }

    /// The active credentials: one atomic load. Call once per request.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials.load_full()
    }

    /// Makes pushed credentials (a whole set, or a change on top of the active ones) the
    /// active ones, and persists the whole set when the control plane sent them. On error
    /// the old ones stay.
    pub async fn install_credentials(&self, proto: &pb::Credentials, origin: Origin) -> Result<(), InvalidCredentials> {
        let service = self.service.as_deref();
        let compiled = match proto.base_revision {
            0 => Credentials::compile(proto, service)?,
            _ => self.credentials().apply(proto, service)?,
        };
        let compiled = Arc::new(compiled);
        self.credentials.store(compiled.clone());
        tracing::info!(
            revision = proto.revision,
            changed = proto.keys.len(),
            keys = compiled.key_count(),
            ?origin,
            "credentials active"
        );
        if origin == Origin::ControlPlane
            && let Some(state) = &self.state
        {
            // A whole set is saved as it came (100,000 keys: a copy would be ~20 MB more).
            let whole = match proto.base_revision {
                0 => std::borrow::Cow::Borrowed(proto),
                _ => std::borrow::Cow::Owned(compiled.to_proto(&proto.service)),
            };
            if let Err(e) = state.save_credentials(&whole).await {
                tracing::warn!(error = %e, file = %state.credentials_path().display(), "could not persist the credentials");
            }
        }
        Ok(())
    }

    pub fn origin(&self) -> Option<Origin> {
        *self.origin.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many snapshots have gone live since start.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Ready for traffic: a snapshot is loaded and the sidecar is not draining.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.active.load().is_some()
    }

    /// From now on `/readyz` says no, so load balancers stop sending new requests.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The version being served, 0 for none.
    pub fn version(&self) -> u64 {
        self.active.load().as_ref().map_or(0, |a| a.snapshot.version)
    }

    /// Writes the snapshot being served if it is still queued: on shutdown, so a restart
    /// finds what was served, not a version up to one burst older.
    pub async fn flush_snapshot(&self) {
        if let Some(w) = &self.writer {
            w.flush().await;
        }
    }

    /// How far the writes of the last known good snapshot have got: an install's ticket is
    /// on disk once this reaches it. None without `--state-dir`.
    pub fn snapshot_writes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.writer.as_ref().map(|w| w.done())
    }

    /// Compiles and checks a snapshot, then makes it the active one and (from the control
    /// plane) queues it to be written as the last known good. On error nothing changes:
    /// the old snapshot keeps serving.
    pub async fn install(&self, proto: &pb::Snapshot, origin: Origin) -> Result<Installed, InvalidSnapshot> {
        self.install_encoded(proto, origin, None).await
    }

    /// `install` of a snapshot from the control plane, with the bytes it came as: they are
    /// what gets written as the last known good, without encoding it again.
    pub async fn install_pushed(&self, proto: &pb::Snapshot, encoded: Bytes) -> Result<Installed, InvalidSnapshot> {
        self.install_encoded(proto, Origin::ControlPlane, Some(encoded)).await
    }

    async fn install_encoded(
        &self,
        proto: &pb::Snapshot,
        origin: Origin,
        encoded: Option<Bytes>,
    ) -> Result<Installed, InvalidSnapshot> {
        if let Some(cur) = self.snapshot()
            && cur.version == proto.version
            && cur.content_hash == proto.content_hash
        {
            self.set_origin(origin);
            // On disk once what is queued now is: it includes this snapshot.
            let ticket = self.writer.as_ref().map_or(0, |w| w.last_ticket());
            return Ok(Installed { snapshot: cur, ticket });
        }
        let ctx = CompileContext { service: self.service.as_deref(), read_files: true };
        let compiled = Snapshot::compile(proto, &ctx)?;
        // The snapshot on disk was checked before it was written; a DNS outage at boot must not
        // turn the last known good policy into no policy.
        if origin != Origin::Disk {
            check_resolvable(&compiled).await?;
        }
        let tls = match &proto.tls {
            Some(t) => {
                let files: Vec<CertFiles> = t
                    .certificates
                    .iter()
                    .map(|c| CertFiles { cert: c.cert_file.clone().into(), key: c.key_file.clone().into() })
                    .collect();
                let to_load = files.clone();
                let loaded = tokio::task::spawn_blocking(move || tls::load(&to_load))
                    .await
                    .map_err(|e| InvalidSnapshot::Tls(e.to_string()))?
                    .map_err(InvalidSnapshot::Tls)?;
                Some((files, loaded))
            }
            None => None,
        };
        let compiled = Arc::new(compiled);
        let upstreams = self.pools.bind(&compiled, &self.app);
        let limits = self.limit_state.bind(&compiled);
        self.active.store(Some(Arc::new(Active { snapshot: compiled.clone(), upstreams, limits })));
        {
            // Under the lock `replace_tls` takes, so a reload of the previous files cannot
            // land after this and put their certificates back.
            let mut files_in_use = self.tls_files.lock().unwrap_or_else(PoisonError::into_inner);
            match tls {
                Some((files, loaded)) => {
                    self.tls.store(Some(loaded.config.clone()));
                    *files_in_use = Some((files, loaded.digest));
                }
                None => {
                    self.tls.store(None);
                    *files_in_use = None;
                }
            }
        }
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.set_origin(origin);
        tracing::info!(service = %compiled.service, version = compiled.version, ?origin, "snapshot active");
        // Only the control plane's snapshots are persisted: a policy file is its own
        // durable copy, and its local version numbers must not replace the fleet's.
        let ticket = match (&self.writer, origin) {
            (Some(writer), Origin::ControlPlane) => {
                writer.submit(encoded.unwrap_or_else(|| prost::Message::encode_to_vec(proto).into()))
            }
            _ => 0,
        };
        Ok(Installed { snapshot: compiled, ticket })
    }

    /// Loads the last known good snapshot (and the last credentials) from `--state-dir`,
    /// if there is one.
    pub async fn load_from_disk(&self) -> Option<u64> {
        let state = self.state.as_ref()?;
        match state.load_credentials().await {
            Ok(Some(creds)) => {
                if let Err(e) = self.install_credentials(&creds, Origin::Disk).await {
                    tracing::warn!(error = %e, "the credentials on disk cannot be used");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %state.credentials_path().display(), "could not read the credentials on disk")
            }
        }
        match state.load().await {
            Ok(Some(proto)) => match self.install(&proto, Origin::Disk).await {
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

    fn set_origin(&self, origin: Origin) {
        *self.origin.lock().unwrap_or_else(PoisonError::into_inner) = Some(origin);
    }
}
