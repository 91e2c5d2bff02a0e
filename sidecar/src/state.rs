//! The last known good snapshot on disk (`--state-dir/<service>.snapshot.pb`) and the
//! last credentials (`<service>.credentials.pb`, owner-only: it holds webhook secrets), so
//! a sidecar that restarts while the control plane is down still serves its policy. Written
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

    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join(format!("{}.credentials.pb", self.service))
    }

    /// Persists a snapshot atomically.
    pub async fn save(&self, snapshot: &pb::Snapshot) -> io::Result<()> {
        write_atomic(self.dir.clone(), self.path(), snapshot.encode_to_vec()).await
    }

    /// Persists credentials atomically.
    pub async fn save_credentials(&self, creds: &pb::Credentials) -> io::Result<()> {
        write_atomic(self.dir.clone(), self.credentials_path(), creds.encode_to_vec()).await
    }

    /// Reads the persisted snapshot; Ok(None) when there is none.
    pub async fn load(&self) -> io::Result<Option<pb::Snapshot>> {
        read(self.path()).await
    }

    /// Reads the persisted credentials; Ok(None) when there are none.
    pub async fn load_credentials(&self) -> io::Result<Option<pb::Credentials>> {
        read(self.credentials_path()).await
    }
}

async fn read<M: Message + Default>(path: PathBuf) -> io::Result<Option<M>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => M::decode(bytes.as_slice()).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Temp file (owner read/write only), fsync, rename, fsync of the directory.
async fn write_atomic(dir: PathBuf, path: PathBuf, bytes: Vec<u8>) -> io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&dir)?;
        let tmp = path.with_extension("pb.tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(io::Error::other)?
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
