//! The deny log in PostgreSQL, as in SQLite: every refusal sidecars report, a report per
//! statement, bounded by age and by row count, pruned with inserts at most every few
//! seconds per replica.

use std::sync::atomic::{AtomicI64, Ordering};

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::{
    Denial, DenialBucket, DenialFilter, DenialGroup, Retention, StoredDenial, group_id, headers_from_json,
    headers_to_json,
};
use crate::store::postgres::bigint::{big, small};

const WHERE: &str = "WHERE ($1 = '' OR service = $1) AND unix_ms >= $2 AND ($3 = '' OR route = $3)
                     AND ($4 = '' OR rule = $4) AND ($5 = '' OR client_id = $5)
                     AND ($7 = '' OR request_id = $7)
                     AND CASE $8::BIGINT WHEN 0 THEN NOT shadow
                                         WHEN 1 THEN shadow AND policy_version = $9
                                         ELSE shadow_allowed_by = $9 END";
const PRUNE_EVERY_MS: i64 = 5_000;

fn denial_row(r: &Row) -> StoredDenial {
    StoredDenial {
        service: r.get(0),
        instance: r.get(1),
        denial: Denial {
            unix_ms: r.get(2),
            request_id: r.get(3),
            trace_id: r.get(4),
            route: r.get(5),
            rule: r.get(6),
            code: r.get(7),
            status: u32::try_from(r.get::<_, i32>(8)).unwrap_or(0),
            client_id: r.get(9),
            client_ip: r.get(10),
            method: r.get(11),
            host: r.get(12),
            path: r.get(13),
            dry_run: r.get(14),
            request_id_from_client: r.get(15),
            policy_version: small(r.get(16)),
            headers: headers_from_json(r.get(17)),
            auth_provider: r.get(18),
            key_id: r.get(19),
            shadow: r.get(20),
            shadow_allowed_by: small(r.get(21)),
        },
    }
}

/// Stores one sidecar's reported refusals, then prunes if it is time.
pub async fn insert(
    c: &mut Object,
    service: &str,
    instance: &str,
    denials: &[Denial],
    retention: Retention,
    pruned_at: &AtomicI64,
) -> Result<(), Error> {
    let text = |f: fn(&Denial) -> &str| denials.iter().map(f).collect::<Vec<_>>();
    let flag = |f: fn(&Denial) -> bool| denials.iter().map(f).collect::<Vec<_>>();
    let tx = c.transaction().await?;
    tx.execute(
        "INSERT INTO denials (service, instance, unix_ms, request_id, trace_id, route, rule, code, status, client_id,
                              client_ip, method, host, path, dry_run, request_id_from_client, policy_version,
                              headers, auth_provider, key_id, shadow, shadow_allowed_by)
         SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                                      $9::INTEGER[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], $14::TEXT[],
                                      $15::BOOLEAN[], $16::BOOLEAN[], $17::BIGINT[], $18::TEXT[], $19::TEXT[],
                                      $20::TEXT[], $21::BOOLEAN[], $22::BIGINT[])",
        &[
            &service,
            &instance,
            &denials.iter().map(|d| d.unix_ms).collect::<Vec<_>>(),
            &text(|d| &d.request_id),
            &text(|d| &d.trace_id),
            &text(|d| &d.route),
            &text(|d| &d.rule),
            &text(|d| &d.code),
            &denials.iter().map(|d| i32::try_from(d.status).unwrap_or(i32::MAX)).collect::<Vec<_>>(),
            &text(|d| &d.client_id),
            &text(|d| &d.client_ip),
            &text(|d| &d.method),
            &text(|d| &d.host),
            &text(|d| &d.path),
            &flag(|d| d.dry_run),
            &flag(|d| d.request_id_from_client),
            &denials.iter().map(|d| big(d.policy_version)).collect::<Vec<_>>(),
            &denials.iter().map(|d| headers_to_json(&d.headers)).collect::<Vec<_>>(),
            &text(|d| &d.auth_provider),
            &text(|d| &d.key_id),
            &flag(|d| d.shadow),
            &denials.iter().map(|d| big(d.shadow_allowed_by)).collect::<Vec<_>>(),
        ],
    )
    .await?;
    let now = now_unix_ms();
    if now - pruned_at.load(Ordering::Relaxed) >= PRUNE_EVERY_MS {
        pruned_at.store(now, Ordering::Relaxed);
        tx.execute("DELETE FROM denials WHERE unix_ms < $1", &[&(now - retention.max_age_ms)]).await?;
        // Past the row cap the oldest go, the review queue's and a shadow's each in its own.
        for (shadow, cap) in [(false, retention.max_rows), (true, retention.shadow_rows())] {
            tx.execute(
                "DELETE FROM denials WHERE shadow = $1
                 AND id <= (SELECT id FROM denials WHERE shadow = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                &[&shadow, &cap],
            )
            .await?;
        }
    }
    tx.commit().await
}

