//! The SQLite store (bundled, WAL, `synchronous=FULL`) in one file: the embedded
//! implementation of `Store`, for one control-plane replica. Every call runs on a
//! blocking thread, never on the async runtime's workers, over one shared connection;
//! each is one transaction, and a committed one survives `kill -9`. The SQL lives in one file per kind of data; this file
//! opens the store, classifies SQLite's errors, and maps each `Store` method onto the SQL.

mod console;
mod credentials;
mod denials;
mod import;
mod rollouts;
mod samples;
mod schema;
mod sidecars;
#[cfg(test)]
mod tests;
mod transaction;
mod versions;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, ErrorCode};

use crate::store::api::{Store, StoreFuture};
use crate::store::error::StoreError;
use crate::store::model::{
    CredentialRows, Denial, DenialBucket, DenialFilter, DenialGroup, DenialMark, Heads, KeyRow, NewKey, NewVersion,
    PolicyVersion, Retention, Rollout, RolloutState, Sample, SampleFilter, SampleRetention, SecretRow, ShadowCount,
    SidecarRecord, StoreCopy, Stored, StoredDenial, StoredSample,
};

/// A handle to the SQLite store; clones share one connection.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    /// The file, for messages.
    path: std::path::PathBuf,
    /// Random, made when the store was created; see `Store::epoch`.
    epoch: u64,
}

impl Sqlite {
    /// Opens (or creates) the store in `dir`, bringing an older store's schema up to date.
    pub fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        Sqlite::open_file(&dir.join("warden.db"))
    }

    /// Opens (or creates) the store in the file `path`, making its directory if need be.
    pub fn open_file(path: &Path) -> Result<Sqlite, StoreError> {
        let io = |e: std::io::Error| StoreError::Failed(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let conn = Connection::open(path)?;
        // It holds webhook secrets: owner-only, like an SSH key.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before apply answers, so kill -9 loses nothing acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::create(&conn)?;
        let epoch = credentials::epoch(&conn)?;
        Ok(Sqlite { conn: Arc::new(Mutex::new(conn)), path: path.to_owned(), epoch })
    }

    /// Runs `f` on a blocking thread with the connection.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| match e.is_cancelled() {
            true => StoreError::Unavailable("the runtime is shutting down".into()),
            false => StoreError::Failed(format!("a store call panicked: {e}")),
        })??;
        Ok(out)
    }
}

/// Busy, locked, out of disk or memory, or its file unreadable: the store may answer a
/// later call. Anything else is this call's own failure.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Failed(e.to_string()),
        }
    }
}

impl Store for Sqlite {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn describe(&self) -> String {
        format!("SQLite at {}", self.path.display())
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // A read of the file, not `SELECT 1`, which SQLite answers without touching it.
        Box::pin(self.with(|c| c.query_row("SELECT value FROM counters WHERE name = 'epoch'", [], |_| Ok(()))))
    }

