//! The last known good snapshot on disk (`--state-dir/<service>.snapshot.pb`) and the
//! last credentials (`<service>.credentials.pb`, owner-only: it holds webhook secrets), so
//! a sidecar that restarts while the control plane is down still serves its policy. Written
//! atomically: temp file, fsync, rename, fsync of the directory; a crash leaves the old
//! file or the new one, never a torn one. One file per service, so sidecars of different
//! services may share a directory.
//!
//! Snapshots go through `SnapshotWriter`, a group commit: a write (with its two fsyncs)
//! costs a few hundred µs of the sidecar's CPU, so under a burst of applies only the
//! newest snapshot is written, at most one write per `MIN_WRITE_SPACING`; the control
//! session ACKs a version once a write of it or of a later one has finished.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::sync::watch;
use warden_proto::v1 as pb;

/// Least time between two writes of a snapshot file: 100 applies a second cost ten
/// writes a second, and a lone swap is written at once.
pub const MIN_WRITE_SPACING: Duration = Duration::from_millis(100);

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

    /// Persists an encoded snapshot atomically.
    pub async fn save_encoded(&self, snapshot: Bytes) -> io::Result<()> {
        write_atomic(self.dir.clone(), self.path(), snapshot).await
    }

    /// Persists credentials atomically.
    pub async fn save_credentials(&self, creds: &pb::Credentials) -> io::Result<()> {
        write_atomic(self.dir.clone(), self.credentials_path(), creds.encode_to_vec().into()).await
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

/// Writes the newest snapshot it is given in the background: one write at a time, at most
/// one per `MIN_WRITE_SPACING`. A snapshot superseded while it waits is never written: the
/// newer one's write stands for it. Each `submit` gets a ticket; `done` tells how far the
/// writes have got.
#[derive(Debug)]
pub struct SnapshotWriter {
    file: StateFile,
    queue: Mutex<Queue>,
    done: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Queue {
    /// The ticket and encoded snapshot to write next.
    next: Option<(u64, Bytes)>,
    last_ticket: u64,
    /// A writer task is running (writing, or waiting out the spacing).
    writing: bool,
}

impl SnapshotWriter {
    pub fn new(file: StateFile) -> Arc<Self> {
        Arc::new(SnapshotWriter { file, queue: Mutex::default(), done: watch::Sender::new(0) })
    }

    pub fn file(&self) -> &StateFile {
        &self.file
    }

    /// Queues an encoded snapshot in place of any that waits, and returns its ticket.
    pub fn submit(self: &Arc<Self>, bytes: Bytes) -> u64 {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.last_ticket += 1;
        q.next = Some((q.last_ticket, bytes));
        if !q.writing {
            q.writing = true;
            tokio::spawn(self.clone().run());
        }
        q.last_ticket
    }

    /// The ticket of the newest snapshot submitted (0: none yet).
    pub fn last_ticket(&self) -> u64 {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).last_ticket
    }

    /// The newest ticket whose write has finished; wait on it to reach yours. A write that
    /// failed counts as finished (it is logged, as before group commit): the snapshot is
    /// live all the same, and holding back its ACK would not make the disk work.
    pub fn done(&self) -> watch::Receiver<u64> {
        self.done.subscribe()
    }

    /// Waits until the newest snapshot submitted so far has been written (at most one
    /// spacing and one write away).
    pub async fn flush(&self) {
        let last = self.last_ticket();
        let _ = self.done().wait_for(|&d| d >= last).await;
    }

    async fn run(self: Arc<Self>) {
        loop {
            let (ticket, bytes) = {
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                match q.next.take() {
                    Some(next) => next,
                    None => {
                        q.writing = false;
                        return;
                    }
                }
            };
            if let Err(e) = self.file.save_encoded(bytes).await {
                tracing::warn!(error = %e, file = %self.file.path().display(), "could not persist the last known good snapshot");
            }
            self.done.send_replace(ticket);
            tokio::time::sleep(MIN_WRITE_SPACING).await;
        }
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
async fn write_atomic(dir: PathBuf, path: PathBuf, bytes: Bytes) -> io::Result<()> {
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
        orders.save_encoded(snap.encode_to_vec().into()).await.unwrap();
        orders.save_encoded(pb::Snapshot { version: 8, ..snap.clone() }.encode_to_vec().into()).await.unwrap();
        assert_eq!(orders.load().await.unwrap().map(|s| s.version), Some(8));
        assert_eq!(billing.load().await.unwrap(), None);
        std::fs::write(orders.path(), b"\xff\xff not protobuf").unwrap();
        assert!(orders.load().await.is_err(), "a corrupt file is an error, not an empty policy");
    }

    #[tokio::test]
    async fn a_burst_of_snapshots_is_written_in_few_writes_ending_with_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SnapshotWriter::new(StateFile::new(dir.path().to_owned(), "orders".into()));
        let mut done = writer.done();
        let snap = |version| pb::Snapshot { service: "orders".into(), version, ..Default::default() };
        let first = writer.submit(snap(1).encode_to_vec().into());
        done.wait_for(|&d| d >= first).await.unwrap();
        assert_eq!(
            writer.file().load().await.unwrap().map(|s| s.version),
            Some(1),
            "a lone snapshot is written at once"
        );

        // Fifty while the writer waits out its spacing: the next write is the newest.
        let tickets: Vec<u64> = (2..=51).map(|v| writer.submit(snap(v).encode_to_vec().into())).collect();
        assert_eq!(writer.last_ticket(), tickets[49]);
        let mut seen = Vec::new();
        while *done.borrow() < tickets[49] {
            done.changed().await.unwrap();
            seen.push(*done.borrow());
        }
        assert_eq!(seen, [tickets[49]], "one write stands for the fifty");
        assert_eq!(writer.file().load().await.unwrap().map(|s| s.version), Some(51));

        // Queued behind the spacing, then flushed (as on shutdown).
        writer.submit(snap(52).encode_to_vec().into());
        writer.flush().await;
        assert_eq!(writer.file().load().await.unwrap().map(|s| s.version), Some(52));
    }
}
