//! The embedded, durable store: SQLite (bundled, WAL, `synchronous=FULL`) in `--data-dir`.
//!
//! It holds every version of every service's policy (author, time, message, source YAML,
//! content hash), the last ACK/NACK of every sidecar, credentials (`credentials.rs`:
//! API key hashes and webhook secrets) and the deny log (`denials.rs`). An apply of several documents is
//! one transaction: all new versions commit together or none do, and a committed apply
//! survives `kill -9`. SQLite runs on a blocking thread, never on the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};

mod credentials;
mod denials;

pub use credentials::{KeyRow, NewKey, SecretRow};
pub use denials::{DenialFilter, Retention};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    #[error("store: the blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One stored version of one service's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub service: String,
    pub version: u64,
    pub author: String,
    pub created_unix_ms: i64,
    pub message: String,
    pub content_hash: String,
    /// Empty in listings (`history`, `list_current`).
    pub source_yaml: String,
}

/// A document to store as the next version of its service.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub service: String,
    pub author: String,
    pub message: String,
    pub content_hash: String,
    pub source_yaml: String,
}

/// What storing a document did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: PolicyVersion,
    /// The version it replaced, if any.
    pub previous: Option<PolicyVersion>,
    /// False when the content equals the current version's: nothing was written.
    pub changed: bool,
}

/// The last thing a sidecar said, as kept across control-plane restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarRecord {
    pub service: String,
    pub instance: String,
    pub peer: String,
    pub acked_version: u64,
    pub acked_unix_ms: i64,
    pub nacked_version: u64,
    pub nack_error: String,
    pub nacked_unix_ms: i64,
    pub last_seen_unix_ms: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_versions (
    service         TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    author          TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    message         TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    source_yaml     TEXT    NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE IF NOT EXISTS sidecars (
    service           TEXT    NOT NULL,
    instance          TEXT    NOT NULL,
    peer              TEXT    NOT NULL,
    acked_version     INTEGER NOT NULL,
    acked_unix_ms     INTEGER NOT NULL,
    nacked_version    INTEGER NOT NULL,
    nack_error        TEXT    NOT NULL,
    nacked_unix_ms    INTEGER NOT NULL,
    last_seen_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (service, instance)
);
CREATE TABLE IF NOT EXISTS api_keys (
    id              TEXT    PRIMARY KEY,
    service         TEXT    NOT NULL,
    client          TEXT    NOT NULL,
    plan            TEXT    NOT NULL,
    sha256          BLOB    NOT NULL UNIQUE,
    prefix          TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL,
    revoked_unix_ms INTEGER NOT NULL,
    -- The credentials revision of the key's last change, so a sidecar can be sent only
    -- what changed after the revision it holds.
    revision        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_service ON api_keys (service, revision);
CREATE TABLE IF NOT EXISTS secrets (
    id              TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    value           BLOB    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS secrets_by_name ON secrets (name);
CREATE TABLE IF NOT EXISTS denials (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service    TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    unix_ms    INTEGER NOT NULL,
    request_id TEXT    NOT NULL,
    trace_id   TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    code       TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    client_id  TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    dry_run    INTEGER NOT NULL,
    request_id_from_client INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS denials_by_time ON denials (unix_ms);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Columns added after a table was first released: `CREATE TABLE IF NOT EXISTS` leaves an
/// older store's table as it was, so they are added here (with defaults the older rows take).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("denials", "request_id_from_client", "INTEGER NOT NULL DEFAULT 0")];

fn add_missing_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (table, column, decl) in ADDED_COLUMNS {
        let present: bool =
            conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2", [table, column], |r| {
                r.get(0)
            })?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

const VERSION_COLUMNS: &str = "service, version, author, created_unix_ms, message, content_hash";

/// A handle to the store; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Random, made when the store was created; see `Credentials.epoch`.
    epoch: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("warden.db");
        let conn = Connection::open(&path)?;
        // It holds webhook secrets: owner-only, like an SSH key.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before apply answers, so kill -9 loses nothing acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
        let epoch = credentials::epoch(&conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), epoch })
    }

    /// The credentials epoch: revisions count within it.
    pub fn epoch(&self) -> u64 {
        self.epoch
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
        .await??;
        Ok(out)
    }

    /// Stores each document as its service's next version, in one transaction. A document
    /// whose content equals its service's current version is left alone (`changed: false`).
    /// With `dry_run`, computes the same answer and writes nothing.
    pub async fn apply(&self, docs: Vec<NewVersion>, dry_run: bool) -> Result<Vec<Stored>, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let now = now_unix_ms();
            let mut out = Vec::with_capacity(docs.len());
            for doc in docs {
                let previous = current_in(&tx, &doc.service, true)?;
                if let Some(prev) = &previous
                    && prev.content_hash == doc.content_hash
                {
                    out.push(Stored { version: prev.clone(), previous: previous.clone(), changed: false });
                    continue;
                }
                let version = PolicyVersion {
                    service: doc.service,
                    version: previous.as_ref().map_or(1, |p| p.version + 1),
                    author: doc.author,
                    created_unix_ms: now,
                    message: doc.message,
                    content_hash: doc.content_hash,
                    source_yaml: doc.source_yaml,
                };
                tx.execute(
                    "INSERT INTO policy_versions (service, version, author, created_unix_ms, message, content_hash, source_yaml)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        version.service,
                        version.version,
                        version.author,
                        version.created_unix_ms,
                        version.message,
                        version.content_hash,
                        version.source_yaml
                    ],
                )?;
                out.push(Stored { version, previous, changed: true });
            }
            if dry_run { tx.rollback()? } else { tx.commit()? }
            Ok(out)
        })
        .await
    }

    /// The current (highest) version of a service, with its source.
    pub async fn current(&self, service: &str) -> Result<Option<PolicyVersion>, StoreError> {
        let service = service.to_owned();
        self.with(move |c| current_in(c, &service, true)).await
    }

    /// One version of a service, with its source.
    pub async fn get(&self, service: &str, version: u64) -> Result<Option<PolicyVersion>, StoreError> {
        let service = service.to_owned();
        self.with(move |c| {
            c.query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions WHERE service = ?1 AND version = ?2"
                ),
                params![service, version],
                |r| version_row(r, true),
            )
            .optional()
        })
        .await
    }

    /// Every version of a service, newest first, without sources.
    pub async fn history(&self, service: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let service = service.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM policy_versions WHERE service = ?1 ORDER BY version DESC"
            ))?;
            stmt.query_map([service], |r| version_row(r, false))?.collect()
        })
        .await
    }

    /// The current version of every service, with sources, by service name.
    pub async fn list_current(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions p
                 WHERE version = (SELECT MAX(version) FROM policy_versions q WHERE q.service = p.service)
                 ORDER BY service"
            ))?;
            stmt.query_map([], |r| version_row(r, true))?.collect()
        })
        .await
    }

    /// Records what sidecars last said, in one transaction (one fsync for the lot).
    pub async fn save_sidecars(&self, records: Vec<SidecarRecord>) -> Result<(), StoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO sidecars (service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error, nacked_unix_ms, last_seen_unix_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (service, instance) DO UPDATE SET
                       peer = excluded.peer, acked_version = excluded.acked_version, acked_unix_ms = excluded.acked_unix_ms,
                       nacked_version = excluded.nacked_version, nack_error = excluded.nack_error,
                       nacked_unix_ms = excluded.nacked_unix_ms, last_seen_unix_ms = excluded.last_seen_unix_ms",
                )?;
                for s in &records {
                    stmt.execute(params![
                        s.service,
                        s.instance,
                        s.peer,
                        s.acked_version,
                        s.acked_unix_ms,
                        s.nacked_version,
                        s.nack_error,
                        s.nacked_unix_ms,
                        s.last_seen_unix_ms
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Every sidecar ever seen.
    pub async fn sidecars(&self) -> Result<Vec<SidecarRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error, nacked_unix_ms, last_seen_unix_ms
                 FROM sidecars ORDER BY service, instance",
            )?;
            stmt.query_map([], |r| {
                Ok(SidecarRecord {
                    service: r.get(0)?,
                    instance: r.get(1)?,
                    peer: r.get(2)?,
                    acked_version: r.get(3)?,
                    acked_unix_ms: r.get(4)?,
                    nacked_version: r.get(5)?,
                    nack_error: r.get(6)?,
                    nacked_unix_ms: r.get(7)?,
                    last_seen_unix_ms: r.get(8)?,
                })
            })?
            .collect()
        })
        .await
    }
}

