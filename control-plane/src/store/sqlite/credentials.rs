//! Credentials in SQLite: API keys (only their SHA-256, with client, plan, dates and
//! revocation) and named webhook secrets (several values per name while one rotates out).
//! Every change bumps one counter in the same transaction: the credentials revision
//! sidecars ACK. Each key row remembers the revision of its last change, so what changed
//! since any revision is one indexed query.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::clock::now_unix_ms;
use crate::store::error::StoreError;
use crate::store::model::{CredentialRows, KeyRow, NewKey, SecretRow};
use crate::store::sqlite::transaction::write;

const KEY_COLUMNS: &str =
    "id, service, client, plan, sha256, prefix, created_unix_ms, expires_unix_ms, revoked_unix_ms";

fn key_row(r: &Row<'_>) -> Result<KeyRow, rusqlite::Error> {
    Ok(KeyRow {
        id: r.get(0)?,
        service: r.get(1)?,
        client: r.get(2)?,
        plan: r.get(3)?,
        sha256: r.get(4)?,
        prefix: r.get(5)?,
        created_unix_ms: r.get(6)?,
        expires_unix_ms: r.get(7)?,
        revoked_unix_ms: r.get(8)?,
    })
}

/// Bumps the credentials revision inside `tx`; returns the new one.
fn bump(tx: &Transaction<'_>) -> Result<u64, rusqlite::Error> {
    tx.query_row(
        "INSERT INTO counters (name, value) VALUES ('credentials', 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        [],
        |r| r.get(0),
    )
}

/// The store's credentials epoch, made (random, 63 bits) the first time.
pub fn epoch(c: &Connection) -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::Unavailable("no randomness from the OS".into()))?;
    let fresh = u64::from_le_bytes(bytes) >> 1;
    c.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('epoch', ?1)", [fresh])?;
    Ok(c.query_row("SELECT value FROM counters WHERE name = 'epoch'", [], |r| r.get(0))?)
}

pub fn revision_in(c: &Connection) -> Result<u64, rusqlite::Error> {
    Ok(c.query_row("SELECT value FROM counters WHERE name = 'credentials'", [], |r| r.get(0)).optional()?.unwrap_or(0))
}

/// Stores new keys in one transaction, under one credentials revision.
pub fn create_keys(conn: &mut Connection, keys: Vec<NewKey>) -> Result<Vec<KeyRow>, rusqlite::Error> {
    let tx = write(conn)?;
    let revision = bump(&tx)?;
    let created_unix_ms = now_unix_ms();
    let mut rows = Vec::with_capacity(keys.len());
    {
        let mut insert = tx.prepare(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)"
        ))?;
        for k in keys {
            insert.execute(params![
                k.id,
                k.service,
                k.client,
                k.plan,
                k.sha256,
                k.prefix,
                created_unix_ms,
                k.expires_unix_ms,
                revision
            ])?;
            rows.push(KeyRow {
                id: k.id,
                service: k.service,
                client: k.client,
                plan: k.plan,
                sha256: k.sha256,
                prefix: k.prefix,
                created_unix_ms,
                expires_unix_ms: k.expires_unix_ms,
                revoked_unix_ms: 0,
            });
        }
    }
    tx.commit()?;
    Ok(rows)
}

/// Keys, optionally of one service and one client, oldest first.
pub fn keys(c: &Connection, service: Option<&str>, client: Option<&str>) -> Result<Vec<KeyRow>, rusqlite::Error> {
    let mut stmt = c.prepare(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys
         WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR client = ?2)
         ORDER BY created_unix_ms, id"
    ))?;
    stmt.query_map(params![service, client], key_row)?.collect()
}

/// Revokes a key (a second revoke changes nothing); None when there is no such key.
pub fn revoke_key(conn: &mut Connection, id: &str) -> Result<Option<KeyRow>, rusqlite::Error> {
    let tx = write(conn)?;
    let active: bool = tx
        .query_row("SELECT revoked_unix_ms = 0 FROM api_keys WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    if active {
        let revision = bump(&tx)?;
        tx.execute(
            "UPDATE api_keys SET revoked_unix_ms = ?2, revision = ?3 WHERE id = ?1",
            params![id, now_unix_ms(), revision],
        )?;
    }
    let row = tx.query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), [id], key_row).optional()?;
    tx.commit()?;
    Ok(row)
}

