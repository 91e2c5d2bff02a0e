//! `--fallback-snapshot FILE --fallback-key PUBKEY`: a bundle the control plane signed
//! (`wardenctl fallback export`), for a pod that starts while no replica answers. Read
//! once at start-up, after the last known good: its snapshot is served if it is newer than
//! that, its API keys if they are newer than the credentials held, until a replica
//! answers and replaces both. A bundle that does not verify stops the start: a wrong
//! ConfigMap shows up as a pod that does not start, not as a policy nobody signed. One
//! older than `--fallback-max-age` is not served (logged): API keys revoked since it was
//! exported would pass again.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use warden_policy::fallback::{self, PublicKey};

use crate::installer::Origin;
use crate::live::Live;

/// What was taken from a bundle.
#[derive(Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The bundle's snapshot version.
    pub version: u64,
    /// Whether that snapshot is served (false: the last known good is as new).
    pub serving: bool,
    /// Whether its API keys are the ones checked against.
    pub keys: bool,
    pub signed_by: PublicKey,
    /// Older than `--fallback-max-age`: nothing of it is served.
    pub stale: bool,
}

/// `--fallback-key`: the keys a bundle may be signed with, one or several, comma-separated
/// (the old and the new during a rotation).
#[derive(Debug, Clone)]
pub struct TrustedKeys(pub Vec<PublicKey>);

impl std::str::FromStr for TrustedKeys {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let keys =
            s.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::parse).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("names no key".into());
        }
        Ok(TrustedKeys(keys))
    }
}

/// Verifies the bundle in `file` with `trusted` and serves what in it is newer than what
/// `live` holds, unless it was exported more than `max_age` ago (keys revoked since then
/// would pass again).
pub async fn load(file: &Path, trusted: &TrustedKeys, live: &Live, max_age: Duration) -> anyhow::Result<Loaded> {
    let bytes = tokio::fs::read(file).await?;
    let (contents, signed_by) = fallback::open(&bytes, &trusted.0)?;
    let snapshot = contents.snapshot.context("the bundle holds no snapshot")?;
    let version = snapshot.version;
    let age_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .saturating_sub(contents.created_unix_ms);
    if u128::try_from(age_ms).unwrap_or(0) > max_age.as_millis() {
        return Ok(Loaded { version, serving: false, keys: false, signed_by, stale: true });
    }
    let held = live.credentials();
    let keys = match contents.credentials {
        Some(mut creds) if held.revision == 0 || held.epoch != creds.epoch || creds.revision > held.revision => {
            // A bundle carries no secret: webhook secrets stay the last known ones.
            creds.secrets = held.to_proto(&creds.service).secrets;
            // Held as no revision, so the first replica to answer sends the whole set.
            creds.revision = 0;
            creds.base_revision = 0;
            live.install_credentials(creds, Origin::Fallback).await?;
            true
        }
        _ => false,
    };
    let serving = version > live.version();
    if serving {
        live.install(snapshot, Origin::Fallback).await?;
    }
    Ok(Loaded { version, serving, keys, signed_by, stale: false })
}
