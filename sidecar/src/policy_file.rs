//! Standalone mode (`--policy-file`): the sidecar reads its policy from a local YAML file
//! and reloads it when the file changes. The same parser and builder as the control plane;
//! a file that does not validate is logged with its line and column and the previous
//! policy keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::installer::Origin;
use crate::live::Live;
use warden_policy::yaml::{build, parse_service};

/// How often the file is checked. Polling (not inotify) also sees Kubernetes ConfigMap
/// updates, which swap a symlink.
const POLL: Duration = Duration::from_millis(500);

/// Loads the file now, then reloads whenever its content changes. Runs forever.
pub async fn watch(path: PathBuf, service: Option<String>, live: Arc<Live>) {
    let mut last: Option<Vec<u8>> = None;
    let mut version = 0;
    loop {
        match tokio::fs::read(&path).await {
            Ok(bytes) if last.as_ref() != Some(&bytes) => {
                version += 1;
                load(&path, &bytes, service.as_deref(), version, &live).await;
                last = Some(bytes);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the policy file")
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn load(path: &std::path::Path, bytes: &[u8], service: Option<&str>, version: u64, live: &Live) {
    let name = path.display().to_string();
    let text = String::from_utf8_lossy(bytes);
    let parsed = match parse_service(&name, &text, service) {
        Ok(p) => p,
        Err(errors) => {
            tracing::error!("policy file refused; the previous policy keeps serving:\n{errors}");
            return;
        }
    };
    for w in &parsed.warnings {
        tracing::warn!("{w}");
    }
    let snapshot = build(&parsed.policy, &parsed.source, version);
    if let Err(e) = live.install(snapshot, Origin::PolicyFile).await {
        tracing::error!(error = %e, "policy file refused; the previous policy keeps serving");
    }
}
