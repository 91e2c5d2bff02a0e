//! The last known good snapshot on disk (`--state-dir/snapshot.pb`), so a sidecar that
//! restarts while the control plane is down still serves its policy. Written atomically:
//! temp file, fsync, rename, fsync of the directory; a crash leaves the old file or the
//! new one, never a torn one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use warden_proto::v1 as pb;

const FILE: &str = "snapshot.pb";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Persists a snapshot atomically.
pub async fn save(dir: &Path, snapshot: &pb::Snapshot) -> io::Result<()> {
    let dir = dir.to_owned();
    let bytes = snapshot.encode_to_vec();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path(&dir))?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(io::Error::other)?
}

/// Reads the persisted snapshot; Ok(None) when there is none.
pub async fn load(dir: &Path) -> io::Result<Option<pb::Snapshot>> {
    match tokio::fs::read(path(dir)).await {
        Ok(bytes) => pb::Snapshot::decode(bytes.as_slice()).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
