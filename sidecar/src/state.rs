//! The last known good snapshot on disk (`--state-dir/<service>.snapshot.pb`), so a
//! sidecar that restarts while the control plane is down still serves its policy. Written
//! atomically: temp file, fsync, rename, fsync of the directory; a crash leaves the old
//! file or the new one, never a torn one. One file per service, so sidecars of different
//! services may share a directory.

use std::io::{self, Write};
use std::path::PathBuf;

use prost::Message;
use warden_proto::v1 as pb;

/// Where one service's last known good snapshot lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
    service: String,
}

impl StateFile {
    pub fn new(dir: PathBuf, service: String) -> Self {
        StateFile { dir, service }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.snapshot.pb", self.service))
    }

    /// Persists a snapshot atomically.
    pub async fn save(&self, snapshot: &pb::Snapshot) -> io::Result<()> {
        let (dir, path) = (self.dir.clone(), self.path());
        let bytes = snapshot.encode_to_vec();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("pb.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Reads the persisted snapshot; Ok(None) when there is none.
    pub async fn load(&self) -> io::Result<Option<pb::Snapshot>> {
        match tokio::fs::read(self.path()).await {
            Ok(bytes) => pb::Snapshot::decode(bytes.as_slice()).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saved_snapshot_loads_back_and_services_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let orders = StateFile::new(dir.path().join("nested"), "orders".into());
        let billing = StateFile::new(dir.path().join("nested"), "billing".into());
        assert_eq!(orders.load().await.unwrap(), None);
        let snap = pb::Snapshot { service: "orders".into(), version: 7, ..Default::default() };
        orders.save(&snap).await.unwrap();
        orders.save(&pb::Snapshot { version: 8, ..snap.clone() }).await.unwrap();
        assert_eq!(orders.load().await.unwrap().map(|s| s.version), Some(8));
        assert_eq!(billing.load().await.unwrap(), None);
        std::fs::write(orders.path(), b"\xff\xff not protobuf").unwrap();
        assert!(orders.load().await.is_err(), "a corrupt file is an error, not an empty policy");
    }
}
