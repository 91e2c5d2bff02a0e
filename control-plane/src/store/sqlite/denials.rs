//! The deny log in SQLite: every request a sidecar refused (or would have, in dry run),
//! kept for review (`wardenctl denials`). Bounded two ways: rows older than the retention
//! age go, and past the row cap the oldest go; pruning runs with inserts, at most every
//! few seconds.

use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Connection, Row, Transaction, params};

use crate::clock::now_unix_ms;
use crate::store::model::{
    Denial, DenialBucket, DenialFilter, DenialGroup, Retention, StoredDenial, group_id, headers_from_json,
    headers_to_json,
};
use crate::store::sqlite::transaction::write;

const WHERE: &str = "WHERE (?1 = '' OR service = ?1) AND unix_ms >= ?2 AND (?3 = '' OR route = ?3)
                     AND (?4 = '' OR rule = ?4) AND (?5 = '' OR client_id = ?5)
                     AND (?7 = '' OR request_id = ?7)
                     AND CASE ?8 WHEN 0 THEN shadow = 0
                                 WHEN 1 THEN shadow = 1 AND policy_version = ?9
                                 ELSE shadow_allowed_by = ?9 END";

/// When the log was last pruned (ms), shared by every handle.
static PRUNED_AT: AtomicI64 = AtomicI64::new(0);
const PRUNE_EVERY_MS: i64 = 5_000;

fn denial_row(r: &Row<'_>) -> Result<StoredDenial, rusqlite::Error> {
    Ok(StoredDenial {
        service: r.get(0)?,
        instance: r.get(1)?,
        denial: Denial {
            unix_ms: r.get(2)?,
            request_id: r.get(3)?,
            trace_id: r.get(4)?,
            route: r.get(5)?,
            rule: r.get(6)?,
            code: r.get(7)?,
            status: r.get(8)?,
            client_id: r.get(9)?,
            client_ip: r.get(10)?,
            method: r.get(11)?,
            host: r.get(12)?,
            path: r.get(13)?,
            dry_run: r.get(14)?,
            request_id_from_client: r.get(15)?,
            policy_version: r.get(16)?,
            headers: headers_from_json(&r.get::<_, String>(17)?),
            auth_provider: r.get(18)?,
            key_id: r.get(19)?,
            shadow: r.get(20)?,
            shadow_allowed_by: r.get(21)?,
        },
    })
}

/// Stores one sidecar's reported refusals, then prunes if it is time.
pub fn insert(
    conn: &mut Connection,
    service: &str,
    instance: &str,
    denials: &[Denial],
    retention: Retention,
) -> Result<(), rusqlite::Error> {
    let tx = write(conn)?;
    insert_in(&tx, service, instance, denials)?;
    let now = now_unix_ms();
    if now - PRUNED_AT.load(Ordering::Relaxed) >= PRUNE_EVERY_MS {
        PRUNED_AT.store(now, Ordering::Relaxed);
        tx.execute("DELETE FROM denials WHERE unix_ms < ?1", [now - retention.max_age_ms])?;
        // Past the row cap the oldest go, the review queue's and a shadow's each in its own.
        for (shadow, cap) in [(false, retention.max_rows), (true, retention.shadow_rows())] {
            tx.execute(
                "DELETE FROM denials WHERE shadow = ?1
                 AND id <= (SELECT id FROM denials WHERE shadow = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![shadow, cap],
            )?;
        }
    }
    tx.commit()
}

/// Inserts one sidecar's refusals inside `tx`.
pub fn insert_in(
    tx: &Transaction<'_>,
    service: &str,
    instance: &str,
    denials: &[Denial],
) -> Result<(), rusqlite::Error> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO denials (service, instance, unix_ms, request_id, trace_id, route, rule, code, status,
                              client_id, client_ip, method, host, path, dry_run, request_id_from_client,
                              policy_version, headers, auth_provider, key_id, shadow, shadow_allowed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    )?;
    for d in denials {
        stmt.execute(params![
            service,
            instance,
            d.unix_ms,
            d.request_id,
            d.trace_id,
            d.route,
            d.rule,
            d.code,
            d.status,
            d.client_id,
            d.client_ip,
            d.method,
            d.host,
            d.path,
            d.dry_run,
            d.request_id_from_client,
            d.policy_version,
            headers_to_json(&d.headers),
            d.auth_provider,
            d.key_id,
            d.shadow,
            d.shadow_allowed_by
        ])?;
    }
    Ok(())
}

