//! Keeps `jwks_file` keys current: the policy crate's JWT verifiers hold their keys and
//! can re-read their file; this task, the sidecar's, decides when (every two seconds, off
//! the runtime's workers).

use std::sync::Arc;

use warden_policy::auth::AuthKind;

use crate::live::Live;

/// How often `jwks_file`s are checked for new content.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs forever: re-reads the active snapshot's `jwks_file`s when they change.
pub async fn watch(live: Arc<Live>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let Some(snapshot) = live.snapshot() else { continue };
        let reloaded = tokio::task::spawn_blocking(move || {
            for p in &snapshot.auth {
                let AuthKind::Jwt(v) = &p.kind else { continue };
                match v.reload() {
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
