//! Moving a store (`warden-control-plane copy-store --from URL --to URL`), from the
//! embedded SQLite file to PostgreSQL when a team outgrows one replica, or back. Reads
//! everything through the `Store` interface, writes it into the empty destination in one
//! transaction, then reads the destination back and compares it with the source: every
//! version with its content hash and source, every key's hash and state, every secret
//! value, every sidecar record, the deny log and its marks. Only a copy that compares
//! equal succeeds.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ops::error::OpsError;
use crate::store::{DenialFilter, PolicyVersion, Store, StoreCopy};

/// A credentials revision past any key's.
const NO_KEYS: u64 = i64::MAX as u64;

/// What was copied, and the digest both stores gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub versions: usize,
    pub services: usize,
    pub keys: usize,
    pub secrets: usize,
    pub sidecars: usize,
    pub denials: usize,
    pub marks: usize,
    /// SHA-256 over everything compared, hex.
    pub digest: String,
}

/// Copies `from` into `to` (which must hold no policy and no key) and verifies the copy.
pub async fn copy_store(from: Arc<dyn Store>, to: Arc<dyn Store>) -> Result<Copied, OpsError> {
    let data = read_all(&*from).await?;
    let before = summary(&data);
    to.import(data).await?;
    let after = summary(&read_all(&*to).await?);
    if after != before {
        return Err(OpsError::Internal(format!(
            "the copy does not match the source (source {before:?}, copy {after:?}): do not use it"
        )));
    }
    Ok(after)
}

/// Everything in a store, in a fixed order.
async fn read_all(store: &dyn Store) -> Result<StoreCopy, OpsError> {
    let mut versions: Vec<PolicyVersion> = Vec::new();
    for (service, _) in store.heads().await?.versions {
        for v in store.history(&service).await?.into_iter().rev() {
            let full = store.version(&service, v.version).await?;
            versions.extend(full);
        }
    }
    let keys = store.keys(None, None).await?;
    let mut names: Vec<String> = store.secrets().await?.into_iter().map(|s| s.name).collect();
    names.dedup();
    // Secret values are read the way sidecars get them (the service does not matter;
    // no key has a revision this high).
    let secrets = store.credentials("", NO_KEYS, names).await?.secrets;
    let sidecars = store.sidecars().await?;
    let denials = store.denials(DenialFilter { limit: u32::MAX, ..Default::default() }).await?;
    let rollouts = store.rollouts(None).await?;
    let marks = store.denial_marks(None).await?;
    // The stored key (a store that has none makes one: a copy keeps sessions valid).
    let mut fresh = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
        .map_err(|_| OpsError::Internal("no randomness from the OS".into()))?;
    let console_key = store.console_key(fresh).await?;
    Ok(StoreCopy { versions, keys, secrets, sidecars, denials, rollouts, marks, console_key })
}

/// Counts and a digest of what a copy must preserve.
fn summary(data: &StoreCopy) -> Copied {
    let mut h = Sha256::new();
    let mut field = |s: &[u8]| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s);
    };
    for v in &data.versions {
        for s in [
            v.service.as_bytes(),
            v.author.as_bytes(),
            v.message.as_bytes(),
            v.content_hash.as_bytes(),
            v.source_yaml.as_bytes(),
        ] {
            field(s);
        }
        field(&v.version.to_le_bytes());
        field(&v.created_unix_ms.to_le_bytes());
    }
    for k in &data.keys {
        for s in [
            k.id.as_bytes(),
            k.service.as_bytes(),
            k.client.as_bytes(),
            k.plan.as_bytes(),
            &k.sha256,
            k.prefix.as_bytes(),
        ] {
            field(s);
        }
        for n in [k.created_unix_ms, k.expires_unix_ms, k.revoked_unix_ms] {
            field(&n.to_le_bytes());
        }
    }
    for s in &data.secrets {
        for b in [s.id.as_bytes(), s.name.as_bytes(), &s.value] {
            field(b);
        }
        field(&s.created_unix_ms.to_le_bytes());
        field(&s.expires_unix_ms.to_le_bytes());
    }
    for s in &data.sidecars {
        for b in [s.service.as_bytes(), s.instance.as_bytes(), s.nack_error.as_bytes()] {
            field(b);
        }
        for n in [s.acked_version, s.nacked_version] {
            field(&n.to_le_bytes());
        }
    }
    for d in &data.denials {
        for b in [
            d.service.as_bytes(),
            d.instance.as_bytes(),
            d.denial.request_id.as_bytes(),
            d.denial.rule.as_bytes(),
            d.denial.path.as_bytes(),
        ] {
            field(b);
        }
        field(&d.denial.unix_ms.to_le_bytes());
    }
    for m in &data.marks {
        for b in
            [m.group.as_bytes(), m.mark.as_str().as_bytes(), m.note.as_bytes(), m.owner.as_bytes(), m.author.as_bytes()]
        {
            field(b);
        }
        field(&m.unix_ms.to_le_bytes());
    }
    field(&data.console_key);
    let mut services: Vec<&str> = data.versions.iter().map(|v| v.service.as_str()).collect();
    services.dedup();
    Copied {
        versions: data.versions.len(),
        services: services.len(),
        keys: data.keys.len(),
        secrets: data.secrets.len(),
        sidecars: data.sidecars.len(),
        denials: data.denials.len(),
        marks: data.marks.len(),
        digest: hex::encode(h.finalize()),
    }
}
