//! Policy versions in SQLite: one row per service and version, never rewritten. An apply
//! of several documents runs in one transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::clock::now_unix_ms;
use crate::store::error::StoreError;
use crate::store::model::{FORCED, RolloutState};
use crate::store::model::{NewVersion, PolicyVersion, Stored};
use crate::store::sqlite::rollouts::{self, NOT_CURRENT};
use crate::store::sqlite::transaction::write;

const VERSION_COLUMNS: &str = "service, version, author, created_unix_ms, message, content_hash";

/// See `Store::apply`. The inner error: a service has a rollout running and the document
/// does not force it (nothing was stored).
pub fn apply(
    conn: &mut Connection,
    docs: Vec<NewVersion>,
    dry_run: bool,
) -> Result<Result<Vec<Stored>, StoreError>, rusqlite::Error> {
    let tx = write(conn)?;
    let now = now_unix_ms();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let previous = current(&tx, &doc.service)?;
        if let Some(prev) = &previous
            && prev.content_hash == doc.content_hash
        {
            let (version, previous) = (prev.clone(), previous.clone());
            out.push(Stored { version, previous, changed: false, rollout: None, aborted: None });
            continue;
        }
        // One rollout at a time, checked where the version is numbered: no replica slips
        // a change past a rollout it has not heard of yet.
        let aborted = match rollouts::running(&tx, &doc.service)? {
            Some(r) if doc.force => rollouts::end_in(&tx, &r, RolloutState::Aborted, &doc.author, FORCED)?,
            Some(r) => {
                let mode = r.mode.as_str().to_owned();
                return Ok(Err(StoreError::RolloutRunning { service: r.service, version: r.version, mode }));
            }
            None => None,
        };
        // After the highest stored, candidates included: an aborted candidate's number is
        // never reused.
        let highest: u64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM policy_versions WHERE service = ?1",
            [&doc.service],
            |r| r.get(0),
        )?;
        let version = PolicyVersion {
            service: doc.service,
            version: highest + 1,
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
        let rollout = match &doc.rollout {
            Some(plan) => Some(rollouts::start(
                &tx,
                &version.service,
                version.version,
                previous.as_ref().map_or(0, |p| p.version),
                &version.author,
                plan,
            )?),
            None => None,
        };
        out.push(Stored { version, previous, changed: true, rollout, aborted });
    }
    if dry_run {
        tx.rollback()?
    } else {
        tx.commit()?
    }
    Ok(Ok(out))
}

/// The current version of a service, with its source.
pub fn current(c: &Connection, service: &str) -> Result<Option<PolicyVersion>, rusqlite::Error> {
    c.query_row(
        &format!(
            "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions p WHERE service = ?1 AND {NOT_CURRENT}
             ORDER BY version DESC LIMIT 1"
        ),
        [service],
        |r| version_row(r, true),
    )
    .optional()
}

/// One version of a service, with its source.
pub fn get(c: &Connection, service: &str, version: u64) -> Result<Option<PolicyVersion>, rusqlite::Error> {
    c.query_row(
        &format!("SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions WHERE service = ?1 AND version = ?2"),
        params![service, version],
        |r| version_row(r, true),
    )
    .optional()
}

/// Every version of a service, newest first, without sources.
pub fn history(c: &Connection, service: &str) -> Result<Vec<PolicyVersion>, rusqlite::Error> {
    let mut stmt =
        c.prepare(&format!("SELECT {VERSION_COLUMNS} FROM policy_versions WHERE service = ?1 ORDER BY version DESC"))?;
    stmt.query_map([service], |r| version_row(r, false))?.collect()
}

/// The current version of every service, with sources, by service name.
pub fn list_current(c: &Connection) -> Result<Vec<PolicyVersion>, rusqlite::Error> {
    let mut stmt = c.prepare(&format!(
        "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions o
         WHERE o.version = (SELECT MAX(p.version) FROM policy_versions p WHERE p.service = o.service AND {NOT_CURRENT})
         ORDER BY service"
    ))?;
    stmt.query_map([], |r| version_row(r, true))?.collect()
}

/// Every service's current version, by service name.
pub fn heads(c: &Connection) -> Result<Vec<(String, u64)>, rusqlite::Error> {
    let mut stmt = c.prepare(&format!(
        "SELECT service, MAX(version) FROM policy_versions p WHERE {NOT_CURRENT} GROUP BY service ORDER BY service"
    ))?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
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
