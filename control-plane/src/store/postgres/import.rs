//! `copy-store` into PostgreSQL: every row as it was written, in one transaction, into a
//! database that holds no policy version and no key yet.

use deadpool_postgres::Object;
use tokio_postgres::error::Error;

use crate::store::model::{StoreCopy, headers_to_json};
use crate::store::postgres::bigint::big;
use crate::store::postgres::sidecars::save_in;

/// See `Store::import`. A destination that is not empty is refused (a unique violation
/// raised in the transaction, so nothing is written).
pub async fn import(c: &mut Object, data: &StoreCopy) -> Result<(), Error> {
    let tx = c.transaction().await?;
    tx.batch_execute(
        "DO $$ BEGIN
           IF EXISTS (SELECT 1 FROM policy_versions) OR EXISTS (SELECT 1 FROM api_keys) THEN
             RAISE EXCEPTION 'the destination store already holds policy versions or keys';
           END IF;
         END $$",
    )
    .await?;
    let insert = tx
        .prepare(
            "INSERT INTO policy_versions (service, version, author, created_unix_ms, message, content_hash, source_yaml)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    for v in &data.versions {
        tx.execute(
            &insert,
            &[&v.service, &big(v.version), &v.author, &v.created_unix_ms, &v.message, &v.content_hash, &v.source_yaml],
        )
        .await?;
    }
    let insert = tx
        .prepare(
            "INSERT INTO api_keys (id, service, client, plan, sha256, prefix, created_unix_ms, expires_unix_ms,
                                   revoked_unix_ms, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)",
        )
        .await?;
    for k in &data.keys {
        tx.execute(
            &insert,
            &[
                &k.id,
                &k.service,
                &k.client,
                &k.plan,
                &k.sha256,
                &k.prefix,
                &k.created_unix_ms,
                &k.expires_unix_ms,
                &k.revoked_unix_ms,
            ],
        )
        .await?;
    }
    let insert = tx
        .prepare("INSERT INTO secrets (id, name, value, created_unix_ms, expires_unix_ms) VALUES ($1, $2, $3, $4, $5)")
        .await?;
    for s in &data.secrets {
        tx.execute(&insert, &[&s.id, &s.name, &s.value, &s.created_unix_ms, &s.expires_unix_ms]).await?;
    }
    let insert = tx
        .prepare(
            "INSERT INTO denials (service, instance, unix_ms, request_id, trace_id, route, rule, code, status,
                                  client_id, client_ip, method, host, path, dry_run, request_id_from_client,
                                  policy_version, headers, auth_provider, key_id, shadow, shadow_allowed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                     $21, $22)",
        )
        .await?;
    // Oldest first, so the copy's row order (the deny log's "newest first") is the same.
    for s in data.denials.iter().rev() {
        let d = &s.denial;
        let status = i32::try_from(d.status).unwrap_or(i32::MAX);
        tx.execute(
            &insert,
            &[
                &s.service,
                &s.instance,
                &d.unix_ms,
                &d.request_id,
                &d.trace_id,
                &d.route,
                &d.rule,
                &d.code,
                &status,
                &d.client_id,
                &d.client_ip,
                &d.method,
                &d.host,
                &d.path,
                &d.dry_run,
                &d.request_id_from_client,
                &big(d.policy_version),
                &headers_to_json(&d.headers),
                &d.auth_provider,
                &d.key_id,
                &d.shadow,
                &big(d.shadow_allowed_by),
            ],
        )
        .await?;
    }
    for r in &data.rollouts {
        crate::store::postgres::rollouts::insert_in(&tx, r).await?;
    }
    for m in &data.marks {
        crate::store::postgres::console::set_mark(&tx, m).await?;
    }
    if !data.console_key.is_empty() {
        crate::store::postgres::console::replace_key(&tx, &data.console_key).await?;
    }
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('credentials', 1)
         ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, 1)",
        &[],
    )
    .await?;
    save_in(&tx, &data.sidecars).await?;
    tx.commit().await
}