fn current_in(c: &Connection, service: &str, with_source: bool) -> Result<Option<PolicyVersion>, rusqlite::Error> {
    c.query_row(
        &format!(
            "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions WHERE service = ?1 ORDER BY version DESC LIMIT 1"
        ),
        [service],
        |r| version_row(r, with_source),
    )
    .optional()
}

fn version_row(r: &Row<'_>, with_source: bool) -> Result<PolicyVersion, rusqlite::Error> {
    Ok(PolicyVersion {
        service: r.get(0)?,
        version: r.get(1)?,
        author: r.get(2)?,
        created_unix_ms: r.get(3)?,
        message: r.get(4)?,
        content_hash: r.get(5)?,
        source_yaml: if with_source { r.get(6)? } else { String::new() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(service: &str, yaml: &str) -> NewVersion {
        NewVersion {
            service: service.into(),
            author: "alice".into(),
            message: "m".into(),
            content_hash: warden_policy::yaml::content_hash(yaml),
            source_yaml: yaml.into(),
        }
    }

    #[tokio::test]
    async fn versions_are_numbered_per_service_and_unchanged_content_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 1")], false).await.unwrap();
        assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, true), (1, true)]);
        let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 2")], false).await.unwrap();
        assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, false), (2, true)]);
        assert_eq!(r[1].previous.as_ref().unwrap().source_yaml, "y: 1");
        let h = store.history("b").await.unwrap();
        assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(store.get("b", 1).await.unwrap().unwrap().source_yaml, "y: 1");
        assert_eq!(store.current("b").await.unwrap().unwrap().source_yaml, "y: 2");
        assert_eq!(store.list_current().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn dry_run_writes_nothing_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.apply(vec![doc("a", "x: 1")], false).await.unwrap();
            let r = store.apply(vec![doc("a", "x: 2")], true).await.unwrap();
            assert_eq!(r[0].version.version, 2);
        }
        let store = Store::open(dir.path()).unwrap();
        let cur = store.current("a").await.unwrap().unwrap();
        assert_eq!((cur.version, cur.source_yaml.as_str()), (1, "x: 1"));
    }
}
