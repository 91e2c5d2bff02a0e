//! The one writer of the sidecar's `Active` state. Whatever delivers a change (the
//! control plane's stream, a policy file, the last known good on disk, a certificate
//! reload) sends it here over a channel; one task applies changes one at a time: compile
//! and check, build the next `Active` from the current one, swap it in, persist. So a
//! version check and the swap that follows it cannot interleave with another source's,
//! which a second policy source (a canary) needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::Authority;
use tokio::sync::{mpsc, oneshot};
use warden_policy::auth::AuthKind;
use warden_policy::auth::{Credentials, InvalidCredentials};
use warden_policy::limits::LimitState;
use warden_policy::sample::SampledHeaders;
use warden_policy::snapshot::{InvalidSnapshot, Snapshot};
use warden_proto::v1 as pb;

use crate::active::{Active, Policy, TlsInUse};
use crate::state::{SnapshotWriter, StateFile};
use crate::tls::{self, CertFiles, LoadedTls};
use crate::upstream::{self, Pools};

/// Where the active snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    ControlPlane,
    /// The last known good snapshot in `--state-dir`.
    Disk,
    PolicyFile,
    /// A signed bundle (`--fallback-snapshot`), until a replica answers.
    Fallback,
}

/// A snapshot the installer made active.
#[derive(Debug)]
pub struct Installed {
    pub snapshot: Arc<Snapshot>,
    /// Its write as the last known good: on disk once `Live::snapshot_writes` reaches it
    /// (0: nothing to write).
    pub ticket: u64,
}

/// One change to what is active, and where its outcome goes.
pub enum Change {
    Snapshot {
        proto: Box<pb::Snapshot>,
        origin: Origin,
        /// The bytes it came as, written as the last known good without encoding it again.
        encoded: Option<Bytes>,
        done: oneshot::Sender<Result<Installed, InvalidSnapshot>>,
    },
    Credentials {
        proto: Box<pb::Credentials>,
        origin: Origin,
        done: oneshot::Sender<Result<(), InvalidCredentials>>,
    },
    /// A candidate to decide in shadow, or None to stop.
    Shadow {
        proto: Option<Box<pb::Snapshot>>,
        done: oneshot::Sender<Result<(), InvalidSnapshot>>,
    },
    /// Reloaded certificates, used only if `files` are still the ones in use.
    Tls {
        files: Vec<CertFiles>,
        loaded: LoadedTls,
    },
}

/// What the installer reads and writes; `Live` reads it too.
pub struct Installer {
    pub active: ArcSwap<Active>,
    pub(crate) pools: Arc<Pools>,
    /// Limit counters, shared by every snapshot with the same limit definition.
    pub(crate) limit_state: LimitState,
    /// A shadow candidate's limit counters: its requests are counted apart from the live
    /// version's, so shadowing never spends a real budget.
    pub(crate) shadow_limit_state: LimitState,
    pub(crate) app: Authority,
    pub(crate) service: Option<String>,
    pub(crate) state: Option<StateFile>,
    /// Writes the control plane's snapshots to `state` (group commit).
    pub(crate) writer: Option<Arc<SnapshotWriter>>,
    origin: Mutex<Option<Origin>>,
    swaps: AtomicU64,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer").field("version", &self.active.load().version()).finish()
    }
}

impl Installer {
    pub fn new(app: Authority, service: Option<String>, state: Option<StateFile>) -> Self {
        Installer {
            active: ArcSwap::default(),
            pools: Arc::default(),
            limit_state: LimitState::default(),
            shadow_limit_state: LimitState::default(),
            app,
            service,
            writer: state.clone().map(SnapshotWriter::new),
            state,
            origin: Mutex::new(None),
            swaps: AtomicU64::new(0),
        }
    }