/// The key of `service` with this hash.
pub fn lookup_key(c: &Connection, service: &str, sha256: &[u8]) -> Result<Option<KeyRow>, rusqlite::Error> {
    c.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE service = ?1 AND sha256 = ?2"),
        params![service, sha256],
        key_row,
    )
    .optional()
}

/// Adds a value to a named secret, retiring the values already set after
/// `retire_previous_after_ms` (those set to retire sooner keep their date).
pub fn set_secret(
    conn: &mut Connection,
    name: String,
    value: Vec<u8>,
    retire_previous_after_ms: i64,
) -> Result<SecretRow, rusqlite::Error> {
    let tx = write(conn)?;
    let now = now_unix_ms();
    let retire_at = now.saturating_add(retire_previous_after_ms);
    tx.execute(
        "UPDATE secrets SET expires_unix_ms = ?2
         WHERE name = ?1 AND (expires_unix_ms = 0 OR expires_unix_ms > ?2)",
        params![name, retire_at],
    )?;
    let row = SecretRow { id: ulid::Ulid::new().to_string(), name, value, created_unix_ms: now, expires_unix_ms: 0 };
    tx.execute(
        "INSERT INTO secrets (id, name, value, created_unix_ms, expires_unix_ms) VALUES (?1, ?2, ?3, ?4, 0)",
        params![row.id, row.name, row.value, row.created_unix_ms],
    )?;
    bump(&tx)?;
    tx.commit()?;
    Ok(row)
}

/// Every secret value still verifying, without the values, by name then age.
pub fn secrets(c: &Connection) -> Result<Vec<SecretRow>, rusqlite::Error> {
    let mut stmt = c.prepare(
        "SELECT id, name, created_unix_ms, expires_unix_ms FROM secrets
         WHERE expires_unix_ms = 0 OR expires_unix_ms > ?1 ORDER BY name, created_unix_ms",
    )?;
    stmt.query_map([now_unix_ms()], |r| {
        Ok(SecretRow {
            id: r.get(0)?,
            name: r.get(1)?,
            value: Vec::new(),
            created_unix_ms: r.get(2)?,
            expires_unix_ms: r.get(3)?,
        })
    })?
    .collect()
}

/// Moves the credentials revision on without a key or secret change.
pub fn bump_revision(conn: &mut Connection) -> Result<u64, rusqlite::Error> {
    let tx = write(conn)?;
    let revision = bump(&tx)?;
    tx.commit()?;
    Ok(revision)
}

/// A service's keys changed after `since` and the named secrets' values, read in one
/// transaction so the revision matches the rows.
pub fn credentials(
    conn: &mut Connection,
    service: &str,
    since: u64,
    secret_names: &[String],
) -> Result<CredentialRows, rusqlite::Error> {
    let tx = conn.transaction()?;
    let revision = revision_in(&tx)?;
    let keys = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE service = ?1 AND revision > ?2 ORDER BY revision"
        ))?;
        stmt.query_map(params![service, since], key_row)?.collect::<Result<Vec<_>, _>>()?
    };
    let mut secrets = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT id, name, value, created_unix_ms, expires_unix_ms FROM secrets
             WHERE name = ?1 AND (expires_unix_ms = 0 OR expires_unix_ms > ?2) ORDER BY created_unix_ms",
        )?;
        let now = now_unix_ms();
        for name in secret_names {
            let rows = stmt.query_map(params![name, now], |r| {
                Ok(SecretRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    value: r.get(2)?,
                    created_unix_ms: r.get(3)?,
                    expires_unix_ms: r.get(4)?,
                })
            })?;
            for row in rows {
                secrets.push(row?);
            }
        }
    }
    tx.commit()?;
    Ok(CredentialRows { revision, keys, secrets })
}
