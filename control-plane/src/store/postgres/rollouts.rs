//! Rollouts in PostgreSQL, as in SQLite: one row per candidate version beside
//! `policy_versions`; a running or aborted candidate is not current; the state moves once,
//! by a conditional update, so two replicas ending one rollout at once end it once. Every
//! start and end is announced on the change feed (`policy:SERVICE`), so each replica
//! serves the candidate, or stops, at once.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::{NewRollout, Rollout, RolloutMode, RolloutState, ShadowCount};
use crate::store::postgres::bigint::{big, small};
use crate::store::postgres::change_feed::notify;

const COLUMNS: &str = "service, version, base_version, mode, state, canary_percent, canary_instances, abort_if,
                       author, started_unix_ms, ended_unix_ms, ended_by, reason";

/// Not current: a candidate still being tried, or one that was aborted.
pub const NOT_CURRENT: &str = "NOT EXISTS (SELECT 1 FROM rollouts r WHERE r.service = p.service AND r.version = p.version AND r.state <> 'promoted')";

/// Serialises every change to `service`'s versions and rollouts (an apply, a promote, an
/// abort) until `tx` ends.
pub async fn lock_service(tx: &impl GenericClient, service: &str) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&service]).await.map(drop)
}

/// Starts a rollout of `version` (just inserted) inside `tx`.
pub async fn start(
    tx: &impl GenericClient,
    service: &str,
    version: u64,
    base_version: u64,
    author: &str,
    plan: &NewRollout,
) -> Result<Rollout, Error> {
    let rollout = plan.begin(service, version, base_version, author);
    insert_in(tx, &rollout).await?;
    Ok(rollout)
}

/// Writes a rollout as it is (`start`, and `copy-store`).
pub async fn insert_in(tx: &impl GenericClient, r: &Rollout) -> Result<(), Error> {
    tx.execute(
        &format!("INSERT INTO rollouts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
        &[
            &r.service,
            &big(r.version),
            &big(r.base_version),
            &r.mode.as_str(),
            &r.state.as_str(),
            &i32::try_from(r.canary_percent).unwrap_or(100),
            &json(&r.canary_instances),
            &json(&r.abort_if),
            &r.author,
            &r.started_unix_ms,
            &r.ended_unix_ms,
            &r.ended_by,
            &r.reason,
        ],
    )
    .await?;
    Ok(())
}

/// Rollouts, newest first, of one service or all.
pub async fn list(c: &Object, service: Option<&str>) -> Result<Vec<Rollout>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM rollouts WHERE ($1::TEXT IS NULL OR service = $1)
                 ORDER BY version DESC"
            ),
            &[&service],
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

/// The service's running rollout, if one is.
pub async fn running(c: &impl GenericClient, service: &str) -> Result<Option<Rollout>, Error> {
    let found = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM rollouts WHERE service = $1 AND state IN ('shadow', 'canary')"),
            &[&service],
        )
        .await?;
    Ok(found.map(|r| row(&r)))
}

/// Ends `r` inside `tx` (which holds the service's lock); None when it was not running.
pub async fn end_in(
    tx: &impl GenericClient,
    r: &Rollout,
    state: RolloutState,
    by: &str,
    reason: &str,
) -> Result<Option<Rollout>, Error> {
    let ended = tx
        .query_opt(
            &format!(
                "UPDATE rollouts SET state = $3, ended_unix_ms = $4, ended_by = $5, reason = $6
                 WHERE service = $1 AND version = $2 AND state IN ('shadow', 'canary') RETURNING {COLUMNS}"
            ),
            &[&r.service, &big(r.version), &state.as_str(), &now_unix_ms(), &by, &reason],
        )
        .await?
        .map(|r| row(&r));
    Ok(ended)
}

/// Ends a running rollout; None when it is not running (already ended, or none).
pub async fn end(
    c: &mut Object,
    service: &str,
    version: u64,
    state: RolloutState,
    by: &str,
    reason: &str,
) -> Result<Option<Rollout>, Error> {
    let tx = c.transaction().await?;
    // The same lock as an apply's: a promote and an apply of the service never interleave.
    lock_service(&tx, service).await?;
    let ended = match running(&tx, service).await?.filter(|r| r.version == version) {
        Some(r) => end_in(&tx, &r, state, by, reason).await?,
        None => None,
    };
    if ended.is_some() {
        notify(&tx, &format!("policy:{service}")).await?;
    }
    tx.commit().await?;
    Ok(ended)
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn row(r: &Row) -> Rollout {
    let list = |i: usize| serde_json::from_str::<Vec<String>>(r.get(i)).unwrap_or_default();
    Rollout {
        service: r.get(0),
        version: small(r.get(1)),
        base_version: small(r.get(2)),
        mode: RolloutMode::parse(r.get(3)).unwrap_or(RolloutMode::Shadow),
        state: RolloutState::parse(r.get(4)).unwrap_or(RolloutState::Aborted),
        canary_percent: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
        canary_instances: list(6),
        abort_if: list(7),
        author: r.get(8),
        started_unix_ms: r.get(9),
        ended_unix_ms: r.get(10),
        ended_by: r.get(11),
        reason: r.get(12),
    }
}

/// See `Store::add_shadow_counts`: one statement for the batch.
pub async fn add_shadow_counts(c: &Object, service: &str, counts: &[ShadowCount]) -> Result<(), Error> {
    let text = |f: fn(&ShadowCount) -> &str| counts.iter().map(f).collect::<Vec<_>>();
    c.execute(
        "INSERT INTO shadow_counts (service, version, denied, route, rule, code, client_id, count, examples)
         SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
                                  $8::BIGINT[], $9::TEXT[])
         ON CONFLICT (service, version, denied, route, rule, code, client_id)
         DO UPDATE SET count = shadow_counts.count + excluded.count",
        &[
            &service,
            &counts.iter().map(|s| big(s.version)).collect::<Vec<_>>(),
            &counts.iter().map(|s| s.denied).collect::<Vec<_>>(),
            &text(|s| &s.route),
            &text(|s| &s.rule),
            &text(|s| &s.code),
            &text(|s| &s.client_id),
            &counts.iter().map(|s| big(s.count)).collect::<Vec<_>>(),
            &counts.iter().map(|s| json(&s.examples)).collect::<Vec<_>>(),
        ],
    )
    .await?;
    Ok(())
}

/// See `Store::shadow_counts`.
pub async fn shadow_counts(c: &Object, service: &str, version: u64) -> Result<Vec<ShadowCount>, Error> {
    let rows = c
        .query(
            "SELECT version, denied, route, rule, code, client_id, count, examples FROM shadow_counts
             WHERE service = $1 AND version = $2 ORDER BY count DESC, route, rule, code, client_id",
            &[&service, &big(version)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ShadowCount {
            version: small(r.get(0)),
            denied: r.get(1),
            route: r.get(2),
            rule: r.get(3),
            code: r.get(4),
            client_id: r.get(5),
            count: small(r.get(6)),
            examples: serde_json::from_str(r.get(7)).unwrap_or_default(),
        })
        .collect())
}
