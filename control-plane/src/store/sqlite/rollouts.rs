//! Rollouts in SQLite: one row per candidate version, beside `policy_versions` (whose rows
//! are never rewritten). A version with a running or aborted rollout is not current; the
//! state moves once, from running to promoted or aborted, by a conditional update. A
//! shadow's differences are counted per candidate beside it (`shadow_counts`).

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::clock::now_unix_ms;
use crate::store::model::{NewRollout, Rollout, RolloutMode, RolloutState, ShadowCount};

const COLUMNS: &str = "service, version, base_version, mode, state, canary_percent, canary_instances, abort_if,
                       author, started_unix_ms, ended_unix_ms, ended_by, reason";

/// Not current: a candidate still being tried, or one that was aborted.
pub const NOT_CURRENT: &str = "NOT EXISTS (SELECT 1 FROM rollouts r WHERE r.service = p.service AND r.version = p.version AND r.state <> 'promoted')";

/// Starts a rollout of `version` (just inserted) inside `tx`.
pub fn start(
    tx: &Transaction<'_>,
    service: &str,
    version: u64,
    base_version: u64,
    author: &str,
    plan: &NewRollout,
) -> Result<Rollout, rusqlite::Error> {
    let rollout = plan.begin(service, version, base_version, author);
    insert_in(tx, &rollout)?;
    Ok(rollout)
}

/// Writes a rollout as it is (`start`, and `copy-store`).
pub fn insert_in(tx: &Transaction<'_>, r: &Rollout) -> Result<(), rusqlite::Error> {
    tx.execute(
        &format!("INSERT INTO rollouts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            r.service,
            r.version,
            r.base_version,
            r.mode.as_str(),
            r.state.as_str(),
            r.canary_percent,
            json(&r.canary_instances),
            json(&r.abort_if),
            r.author,
            r.started_unix_ms,
            r.ended_unix_ms,
            r.ended_by,
            r.reason
        ],
    )?;
    Ok(())
}

/// Rollouts, newest first, of one service or all.
pub fn list(c: &Connection, service: Option<&str>) -> Result<Vec<Rollout>, rusqlite::Error> {
    let mut stmt =
        c.prepare(&format!("SELECT {COLUMNS} FROM rollouts WHERE (?1 IS NULL OR service = ?1) ORDER BY version DESC"))?;
    stmt.query_map([service], row)?.collect()
}

/// The service's running rollout, if one is.
pub fn running(c: &Connection, service: &str) -> Result<Option<Rollout>, rusqlite::Error> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM rollouts WHERE service = ?1 AND state IN ('shadow', 'canary')"),
        [service],
        row,
    )
    .optional()
}

/// Ends `r` inside `tx` (a forced apply); None when it was not running any more.
pub fn end_in(
    tx: &Transaction<'_>,
    r: &Rollout,
    state: RolloutState,
    by: &str,
    reason: &str,
) -> Result<Option<Rollout>, rusqlite::Error> {
    let changed = tx.execute(
        "UPDATE rollouts SET state = ?3, ended_unix_ms = ?4, ended_by = ?5, reason = ?6
         WHERE service = ?1 AND version = ?2 AND state IN ('shadow', 'canary')",
        params![r.service, r.version, state.as_str(), now_unix_ms(), by, reason],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM rollouts WHERE service = ?1 AND version = ?2"),
        params![r.service, r.version],
        row,
    )
    .optional()
}

/// Ends a running rollout; None when it is not running (already ended, or none).
pub fn end(
    c: &mut Connection,
    service: &str,
    version: u64,
    state: RolloutState,
    by: &str,
    reason: &str,
) -> Result<Option<Rollout>, rusqlite::Error> {
    let tx = crate::store::sqlite::transaction::write(c)?;
    let Some(r) = running(&tx, service)?.filter(|r| r.version == version) else {
        return Ok(None);
    };
    let out = end_in(&tx, &r, state, by, reason)?;
    tx.commit()?;
    Ok(out)
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn row(r: &Row<'_>) -> Result<Rollout, rusqlite::Error> {
    let text = |i: usize| -> Result<Vec<String>, rusqlite::Error> {
        Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or_default())
    };
    Ok(Rollout {
        service: r.get(0)?,
        version: r.get(1)?,
        base_version: r.get(2)?,
        mode: RolloutMode::parse(&r.get::<_, String>(3)?).unwrap_or(RolloutMode::Shadow),
        state: RolloutState::parse(&r.get::<_, String>(4)?).unwrap_or(RolloutState::Aborted),
        canary_percent: r.get(5)?,
        canary_instances: text(6)?,
        abort_if: text(7)?,
        author: r.get(8)?,
        started_unix_ms: r.get(9)?,
        ended_unix_ms: r.get(10)?,
        ended_by: r.get(11)?,
        reason: r.get(12)?,
    })
}

/// See `Store::add_shadow_counts`.
pub fn add_shadow_counts(c: &mut Connection, service: &str, counts: &[ShadowCount]) -> Result<(), rusqlite::Error> {
    let tx = crate::store::sqlite::transaction::write(c)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO shadow_counts (service, version, denied, route, rule, code, client_id, count, examples)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (service, version, denied, route, rule, code, client_id)
             DO UPDATE SET count = count + excluded.count",
        )?;
        for s in counts {
            let examples = json(&s.examples);
            stmt.execute(params![
                service,
                s.version,
                s.denied,
                s.route,
                s.rule,
                s.code,
                s.client_id,
                s.count,
                examples
            ])?;
        }
    }
    tx.commit()
}

/// See `Store::shadow_counts`.
pub fn shadow_counts(c: &Connection, service: &str, version: u64) -> Result<Vec<ShadowCount>, rusqlite::Error> {
    let mut stmt = c.prepare(
        "SELECT version, denied, route, rule, code, client_id, count, examples FROM shadow_counts
         WHERE service = ?1 AND version = ?2 ORDER BY count DESC, route, rule, code, client_id",
    )?;
    stmt.query_map(params![service, version], |r| {
        Ok(ShadowCount {
            version: r.get(0)?,
            denied: r.get(1)?,
            route: r.get(2)?,
            rule: r.get(3)?,
            code: r.get(4)?,
            client_id: r.get(5)?,
            count: r.get(6)?,
            examples: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        })
    })?
    .collect()
}
