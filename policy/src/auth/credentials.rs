//! A service's credentials as the request path reads them: API keys by the SHA-256 of the
//! key, and secret values by name. Swapped in one store, apart from the policy snapshot,
//! so a revocation never recompiles the policy.
//!
//! Building the key table from a whole set costs ~2 ms per 10k keys
//! (`benches/credentials.rs`), too much to redo for every revocation. So the table is a
//! large shared `base` plus a small `overlay` of keys changed since: a change copies only
//! the overlay, and the overlay is folded into a new base once it holds `MERGE_AT` keys.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warden_proto::v1 as pb;

use crate::auth::identity::Identity;

/// The SHA-256 of an API key. Keys are 32 random bytes, so a fast unsalted hash is the
/// right tool (a password hash would only slow every request). Equality is constant
/// time; the map is probed by a hash of the digest, which tells a timing attacker nothing
/// about any stored key's bytes.
#[derive(Debug, Clone, Copy, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// The digest stored for `key`.
pub fn hash_key(key: &str) -> KeyHash {
    KeyHash(Sha256::digest(key.as_bytes()).into())
}

/// What a key maps to.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: Arc<str>,
    pub identity: Identity,
    /// 0 = never.
    pub expires_unix_ms: i64,
    /// 0 = active.
    pub revoked_unix_ms: i64,
}

/// One value of a named secret.
#[derive(Clone)]
pub struct SecretValue {
    pub value: Vec<u8>,
    /// 0 = no end.
    pub expires_unix_ms: i64,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("value", &"<redacted>")
            .field("expires_unix_ms", &self.expires_unix_ms)
            .finish()
    }
}

type KeyTable = HashMap<KeyHash, KeyRecord>;

/// How many changed keys the overlay holds before it is folded into the base.
const MERGE_AT: usize = 1024;

/// Everything auth checks against, at one revision.
#[derive(Debug, Default)]
pub struct Credentials {
    /// The control plane store's epoch the revision counts in.
    pub epoch: u64,
    pub revision: u64,
    /// Keys as of the last whole set or fold, shared by the revisions built on it.
    base: Arc<KeyTable>,
    /// Keys added or changed since; looked up first.
    overlay: KeyTable,
    secrets: HashMap<String, Vec<SecretValue>>,
}

/// Why a credentials push cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredentials {
    #[error("credentials are for service '{got}' but this sidecar serves '{want}'")]
    WrongService { got: String, want: String },
    #[error("key {id}: the hash is {len} bytes, not 32")]
    BadHash { id: String, len: usize },
    #[error("a change on top of credentials revision {base} cannot apply to revision {have}")]
    Gap { base: u64, have: u64 },
}

fn intern<'a>(names: &mut HashMap<&'a str, Arc<str>>, s: &'a str) -> Arc<str> {
    names.entry(s).or_insert_with(|| s.into()).clone()
}

impl Credentials {
    /// Builds the tables from a whole set (`base_revision` 0).
    pub fn compile(c: &pb::Credentials, service: Option<&str>) -> Result<Credentials, InvalidCredentials> {
        check_service(c, service)?;
        let mut base = HashMap::with_capacity(c.keys.len());
        insert_keys(&mut base, &c.keys)?;
        let base = Arc::new(base);
        Ok(Credentials { epoch: c.epoch, revision: c.revision, base, overlay: HashMap::new(), secrets: secrets(c) })
    }

    /// These credentials with a change applied; the change must build on this revision.
    pub fn apply(&self, c: &pb::Credentials, service: Option<&str>) -> Result<Credentials, InvalidCredentials> {
        check_service(c, service)?;
        if c.base_revision != self.revision || c.epoch != self.epoch {
            return Err(InvalidCredentials::Gap { base: c.base_revision, have: self.revision });
        }
        let mut overlay = self.overlay.clone();
        insert_keys(&mut overlay, &c.keys)?;
        let base = if overlay.len() >= MERGE_AT {
            let mut merged = (*self.base).clone();
            merged.extend(overlay.drain());
            Arc::new(merged)
        } else {
            self.base.clone()
        };
        Ok(Credentials { epoch: c.epoch, revision: c.revision, base, overlay, secrets: secrets(c) })
    }