    fn apply(&self, docs: Vec<NewVersion>, dry_run: bool) -> StoreFuture<'_, Vec<Stored>> {
        Box::pin(async move { self.with(move |c| versions::apply(c, docs, dry_run)).await? })
    }

    fn current<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Option<PolicyVersion>> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| versions::current(c, &service)))
    }

    fn version<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Option<PolicyVersion>> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| versions::get(c, &service, version)))
    }

    fn history<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Vec<PolicyVersion>> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| versions::history(c, &service)))
    }

    fn list_current(&self) -> StoreFuture<'_, Vec<PolicyVersion>> {
        Box::pin(self.with(|c| versions::list_current(c)))
    }

    fn heads(&self) -> StoreFuture<'_, Heads> {
        Box::pin(self.with(|c| {
            let versions = versions::heads(c)?;
            Ok(Heads { versions, credentials_revision: credentials::revision_in(c)? })
        }))
    }

    fn save_sidecars(&self, records: Vec<SidecarRecord>) -> StoreFuture<'_, ()> {
        Box::pin(self.with(move |c| sidecars::save(c, &records)))
    }

    fn sidecars(&self) -> StoreFuture<'_, Vec<SidecarRecord>> {
        Box::pin(self.with(|c| sidecars::list(c)))
    }

    fn create_keys(&self, keys: Vec<NewKey>) -> StoreFuture<'_, Vec<KeyRow>> {
        Box::pin(self.with(move |c| credentials::create_keys(c, keys)))
    }

    fn keys(&self, service: Option<String>, client: Option<String>) -> StoreFuture<'_, Vec<KeyRow>> {
        Box::pin(self.with(move |c| credentials::keys(c, service.as_deref(), client.as_deref())))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        let id = id.to_owned();
        Box::pin(self.with(move |c| credentials::revoke_key(c, &id)))
    }

    fn lookup_key<'a>(&'a self, service: &'a str, sha256: Vec<u8>) -> StoreFuture<'a, Option<KeyRow>> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| credentials::lookup_key(c, &service, &sha256)))
    }

    fn set_secret<'a>(
        &'a self,
        name: &'a str,
        value: Vec<u8>,
        retire_previous_after_ms: i64,
    ) -> StoreFuture<'a, SecretRow> {
        let name = name.to_owned();
        Box::pin(self.with(move |c| credentials::set_secret(c, name, value, retire_previous_after_ms)))
    }

    fn secrets(&self) -> StoreFuture<'_, Vec<SecretRow>> {
        Box::pin(self.with(|c| credentials::secrets(c)))
    }

    fn bump_credentials_revision(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.with(credentials::bump_revision))
    }

    fn credentials<'a>(
        &'a self,
        service: &'a str,
        since: u64,
        secret_names: Vec<String>,
    ) -> StoreFuture<'a, CredentialRows> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| credentials::credentials(c, &service, since, &secret_names)))
    }

    fn import(&self, data: StoreCopy) -> StoreFuture<'_, ()> {
        Box::pin(self.with(move |c| import::import(c, &data)))
    }

    fn insert_denials<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        records: Vec<Denial>,
        retention: Retention,
    ) -> StoreFuture<'a, ()> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        Box::pin(self.with(move |c| denials::insert(c, &service, &instance, &records, retention)))
    }

    fn denials(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<StoredDenial>> {
        Box::pin(self.with(move |c| denials::list(c, &filter)))
    }

    fn insert_samples<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        records: Vec<Sample>,
        retention: SampleRetention,
    ) -> StoreFuture<'a, ()> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        Box::pin(self.with(move |c| samples::insert(c, &service, &instance, &records, retention)))
    }

    fn samples(&self, filter: SampleFilter) -> StoreFuture<'_, Vec<StoredSample>> {
        Box::pin(self.with(move |c| samples::list(c, &filter)))
    }

    fn denial_groups(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<DenialGroup>> {
        Box::pin(self.with(move |c| denials::groups(c, &filter)))
    }

    fn denial_buckets(&self, filter: DenialFilter, bucket_ms: i64) -> StoreFuture<'_, Vec<DenialBucket>> {
        Box::pin(self.with(move |c| denials::buckets(c, &filter, bucket_ms)))
    }

    fn set_denial_mark(&self, mark: DenialMark) -> StoreFuture<'_, ()> {
        Box::pin(self.with(move |c| console::set_mark(c, &mark)))
    }

    fn denial_marks(&self, group: Option<String>) -> StoreFuture<'_, Vec<DenialMark>> {
        Box::pin(self.with(move |c| console::marks(c, group.as_deref())))
    }

    fn console_key(&self, fresh: Vec<u8>) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(self.with(move |c| console::key(c, &fresh)))
    }

    fn add_shadow_counts<'a>(&'a self, service: &'a str, counts: Vec<ShadowCount>) -> StoreFuture<'a, ()> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| rollouts::add_shadow_counts(c, &service, &counts)))
    }

    fn shadow_counts<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Vec<ShadowCount>> {
        let service = service.to_owned();
        Box::pin(self.with(move |c| rollouts::shadow_counts(c, &service, version)))
    }

    fn rollouts<'a>(&'a self, service: Option<&'a str>) -> StoreFuture<'a, Vec<Rollout>> {
        let service = service.map(str::to_owned);
        Box::pin(self.with(move |c| rollouts::list(c, service.as_deref())))
    }

    fn end_rollout<'a>(
        &'a self,
        service: &'a str,
        version: u64,
        state: RolloutState,
        by: &'a str,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<Rollout>> {
        let (service, by, reason) = (service.to_owned(), by.to_owned(), reason.to_owned());
        Box::pin(self.with(move |c| rollouts::end(c, &service, version, state, &by, &reason)))
    }
}