/// Refusals matching `f`, newest first.
pub fn list(c: &Connection, f: &DenialFilter) -> Result<Vec<StoredDenial>, rusqlite::Error> {
    let mut stmt = c.prepare(&format!(
        "SELECT service, instance, unix_ms, request_id, trace_id, route, rule, code, status, client_id,
                client_ip, method, host, path, dry_run, request_id_from_client, policy_version, headers,
                auth_provider, key_id, shadow, shadow_allowed_by
         FROM denials {WHERE} ORDER BY id DESC LIMIT ?6"
    ))?;
    let (shadow, version) = f.shadow.code();
    stmt.query_map(
        params![f.service, f.since_unix_ms, f.route, f.rule, f.client, f.limit.max(1), f.request_id, shadow, version],
        denial_row,
    )?
    .collect()
}

/// Refusals matching `f`, counted by service, route, rule, reason and client, most first.
pub fn groups(c: &Connection, f: &DenialFilter) -> Result<Vec<DenialGroup>, rusqlite::Error> {
    let order = f.group_order.sql();
    let mut stmt = c.prepare(&format!(
        // The newest refusal's request id: the largest of time (zero-padded, so text order
        // is time order) followed by the id, with the time cut off again.
        "SELECT service, route, rule, code, client_id, COUNT(*), MAX(unix_ms), SUM(dry_run), MIN(unix_ms),
                substr(MAX(printf('%020d', unix_ms) || request_id), 21)
         FROM denials {WHERE} GROUP BY service, route, rule, code, client_id
         ORDER BY {order} LIMIT ?6"
    ))?;
    let (shadow, version) = f.shadow.code();
    let args =
        params![f.service, f.since_unix_ms, f.route, f.rule, f.client, f.limit.max(1), f.request_id, shadow, version];
    stmt.query_map(args, |r| {
        Ok(DenialGroup {
            service: r.get(0)?,
            route: r.get(1)?,
            rule: r.get(2)?,
            code: r.get(3)?,
            client_id: r.get(4)?,
            count: r.get(5)?,
            first_unix_ms: r.get(8)?,
            last_unix_ms: r.get(6)?,
            dry_run: r.get(7)?,
            example_request_id: r.get(9)?,
        })
    })?
    .collect()
}

/// Refusals matching `f`, counted by group and `bucket_ms`-long time bucket.
pub fn buckets(c: &Connection, f: &DenialFilter, bucket_ms: i64) -> Result<Vec<DenialBucket>, rusqlite::Error> {
    let mut stmt = c.prepare(&format!(
        "SELECT service, route, rule, code, client_id, (unix_ms / ?10) * ?10, COUNT(*)
         FROM denials {WHERE} GROUP BY 1, 2, 3, 4, 5, 6 LIMIT ?6"
    ))?;
    let (shadow, version) = f.shadow.code();
    let args = params![
        f.service,
        f.since_unix_ms,
        f.route,
        f.rule,
        f.client,
        f.limit.max(1),
        f.request_id,
        shadow,
        version,
        bucket_ms.max(1)
    ];
    stmt.query_map(args, |r| {
        Ok(DenialBucket {
            group: group_id(
                &r.get::<_, String>(0)?,
                &r.get::<_, String>(1)?,
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
                &r.get::<_, String>(4)?,
            ),
            start_unix_ms: r.get(5)?,
            count: r.get(6)?,
        })
    })?
    .collect()
}
