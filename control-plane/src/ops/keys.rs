//! API keys: minting one (32 random bytes from the OS via ring, the crypto library rustls
//! already brings; shown once, stored as SHA-256), checking what callers ask for, and
//! revoking. Every change republishes the service's credentials, never its policy.

use warden_policy::auth::{KEY_PREFIX, hash_key};

use crate::clock::now_unix_ms;
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{KeyRow, NewKey};

/// How much of a key listings show: the prefix and 8 of its 64 hex digits.
const SHOWN: usize = KEY_PREFIX.len() + 8;

/// A key to make.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    pub service: String,
    /// Who holds it: the app receives it as `x-warden-client`.
    pub client: String,
    /// "" for none; the app receives it as `x-warden-plan`.
    pub plan: String,
    /// 0 = never expires.
    pub expires_in_ms: u64,
}

/// Client and plan names travel in `x-warden-client`/`x-warden-plan` and in logs.
fn is_label(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
}

/// Refuses a request whose service, client or plan is not a name.
pub fn check(r: &KeyRequest) -> Result<(), OpsError> {
    let service_ok = (1..=63).contains(&r.service.len())
        && r.service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !service_ok {
        return Err(OpsError::Invalid(format!("'{}' is not a service name", r.service)));
    }
    if !is_label(&r.client) {
        return Err(OpsError::Invalid("--client must be 1-128 characters of letters, digits and - _ . @ :".to_owned()));
    }
    if !r.plan.is_empty() && !is_label(&r.plan) {
        return Err(OpsError::Invalid("--plan must be 1-128 characters of letters, digits and - _ . @ :".to_owned()));
    }
    Ok(())
}

/// A new key and what is stored for it.
pub fn generate(r: &KeyRequest) -> Result<(String, NewKey), OpsError> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| OpsError::Internal("no randomness from the OS".to_owned()))?;
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let expires_unix_ms = match r.expires_in_ms {
        0 => 0,
        ms => now_unix_ms().saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
    };
    let new = NewKey {
        id: format!("key_{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
        service: r.service.clone(),
        client: r.client.clone(),
        plan: r.plan.clone(),
        sha256: hash_key(&key).0.to_vec(),
        prefix: key[..SHOWN].to_owned(),
        expires_unix_ms,
    };
    Ok((key, new))
}

impl ControlPlane {
    /// Makes a key, stores its hash and publishes it; returns the key (shown this once)
    /// and what was stored.
    pub async fn create_key(&self, r: KeyRequest) -> Result<(String, KeyRow), OpsError> {
        check(&r)?;
        let (key, new) = generate(&r)?;
        let mut rows = self.stored("create_keys", self.store.create_keys(vec![new])).await?;
        let row = rows.pop().ok_or_else(|| OpsError::Internal("the store kept no key".to_owned()))?;
        self.refresh_credentials(&row.service).await?;
        tracing::info!(id = %row.id, service = %row.service, client = %row.client, "API key created");
        Ok((key, row))
    }

    /// Keys, optionally of one service and one client, oldest first.
    pub async fn keys(&self, service: Option<String>, client: Option<String>) -> Result<Vec<KeyRow>, OpsError> {
        Ok(self.stored("keys", self.store.keys(service, client)).await?)
    }

    /// Revokes a key; every sidecar of its service refuses it once they have the change.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyRow, OpsError> {
        let row = self
            .stored("revoke_key", self.store.revoke_key(id))
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("no key with id '{id}'")))?;
        self.refresh_credentials(&row.service).await?;
        tracing::info!(id = %row.id, service = %row.service, client = %row.client, "API key revoked");
        Ok(row)
    }

    /// The key of `service` with this hash (what `wardenctl explain` asks, never the key).
    pub async fn lookup_key(&self, service: &str, sha256: Vec<u8>) -> Result<KeyRow, OpsError> {
        self.stored("lookup_key", self.store.lookup_key(service, sha256))
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("no key of service '{service}' matches")))
    }
}
