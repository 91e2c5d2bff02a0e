//! What the sidecar is serving, as one value: the policy (the compiled snapshot, its
//! upstreams bound to connection pools, its limits bound to their counters), the
//! credentials and the TLS configuration. A request loads it once (one atomic load) and
//! sees all of it from the same moment; only the installer (`installer.rs`) makes new
//! ones. A rollout's candidate in shadow is a second `Policy` here, decided beside the
//! first on every request and never enforced (a canary needs nothing here: its sidecars
//! simply serve the candidate).

use std::sync::Arc;

use rustls::ServerConfig;
use warden_policy::auth::Credentials;
use warden_policy::limits::Buckets;
use warden_policy::sample::SampledHeaders;
use warden_policy::snapshot::{Snapshot, Upstream};

use crate::tls::CertFiles;
use crate::upstream::BoundUpstream;

/// Everything a request reads of the sidecar's configuration.
#[derive(Debug, Default, Clone)]
pub struct Active {
    /// None until a policy has been installed: the sidecar is not ready.
    pub policy: Option<Arc<Policy>>,
    /// A rollout's candidate, decided in shadow (its limits count in buckets of their own).
    pub shadow: Option<Arc<Policy>>,
    /// API keys and secrets; empty until the control plane (or disk) provides them.
    pub credentials: Arc<Credentials>,
    /// None: plain HTTP.
    pub tls: Option<Arc<TlsInUse>>,
}

impl Active {
    /// The version being served, 0 for none.
    pub fn version(&self) -> u64 {
        self.policy.as_ref().map_or(0, |p| p.snapshot.version)
    }
}

/// A compiled snapshot bound to the sidecar's pools and counters.
#[derive(Debug)]
pub struct Policy {
    pub snapshot: Arc<Snapshot>,
    /// By `Upstream::index`.
    pub(crate) upstreams: Vec<BoundUpstream>,
    /// Each limit's counters, by `Limit::index`: shared with every snapshot that has the
    /// same definition, so a push resets no budget.
    pub limits: Vec<Arc<Buckets>>,
    /// What decision samples and deny records keep of a request's headers.
    pub sampled: SampledHeaders,
}

impl Policy {
    /// The pools of one of the snapshot's upstreams.
    pub fn upstream(&self, u: &Upstream) -> &BoundUpstream {
        &self.upstreams[u.index]
    }

    /// Every upstream, in the snapshot's order.
    pub fn upstreams(&self) -> &[BoundUpstream] {
        &self.upstreams
    }
}

/// The certificates being served, and the files they came from.
#[derive(Debug)]
pub struct TlsInUse {
    pub config: Arc<ServerConfig>,
    pub files: Vec<CertFiles>,
    /// SHA-256 over the files' content, to tell when they change.
    pub digest: Vec<u8>,
}
