//! Files the policy names on the sidecar's host, re-read when they change: `jwks_file`
//! keys and TLS certificates. The policy crate's verifiers and `tls.rs` know how to load
//! them; these tasks decide when (every two seconds, off the runtime's workers), and keep
//! what serves when a changed file cannot be used.

use std::sync::Arc;
use std::time::Duration;

use warden_policy::auth::AuthKind;

use crate::live::Live;
use crate::tls;

/// How often the files are checked for new content.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Runs forever: re-reads the active snapshot's `jwks_file`s when they change.
pub async fn jwks(live: Arc<Live>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let Some(snapshot) = live.snapshot() else { continue };
        let reloaded = tokio::task::spawn_blocking(move || {
            for p in &snapshot.auth {
                let AuthKind::Jwt(v) = &p.kind else { continue };
                let Some(path) = v.jwks_file() else { continue };
                // A file mid-rotation may be missing for a moment: try again next round.
                let Ok(text) = std::fs::read_to_string(path) else { continue };
                match v.load_jwks(&text) {
                    Ok(true) => tracing::info!(auth = %p.name, "jwks_file changed: new keys in use"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(auth = %p.name, error = %e, "jwks_file changed but cannot be used; the previous keys stay")
                    }
                }
            }
        });
        let _ = reloaded.await;
    }
}

/// Re-reads the active snapshot's certificate files and swaps in changed ones. Runs
/// forever; cheap when nothing changed (two small file reads and a hash).
pub async fn certificates(live: Arc<Live>) {
    let mut refused: Option<Vec<u8>> = None;
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let Some(in_use) = live.tls_in_use() else { continue };
        let (files, current) = (in_use.files.clone(), in_use.digest.clone());
        let files2 = files.clone();
        let Ok(digest) = tokio::task::spawn_blocking(move || tls::digest_of(&files2)).await else { continue };
        let Some(digest) = digest else { continue };
        if digest == current || refused.as_ref() == Some(&digest) {
            continue;
        }
        let to_load = files.clone();
        let loaded = tokio::task::spawn_blocking(move || tls::load(&to_load)).await;
        match loaded {
            Ok(Ok(tls)) => {
                tracing::info!("certificate files changed: new certificates in use");
                live.replace_tls(files, tls).await;
                refused = None;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "certificate files changed but cannot be used; the previous certificates keep serving");
                refused = Some(digest);
            }
            Err(_) => {}
        }
    }
}