    /// The whole set again, as pushed (for the copy on disk).
    pub fn to_proto(&self, service: &str) -> pb::Credentials {
        let keys = self
            .base
            .iter()
            .filter(|(h, _)| !self.overlay.contains_key(h))
            .chain(&self.overlay)
            .map(|(h, k)| pb::ApiKey {
                id: k.id.to_string(),
                sha256: h.0.to_vec(),
                client: k.identity.client.to_string(),
                plan: k.identity.plan.as_deref().unwrap_or_default().to_owned(),
                expires_unix_ms: k.expires_unix_ms,
                revoked_unix_ms: k.revoked_unix_ms,
            })
            .collect();
        let secrets = self
            .secrets
            .iter()
            .flat_map(|(name, values)| {
                values.iter().map(|v| pb::Secret {
                    name: name.clone(),
                    id: String::new(),
                    value: v.value.clone(),
                    expires_unix_ms: v.expires_unix_ms,
                })
            })
            .collect();
        pb::Credentials {
            service: service.to_owned(),
            revision: self.revision,
            keys,
            secrets,
            base_revision: 0,
            epoch: self.epoch,
        }
    }

    pub fn key(&self, hash: &KeyHash) -> Option<&KeyRecord> {
        if self.overlay.is_empty() {
            return self.base.get(hash);
        }
        self.overlay.get(hash).or_else(|| self.base.get(hash))
    }

    /// The values of a secret still valid at `now_ms`; None when the secret is not set.
    pub fn secret(&self, name: &str, now_ms: i64) -> Option<impl Iterator<Item = &[u8]>> {
        let values = self.secrets.get(name)?;
        Some(
            values
                .iter()
                .filter(move |v| v.expires_unix_ms == 0 || v.expires_unix_ms > now_ms)
                .map(|v| v.value.as_slice()),
        )
    }

    pub fn key_count(&self) -> usize {
        self.base.len() + self.overlay.keys().filter(|h| !self.base.contains_key(h)).count()
    }
}

fn check_service(c: &pb::Credentials, service: Option<&str>) -> Result<(), InvalidCredentials> {
    match service {
        Some(want) if want != c.service => {
            Err(InvalidCredentials::WrongService { got: c.service.clone(), want: want.to_owned() })
        }
        _ => Ok(()),
    }
}

/// Adds (or replaces) keys. Plans and clients repeat across keys, so their strings are
/// shared rather than copied per key.
fn insert_keys(table: &mut KeyTable, keys: &[pb::ApiKey]) -> Result<(), InvalidCredentials> {
    let mut names: HashMap<&str, Arc<str>> = HashMap::new();
    for k in keys {
        let hash: [u8; 32] = k
            .sha256
            .as_slice()
            .try_into()
            .map_err(|_| InvalidCredentials::BadHash { id: k.id.clone(), len: k.sha256.len() })?;
        let id: Arc<str> = k.id.as_str().into();
        let identity = Identity {
            client: intern(&mut names, &k.client),
            plan: (!k.plan.is_empty()).then(|| intern(&mut names, &k.plan)),
            key_id: Some(id.clone()),
        };
        let record = KeyRecord { id, identity, expires_unix_ms: k.expires_unix_ms, revoked_unix_ms: k.revoked_unix_ms };
        table.insert(KeyHash(hash), record);
    }
    Ok(())
}

fn secrets(c: &pb::Credentials) -> HashMap<String, Vec<SecretValue>> {
    let mut out: HashMap<String, Vec<SecretValue>> = HashMap::new();
    for s in &c.secrets {
        out.entry(s.name.clone())
            .or_default()
            .push(SecretValue { value: s.value.clone(), expires_unix_ms: s.expires_unix_ms });
    }
    out
}
