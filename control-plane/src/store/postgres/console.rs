//! What the console keeps in PostgreSQL, as in SQLite: its session signing key (one row,
//! made by whichever replica asks first; every replica then reads the same) and the
//! reviewers' marks on refusal groups.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::store::model::{DenialMark, Mark};

/// The stored key, or `fresh` stored as it when there is none.
pub async fn key(c: &Object, fresh: &[u8]) -> Result<Vec<u8>, Error> {
    c.execute(
        "INSERT INTO console_keys (id, key, created_unix_ms) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        &[&fresh, &crate::clock::now_unix_ms()],
    )
    .await?;
    Ok(c.query_one("SELECT key FROM console_keys WHERE id = 1", &[]).await?.get(0))
}

/// Sets a group's mark, replacing any earlier one.
pub async fn set_mark(c: &impl GenericClient, m: &DenialMark) -> Result<(), Error> {
    c.execute(
        "INSERT INTO denial_marks (group_id, service, route, rule, code, client_id, mark, note, owner, author, unix_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (group_id) DO UPDATE SET mark = excluded.mark, note = excluded.note, owner = excluded.owner,
                                              author = excluded.author, unix_ms = excluded.unix_ms",
        &[
            &m.group,
            &m.service,
            &m.route,
            &m.rule,
            &m.code,
            &m.client_id,
            &m.mark.as_str(),
            &m.note,
            &m.owner,
            &m.author,
            &m.unix_ms,
        ],
    )
    .await?;
    Ok(())
}

/// Replaces the key (`copy-store`: the source's comes along).
pub async fn replace_key(c: &impl GenericClient, key: &[u8]) -> Result<(), Error> {
    c.execute(
        "INSERT INTO console_keys (id, key, created_unix_ms) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET key = excluded.key",
        &[&key, &crate::clock::now_unix_ms()],
    )
    .await?;
    Ok(())
}

/// Every group's mark, newest first; or one group's.
pub async fn marks(c: &Object, group: Option<&str>) -> Result<Vec<DenialMark>, Error> {
    let rows = c
        .query(
            "SELECT group_id, service, route, rule, code, client_id, mark, note, owner, author, unix_ms
             FROM denial_marks WHERE ($1::TEXT IS NULL OR group_id = $1) ORDER BY unix_ms DESC",
            &[&group],
        )
        .await?;
    Ok(rows.iter().map(mark_row).collect())
}

fn mark_row(r: &Row) -> DenialMark {
    DenialMark {
        group: r.get(0),
        service: r.get(1),
        route: r.get(2),
        rule: r.get(3),
        code: r.get(4),
        client_id: r.get(5),
        // The table's CHECK admits no other value.
        mark: Mark::parse(r.get(6)).unwrap_or(Mark::Expected),
        note: r.get(7),
        owner: r.get(8),
        author: r.get(9),
        unix_ms: r.get(10),
    }
}