    pub fn origin(&self) -> Option<Origin> {
        *self.origin.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many snapshots have gone live since start.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Applies changes, in order, until every sender is gone.
    pub async fn run(self: Arc<Self>, mut changes: mpsc::Receiver<Change>) {
        while let Some(change) = changes.recv().await {
            match change {
                Change::Snapshot { proto, origin, encoded, done } => {
                    let _ = done.send(self.snapshot(&proto, origin, encoded).await);
                }
                Change::Credentials { proto, origin, done } => {
                    let _ = done.send(self.credentials(&proto, origin).await);
                }
                Change::Shadow { proto, done } => {
                    let _ = done.send(self.shadow(proto.as_deref()).await);
                }
                Change::Tls { files, loaded } => self.tls(&files, loaded),
            }
        }
    }

    /// Replaces what is active with `f` of it. Only the installer task calls this.
    fn swap(&self, f: impl FnOnce(&Active) -> Active) {
        let next = f(&self.active.load());
        self.active.store(Arc::new(next));
    }

    async fn snapshot(
        &self,
        proto: &pb::Snapshot,
        origin: Origin,
        encoded: Option<Bytes>,
    ) -> Result<Installed, InvalidSnapshot> {
        if let Some(cur) = &self.active.load().policy
            && cur.snapshot.version == proto.version
            && cur.snapshot.content_hash == proto.content_hash
        {
            let ticket = match (&self.writer, self.origin(), origin) {
                // The control plane confirms a fallback bundle's version: now it is the
                // last known good, on disk.
                (Some(writer), Some(Origin::Fallback), Origin::ControlPlane) => {
                    writer.submit(encoded.unwrap_or_else(|| prost::Message::encode_to_vec(proto).into()))
                }
                // On disk once what is queued now is: it includes this snapshot.
                (Some(writer), ..) => writer.last_ticket(),
                (None, ..) => 0,
            };
            self.set_origin(origin);
            return Ok(Installed { snapshot: cur.snapshot.clone(), ticket });
        }
        if let Some(want) = self.service.as_deref()
            && want != proto.service
        {
            return Err(InvalidSnapshot::WrongService { got: proto.service.clone(), want: want.to_owned() });
        }
        let compiled = Snapshot::try_from(proto)?;
        load_jwks_files(&compiled).await?;
        // A name that does not resolve leaves its upstream without endpoints (503
        // no_endpoints) until it does: a DNS outage must not turn a policy into no policy.
        let resolved = upstream::resolve_all(&compiled).await;
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
                Some(Arc::new(TlsInUse { config: loaded.config, files, digest: loaded.digest }))
            }
            None => None,
        };
        let snapshot = Arc::new(compiled);
        let to_load = snapshot.clone();
        let upstream_tls = tokio::task::spawn_blocking(move || upstream::tls::load_all(&to_load))
            .await
            .map_err(|e| InvalidSnapshot::Tls(e.to_string()))??;
        let upstreams = self.pools.bind(&snapshot, &self.app, &upstream_tls, &resolved);
        for (u, bound) in snapshot.upstreams.iter().zip(&upstreams) {
            let tls = upstream_tls.get(u.index).cloned().flatten();
            upstream::spawn_refresh(self.pools.clone(), &bound.set, u.clone(), tls);
        }
        let policy = Policy {
            upstreams,
            limits: self.limit_state.bind(&snapshot),
            sampled: SampledHeaders::of(&snapshot),
            snapshot: snapshot.clone(),
        };
        self.swap(|cur| Active {
            policy: Some(Arc::new(policy)),
            shadow: cur.shadow.clone(),
            credentials: cur.credentials.clone(),
            tls,
        });
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.set_origin(origin);
        tracing::info!(service = %snapshot.service, version = snapshot.version, ?origin, "snapshot active");
        // Only the control plane's snapshots are persisted: a policy file is its own
        // durable copy, and its local version numbers must not replace the fleet's.
        let ticket = match (&self.writer, origin) {
            (Some(writer), Origin::ControlPlane) => {
                writer.submit(encoded.unwrap_or_else(|| prost::Message::encode_to_vec(proto).into()))
            }
            _ => 0,
        };
        Ok(Installed { snapshot, ticket })
    }

    /// Installs (or, with None, drops) the candidate decided in shadow. It never forwards,
    /// so its upstreams are not bound; its JWKS files are read like the live version's. A
    /// candidate that cannot be used drops the one shadowed before: that one's rollout is
    /// over (a new one replaced it), so shadowing it on would report for nothing.
    async fn shadow(&self, proto: Option<&pb::Snapshot>) -> Result<(), InvalidSnapshot> {
        let compiled = match proto {
            None => Ok(None),
            Some(proto) => self.compile_shadow(proto).await.map(Some),
        };
        let shadow = compiled.as_ref().ok().cloned().flatten();
        let version = shadow.as_ref().map_or(0, |s| s.snapshot.version);
        self.swap(|cur| Active { shadow, ..cur.clone() });
        tracing::info!(version, "shadow candidate {}", if version == 0 { "none" } else { "active" });
        compiled.map(drop)
    }

    async fn compile_shadow(&self, proto: &pb::Snapshot) -> Result<Arc<Policy>, InvalidSnapshot> {
        if let Some(want) = self.service.as_deref()
            && want != proto.service
        {
            return Err(InvalidSnapshot::WrongService { got: proto.service.clone(), want: want.to_owned() });
        }
        let snapshot = Arc::new(Snapshot::try_from(proto)?);
        load_jwks_files(&snapshot).await?;
        Ok(Arc::new(Policy {
            upstreams: Vec::new(),
            limits: self.shadow_limit_state.bind(&snapshot),
            sampled: SampledHeaders::of(&snapshot),
            snapshot,
        }))
    }

    async fn credentials(&self, proto: &pb::Credentials, origin: Origin) -> Result<(), InvalidCredentials> {
        let service = self.service.as_deref();
        let compiled = match proto.base_revision {
            0 => Credentials::compile(proto, service)?,
            _ => self.active.load().credentials.apply(proto, service)?,
        };
        let compiled = Arc::new(compiled);
        self.swap(|cur| Active { credentials: compiled.clone(), ..cur.clone() });
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

    fn tls(&self, files: &[CertFiles], loaded: LoadedTls) {
        let still_in_use = self.active.load().tls.as_ref().is_some_and(|t| t.files.as_slice() == files);
        // A policy that changed the files since the reload began wins over it.
        if !still_in_use {
            return;
        }
        let tls = Arc::new(TlsInUse { config: loaded.config, files: files.to_vec(), digest: loaded.digest });
        self.swap(|cur| Active { tls: Some(tls), ..cur.clone() });
    }

    fn set_origin(&self, origin: Origin) {
        *self.origin.lock().unwrap_or_else(PoisonError::into_inner) = Some(origin);
    }
}

/// Reads the `jwks_file`s a compiled snapshot names (they are on this host) and hands
/// their keys to the verifiers; a file that cannot be read or used refuses the snapshot.
async fn load_jwks_files(snapshot: &Snapshot) -> Result<(), InvalidSnapshot> {
    for p in &snapshot.auth {
        let AuthKind::Jwt(v) = &p.kind else { continue };
        let Some(path) = v.jwks_file().map(str::to_owned) else { continue };
        let err = |reason: String| InvalidSnapshot::Auth { provider: p.name.to_string(), reason };
        let read = path.clone();
        let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(read))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(format!("jwks_file {path}: {e}")))?;
        v.load_jwks(&text).map_err(err)?;
    }
    Ok(())
}
