//! API keys and secrets at the admin API's edge: minting a key (32 random bytes from the
//! OS via ring, the crypto library rustls already brings; shown once, stored as SHA-256), checking what callers ask for, and the listings,
//! which never carry a key, a hash or a secret value.

use tonic::Status;
use warden_policy::auth::{KEY_PREFIX, hash_key};
use warden_policy::yaml::is_secret_name;
use warden_proto::v1 as pb;

use crate::store::{KeyRow, NewKey, SecretRow, now_unix_ms};

/// How much of a key listings show: the prefix and 8 of its 64 hex digits.
const SHOWN: usize = KEY_PREFIX.len() + 8;
/// The largest secret value accepted.
const MAX_SECRET_BYTES: usize = 4096;

/// Client and plan names travel in `x-warden-client`/`x-warden-plan` and in logs.
fn is_label(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
}

pub fn check_create(r: &pb::CreateKeyRequest) -> Result<(), Status> {
    let service_ok = (1..=63).contains(&r.service.len())
        && r.service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !service_ok {
        return Err(Status::invalid_argument(format!("'{}' is not a service name", r.service)));
    }
    if !is_label(&r.client) {
        return Err(Status::invalid_argument(
            "--client must be 1-128 characters of letters, digits and - _ . @ :".to_owned(),
        ));
    }
    if !r.plan.is_empty() && !is_label(&r.plan) {
        return Err(Status::invalid_argument("--plan must be 1-128 characters of letters, digits and - _ . @ :"));
    }
    Ok(())
}

/// A new key and what is stored for it.
pub fn generate(r: &pb::CreateKeyRequest) -> Result<(String, NewKey), Status> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| Status::internal("no randomness from the OS"))?;
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

pub fn info(k: KeyRow) -> pb::KeyInfo {
    pb::KeyInfo {
        id: k.id,
        service: k.service,
        client: k.client,
        plan: k.plan,
        created_unix_ms: k.created_unix_ms,
        expires_unix_ms: k.expires_unix_ms,
        revoked_unix_ms: k.revoked_unix_ms,
        prefix: k.prefix,
    }
}

pub fn check_secret(r: &pb::SetSecretRequest) -> Result<(), Status> {
    if !is_secret_name(&r.name) {
        return Err(Status::invalid_argument(format!(
            "'{}' is not a secret name: 1-63 characters of letters, digits, '-', '_' and '.'",
            r.name
        )));
    }
    if r.value.is_empty() || r.value.len() > MAX_SECRET_BYTES {
        return Err(Status::invalid_argument(format!("a secret value is 1 to {MAX_SECRET_BYTES} bytes")));
    }
    Ok(())
}

pub fn secret_info(s: SecretRow) -> pb::SecretInfo {
    pb::SecretInfo { name: s.name, id: s.id, created_unix_ms: s.created_unix_ms, expires_unix_ms: s.expires_unix_ms }
}
