//! A service's credentials as the request path reads them: API keys by the SHA-256 of the
//! key, and secret values by name. Built whole from each `Credentials` push and swapped
//! in one store, apart from the policy snapshot, so a revocation costs one hash map
//! build (measured in `benches/credentials.rs`), never a policy recompile.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warden_proto::v1 as pb;

use super::Identity;

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

/// Everything auth checks against, at one revision.
#[derive(Debug, Default)]
pub struct Credentials {
    pub revision: u64,
    keys: HashMap<KeyHash, KeyRecord>,
    secrets: HashMap<String, Vec<SecretValue>>,
}

/// Why a credentials push cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredentials {
    #[error("credentials are for service '{got}' but this sidecar serves '{want}'")]
    WrongService { got: String, want: String },
    #[error("key {id}: the hash is {len} bytes, not 32")]
    BadHash { id: String, len: usize },
}

fn intern<'a>(names: &mut HashMap<&'a str, Arc<str>>, s: &'a str) -> Arc<str> {
    names.entry(s).or_insert_with(|| s.into()).clone()
}

impl Credentials {
    /// Builds the lookup tables. Plans and clients repeat across keys, so their strings
    /// are shared rather than copied per key.
    pub fn compile(c: &pb::Credentials, service: Option<&str>) -> Result<Credentials, InvalidCredentials> {
        if let Some(want) = service
            && want != c.service
        {
            return Err(InvalidCredentials::WrongService { got: c.service.clone(), want: want.to_owned() });
        }
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut keys = HashMap::with_capacity(c.keys.len());
        for k in &c.keys {
            let hash: [u8; 32] = k
                .sha256
                .as_slice()
                .try_into()
                .map_err(|_| InvalidCredentials::BadHash { id: k.id.clone(), len: k.sha256.len() })?;
            let identity = Identity {
                client: intern(&mut names, &k.client),
                plan: (!k.plan.is_empty()).then(|| intern(&mut names, &k.plan)),
            };
            let record = KeyRecord {
                id: k.id.as_str().into(),
                identity,
                expires_unix_ms: k.expires_unix_ms,
                revoked_unix_ms: k.revoked_unix_ms,
            };
            keys.insert(KeyHash(hash), record);
        }
        let mut secrets: HashMap<String, Vec<SecretValue>> = HashMap::new();
        for s in &c.secrets {
            secrets
                .entry(s.name.clone())
                .or_default()
                .push(SecretValue { value: s.value.clone(), expires_unix_ms: s.expires_unix_ms });
        }
        Ok(Credentials { revision: c.revision, keys, secrets })
    }

    pub fn key(&self, hash: &KeyHash) -> Option<&KeyRecord> {
        self.keys.get(hash)
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
        self.keys.len()
    }
}
