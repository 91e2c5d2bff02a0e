//! `copy-store` into SQLite: every row as it was written, in one transaction, into a
//! store that holds no policy version and no key yet.

use rusqlite::{Connection, params};

use crate::store::model::StoreCopy;
use crate::store::sqlite::denials::insert_in;
use crate::store::sqlite::sidecars::save_in;
use crate::store::sqlite::transaction::write;

/// See `Store::import`.
pub fn import(conn: &mut Connection, data: &StoreCopy) -> Result<(), rusqlite::Error> {
    let tx = write(conn)?;
    let held: i64 =
        tx.query_row("SELECT (SELECT COUNT(*) FROM policy_versions) + (SELECT COUNT(*) FROM api_keys)", [], |r| {
            r.get(0)
        })?;
    if held > 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some("the destination store already holds policy versions or keys".into()),
        ));
    }
    {
        let mut stmt = tx.prepare(
            "INSERT INTO policy_versions (service, version, author, created_unix_ms, message, content_hash, source_yaml)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for v in &data.versions {
            stmt.execute(params![
                v.service,
                v.version,
                v.author,
                v.created_unix_ms,
                v.message,
                v.content_hash,
                v.source_yaml
            ])?;
        }
        let mut stmt = tx.prepare(
            "INSERT INTO api_keys (id, service, client, plan, sha256, prefix, created_unix_ms, expires_unix_ms,
                                   revoked_unix_ms, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
        )?;
        for k in &data.keys {
            stmt.execute(params![
                k.id,
                k.service,
                k.client,
                k.plan,
                k.sha256,
                k.prefix,
                k.created_unix_ms,
                k.expires_unix_ms,
                k.revoked_unix_ms
            ])?;
        }
        let mut stmt = tx.prepare(
            "INSERT INTO secrets (id, name, value, created_unix_ms, expires_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for s in &data.secrets {
            stmt.execute(params![s.id, s.name, s.value, s.created_unix_ms, s.expires_unix_ms])?;
        }
        // Oldest first, so the copy's row order (the deny log's "newest first") is the same.
        for s in data.denials.iter().rev() {
            insert_in(&tx, &s.service, &s.instance, std::slice::from_ref(&s.denial))?;
        }
        for r in &data.rollouts {
            crate::store::sqlite::rollouts::insert_in(&tx, r)?;
        }
        for m in &data.marks {
            crate::store::sqlite::console::set_mark(&tx, m)?;
        }
        if !data.console_key.is_empty() {
            crate::store::sqlite::console::replace_key(&tx, &data.console_key)?;
        }
    }
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('credentials', 1)
         ON CONFLICT (name) DO UPDATE SET value = MAX(value, 1)",
        [],
    )?;
    save_in(&tx, &data.sidecars)?;
    tx.commit()
}
