//! Decision samples in SQLite: what sidecars sampled of their requests, for
//! `apply --preview`. Bounded per service (the newest `max_rows`) and by age; a service's
//! samples are pruned after its inserts, at most every few seconds.

use std::sync::LazyLock;

use rusqlite::{Connection, Row, params};

use crate::clock::now_unix_ms;
use crate::store::model::{Sample, SampleFilter, SampleRetention, StoredSample, headers_from_json, headers_to_json};
use crate::store::prune::PruneClock;
use crate::store::sqlite::transaction::write;

/// When each service's samples were last pruned, shared by every handle.
static PRUNED: LazyLock<PruneClock> = LazyLock::new(PruneClock::default);

fn sample_row(r: &Row<'_>) -> Result<StoredSample, rusqlite::Error> {
    let names: String = r.get(13)?;
    Ok(StoredSample {
        service: r.get(0)?,
        instance: r.get(1)?,
        sample: Sample {
            unix_ms: r.get(2)?,
            request_id: r.get(3)?,
            method: r.get(4)?,
            host: r.get(5)?,
            path: r.get(6)?,
            client_ip: r.get(7)?,
            client_id: r.get(8)?,
            auth_provider: r.get(9)?,
            key_id: r.get(10)?,
            headers: headers_from_json(&r.get::<_, String>(11)?),
            route: r.get(12)?,
            credential_headers: serde_json::from_str(&names).unwrap_or_default(),
            decision: r.get(14)?,
            rule: r.get(15)?,
            code: r.get(16)?,
            status: r.get(17)?,
            policy_version: r.get(18)?,
            weight: r.get(19)?,
            plan: r.get(20)?,
        },
    })
}

/// Stores one sidecar's samples, then prunes if it is time.
pub fn insert(
    conn: &mut Connection,
    service: &str,
    instance: &str,
    samples: &[Sample],
    retention: SampleRetention,
) -> Result<(), rusqlite::Error> {
    let tx = write(conn)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO samples (service, instance, unix_ms, request_id, method, host, path, client_ip, client_id,
                                  auth_provider, key_id, headers, route, credential_headers, decision, rule, code,
                                  status, policy_version, weight, plan)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                     ?21)",
        )?;
        for s in samples {
            stmt.execute(params![
                service,
                instance,
                s.unix_ms,
                s.request_id,
                s.method,
                s.host,
                s.path,
                s.client_ip,
                s.client_id,
                s.auth_provider,
                s.key_id,
                headers_to_json(&s.headers),
                s.route,
                serde_json::to_string(&s.credential_headers).unwrap_or_else(|_| "[]".into()),
                s.decision,
                s.rule,
                s.code,
                s.status,
                s.policy_version,
                s.weight,
                s.plan
            ])?;
        }
    }
    tx.commit()?;
    // Apart from the insert: a slow prune never costs the batch.
    let now = now_unix_ms();
    if PRUNED.due(service, now) {
        let tx = write(conn)?;
        tx.execute("DELETE FROM samples WHERE unix_ms < ?1", [now - retention.max_age_ms])?;
        // The newest `max_rows` of this service stay.
        tx.execute(
            "DELETE FROM samples WHERE service = ?1 AND id <= (
                 SELECT id FROM samples WHERE service = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            params![service, retention.max_rows],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Samples matching `f`, newest first.
pub fn list(c: &Connection, f: &SampleFilter) -> Result<Vec<StoredSample>, rusqlite::Error> {
    let mut stmt = c.prepare(
        "SELECT service, instance, unix_ms, request_id, method, host, path, client_ip, client_id, auth_provider,
                key_id, headers, route, credential_headers, decision, rule, code, status, policy_version, weight,
                plan
         FROM samples WHERE (?1 = '' OR service = ?1) AND unix_ms >= ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    stmt.query_map(params![f.service, f.since_unix_ms, f.limit.max(1)], sample_row)?.collect()
}