/// Refusals matching `f`, newest first.
pub async fn list(c: &Object, f: &DenialFilter) -> Result<Vec<StoredDenial>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT service, instance, unix_ms, request_id, trace_id, route, rule, code, status, client_id,
                        client_ip, method, host, path, dry_run, request_id_from_client, policy_version, headers,
                        auth_provider, key_id, shadow, shadow_allowed_by
                 FROM denials {WHERE} ORDER BY id DESC LIMIT $6"
            ),
            &args(f, &i64::from(f.limit.max(1)), &f.shadow.code()),
        )
        .await?;
    Ok(rows.iter().map(denial_row).collect())
}

/// Refusals matching `f`, counted by service, route, rule, reason and client, most first.
pub async fn groups(c: &Object, f: &DenialFilter) -> Result<Vec<DenialGroup>, Error> {
    let order = f.group_order.sql();
    let rows = c
        .query(
            &format!(
                "SELECT service, route, rule, code, client_id, COUNT(*), MAX(unix_ms), COUNT(*) FILTER (WHERE dry_run),
                        MIN(unix_ms), (ARRAY_AGG(request_id ORDER BY unix_ms DESC))[1]
                 FROM denials {WHERE} GROUP BY service, route, rule, code, client_id
                 ORDER BY {order} LIMIT $6"
            ),
            &args(f, &i64::from(f.limit.max(1)), &f.shadow.code()),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DenialGroup {
            service: r.get(0),
            route: r.get(1),
            rule: r.get(2),
            code: r.get(3),
            client_id: r.get(4),
            count: small(r.get(5)),
            first_unix_ms: r.get(8),
            last_unix_ms: r.get(6),
            dry_run: small(r.get(7)),
            example_request_id: r.get(9),
        })
        .collect())
}

/// Refusals matching `f`, counted by group and `bucket_ms`-long time bucket.
pub async fn buckets(c: &Object, f: &DenialFilter, bucket_ms: i64) -> Result<Vec<DenialBucket>, Error> {
    let shadow = f.shadow.code();
    let limit = i64::from(f.limit.max(1));
    let bucket = bucket_ms.max(1);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args(f, &limit, &shadow).to_vec();
    params.push(&bucket);
    let rows = c
        .query(
            &format!(
                "SELECT service, route, rule, code, client_id, (unix_ms / $10) * $10, COUNT(*)
                 FROM denials {WHERE} GROUP BY 1, 2, 3, 4, 5, 6 LIMIT $6"
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DenialBucket {
            group: group_id(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)),
            start_unix_ms: r.get(5),
            count: small(r.get(6)),
        })
        .collect())
}

/// The parameters of `WHERE`, in order.
fn args<'a>(
    f: &'a DenialFilter,
    limit: &'a i64,
    shadow: &'a (i64, i64),
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 9] {
    [&f.service, &f.since_unix_ms, &f.route, &f.rule, &f.client, limit, &f.request_id, &shadow.0, &shadow.1]
}
