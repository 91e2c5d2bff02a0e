//! What the console keeps in SQLite: its session signing key (one row, made once) and the
//! reviewers' marks on refusal groups (one row per group, the latest mark).

use rusqlite::{Connection, Row, params};

use crate::store::model::{DenialMark, Mark};
use crate::store::sqlite::transaction::write;

/// The stored key, or `fresh` stored as it when there is none.
pub fn key(conn: &mut Connection, fresh: &[u8]) -> Result<Vec<u8>, rusqlite::Error> {
    let tx = write(conn)?;
    tx.execute(
        "INSERT INTO console_keys (id, key, created_unix_ms) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
        params![fresh, crate::clock::now_unix_ms()],
    )?;
    let key = tx.query_row("SELECT key FROM console_keys WHERE id = 1", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(key)
}

/// Sets a group's mark, replacing any earlier one.
pub fn set_mark(conn: &Connection, m: &DenialMark) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO denial_marks (group_id, service, route, rule, code, client_id, mark, note, owner, author, unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (group_id) DO UPDATE SET mark = excluded.mark, note = excluded.note, owner = excluded.owner,
                                              author = excluded.author, unix_ms = excluded.unix_ms",
        params![
            m.group,
            m.service,
            m.route,
            m.rule,
            m.code,
            m.client_id,
            m.mark.as_str(),
            m.note,
            m.owner,
            m.author,
            m.unix_ms
        ],
    )?;
    Ok(())
}

/// Replaces the key (`copy-store`: the source's comes along).
pub fn replace_key(conn: &Connection, key: &[u8]) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO console_keys (id, key, created_unix_ms) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET key = excluded.key",
        params![key, crate::clock::now_unix_ms()],
    )?;
    Ok(())
}

/// Every group's mark, newest first; or one group's.
pub fn marks(conn: &Connection, group: Option<&str>) -> Result<Vec<DenialMark>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT group_id, service, route, rule, code, client_id, mark, note, owner, author, unix_ms
         FROM denial_marks WHERE (?1 IS NULL OR group_id = ?1) ORDER BY unix_ms DESC",
    )?;
    stmt.query_map([group], mark_row)?.collect()
}

fn mark_row(r: &Row<'_>) -> Result<DenialMark, rusqlite::Error> {
    let mark: String = r.get(6)?;
    Ok(DenialMark {
        group: r.get(0)?,
        service: r.get(1)?,
        route: r.get(2)?,
        rule: r.get(3)?,
        code: r.get(4)?,
        client_id: r.get(5)?,
        // The table's CHECK admits no other value.
        mark: Mark::parse(&mark).unwrap_or(Mark::Expected),
        note: r.get(7)?,
        owner: r.get(8)?,
        author: r.get(9)?,
        unix_ms: r.get(10)?,
    })
}
