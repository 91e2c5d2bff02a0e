//! Sidecar records in SQLite: the last ACK, NACK and sighting of every sidecar, so
//! `wardenctl status` survives a control-plane restart.

use rusqlite::{Connection, Transaction, params};

use crate::store::model::SidecarRecord;
use crate::store::sqlite::transaction::write;

/// Upserts the records in one transaction (one fsync for the lot).
pub fn save(c: &mut Connection, records: &[SidecarRecord]) -> Result<(), rusqlite::Error> {
    let tx = write(c)?;
    save_in(&tx, records)?;
    tx.commit()
}

/// Upserts the records inside `tx`.
pub fn save_in(tx: &Transaction<'_>, records: &[SidecarRecord]) -> Result<(), rusqlite::Error> {
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO sidecars (service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error, nacked_unix_ms, last_seen_unix_ms, replica, connected, acked_credentials, shadow_version, shadow_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (service, instance) DO UPDATE SET
               peer = excluded.peer, acked_version = excluded.acked_version, acked_unix_ms = excluded.acked_unix_ms,
               nacked_version = excluded.nacked_version, nack_error = excluded.nack_error,
               nacked_unix_ms = excluded.nacked_unix_ms, last_seen_unix_ms = excluded.last_seen_unix_ms,
               replica = excluded.replica, connected = excluded.connected, acked_credentials = excluded.acked_credentials,
               shadow_version = excluded.shadow_version, shadow_error = excluded.shadow_error",
        )?;
        for s in records {
            stmt.execute(params![
                s.service,
                s.instance,
                s.peer,
                s.acked_version,
                s.acked_unix_ms,
                s.nacked_version,
                s.nack_error,
                s.nacked_unix_ms,
                s.last_seen_unix_ms,
                s.replica,
                s.connected,
                s.acked_credentials,
                s.shadow_version,
                s.shadow_error
            ])?;
        }
    }
    Ok(())
}

/// Every sidecar ever seen.
pub fn list(c: &Connection) -> Result<Vec<SidecarRecord>, rusqlite::Error> {
    let mut stmt = c.prepare(
        "SELECT service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error, nacked_unix_ms, last_seen_unix_ms,
                replica, connected, acked_credentials, shadow_version, shadow_error
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
            replica: r.get(9)?,
            connected: r.get(10)?,
            acked_credentials: r.get(11)?,
            shadow_version: r.get(12)?,
            shadow_error: r.get(13)?,
        })
    })?
    .collect()
}
