//! Decision samples in PostgreSQL, as in SQLite: a report's samples in one statement, an
//! unlogged table (an hour of samples is worth less than the write-ahead log they would
//! cost; a crash loses them, and sidecars send new ones every second), bounded per
//! service and by age: a service's samples are pruned after its inserts, at most every
//! few seconds per replica, in a transaction of their own.

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::{Sample, SampleFilter, SampleRetention, StoredSample, headers_from_json, headers_to_json};
use crate::store::postgres::bigint::{big, small};
use crate::store::prune::PruneClock;

fn sample_row(r: &Row) -> StoredSample {
    StoredSample {
        service: r.get(0),
        instance: r.get(1),
        sample: Sample {
            unix_ms: r.get(2),
            request_id: r.get(3),
            method: r.get(4),
            host: r.get(5),
            path: r.get(6),
            client_ip: r.get(7),
            client_id: r.get(8),
            auth_provider: r.get(9),
            key_id: r.get(10),
            headers: headers_from_json(r.get(11)),
            route: r.get(12),
            credential_headers: serde_json::from_str(r.get(13)).unwrap_or_default(),
            decision: r.get(14),
            rule: r.get(15),
            code: r.get(16),
            status: u32::try_from(r.get::<_, i32>(17)).unwrap_or(0),
            policy_version: small(r.get(18)),
            weight: r.get(19),
            plan: r.get(20),
        },
    }
}

/// Stores one sidecar's samples, then prunes if it is time.
pub async fn insert(
    c: &mut Object,
    service: &str,
    instance: &str,
    samples: &[Sample],
    retention: SampleRetention,
    pruned: &PruneClock,
) -> Result<(), Error> {
    let text = |f: fn(&Sample) -> &str| samples.iter().map(f).collect::<Vec<_>>();
    let tx = c.transaction().await?;
    tx.execute(
        "INSERT INTO samples (service, instance, unix_ms, request_id, method, host, path, client_ip, client_id,
                              auth_provider, key_id, headers, route, credential_headers, decision, rule, code, status,
                              policy_version, weight, plan)
         SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                                      $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], $14::TEXT[],
                                      $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::INTEGER[], $19::BIGINT[],
                                      $20::DOUBLE PRECISION[], $21::TEXT[])",
        &[
            &service,
            &instance,
            &samples.iter().map(|s| s.unix_ms).collect::<Vec<_>>(),
            &text(|s| &s.request_id),
            &text(|s| &s.method),
            &text(|s| &s.host),
            &text(|s| &s.path),
            &text(|s| &s.client_ip),
            &text(|s| &s.client_id),
            &text(|s| &s.auth_provider),
            &text(|s| &s.key_id),
            &samples.iter().map(|s| headers_to_json(&s.headers)).collect::<Vec<_>>(),
            &text(|s| &s.route),
            &samples
                .iter()
                .map(|s| serde_json::to_string(&s.credential_headers).unwrap_or_else(|_| "[]".into()))
                .collect::<Vec<_>>(),
            &text(|s| &s.decision),
            &text(|s| &s.rule),
            &text(|s| &s.code),
            &samples.iter().map(|s| i32::try_from(s.status).unwrap_or(i32::MAX)).collect::<Vec<_>>(),
            &samples.iter().map(|s| big(s.policy_version)).collect::<Vec<_>>(),
            &samples.iter().map(|s| s.weight).collect::<Vec<_>>(),
            &text(|s| &s.plan),
        ],
    )
    .await?;
    tx.commit().await?;
    // Apart from the insert: a slow prune never costs the batch.
    let now = now_unix_ms();
    if pruned.due(service, now) {
        let tx = c.transaction().await?;
        tx.execute("DELETE FROM samples WHERE unix_ms < $1", &[&(now - retention.max_age_ms)]).await?;
        // The newest `max_rows` of this service stay.
        tx.execute(
            "DELETE FROM samples WHERE service = $1 AND id <= (
                 SELECT id FROM samples WHERE service = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
            &[&service, &retention.max_rows],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Samples matching `f`, newest first.
pub async fn list(c: &Object, f: &SampleFilter) -> Result<Vec<StoredSample>, Error> {
    let rows = c
        .query(
            "SELECT service, instance, unix_ms, request_id, method, host, path, client_ip, client_id, auth_provider,
                    key_id, headers, route, credential_headers, decision, rule, code, status, policy_version, weight,
                    plan
             FROM samples WHERE ($1 = '' OR service = $1) AND unix_ms >= $2 ORDER BY id DESC LIMIT $3",
            &[&f.service, &f.since_unix_ms, &i64::from(f.limit.max(1))],
        )
        .await?;
    Ok(rows.iter().map(sample_row).collect())
}
