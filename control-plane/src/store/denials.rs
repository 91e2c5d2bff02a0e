//! The deny log: every request a sidecar refused (or would have, in dry run), as reported,
//! kept for review (`wardenctl denials`). Bounded two ways: rows older than the retention
//! age go, and past the row cap the oldest go; pruning runs with inserts, at most every
//! few seconds.

use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Row, params};
use warden_proto::v1 as pb;

use super::{Store, StoreError, now_unix_ms};

/// How much of the deny log is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age_ms: i64,
    pub max_rows: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age_ms: 7 * 24 * 3_600_000, max_rows: 100_000 }
    }
}

/// What `denials` asks for; empty strings and 0 match everything.
#[derive(Debug, Clone, Default)]
pub struct DenialFilter {
    pub service: String,
    pub since_unix_ms: i64,
    pub route: String,
    pub rule: String,
    pub client: String,
    pub limit: u32,
}

const WHERE: &str = "WHERE (?1 = '' OR service = ?1) AND unix_ms >= ?2 AND (?3 = '' OR route = ?3)
                     AND (?4 = '' OR rule = ?4) AND (?5 = '' OR client_id = ?5)";

/// When the log was last pruned (ms), shared by every handle.
static PRUNED_AT: AtomicI64 = AtomicI64::new(0);
const PRUNE_EVERY_MS: i64 = 5_000;

fn denial_row(r: &Row<'_>) -> Result<pb::StoredDenial, rusqlite::Error> {
    Ok(pb::StoredDenial {
        service: r.get(0)?,
        instance: r.get(1)?,
        record: Some(pb::DenyRecord {
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
        }),
    })
}

impl Store {
    /// Stores one sidecar's reported refusals, then prunes if it is time.
    pub async fn insert_denials(
        &self,
        service: &str,
        instance: &str,
        records: Vec<pb::DenyRecord>,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let (service, instance) = (service.to_owned(), instance.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO denials (service, instance, unix_ms, request_id, trace_id, route, rule, code, status,
                                          client_id, client_ip, method, host, path, dry_run, request_id_from_client)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )?;
                for d in &records {
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
                        d.request_id_from_client
                    ])?;
                }
            }
            let now = now_unix_ms();
            if now - PRUNED_AT.load(Ordering::Relaxed) >= PRUNE_EVERY_MS {
                PRUNED_AT.store(now, Ordering::Relaxed);
                tx.execute("DELETE FROM denials WHERE unix_ms < ?1", [now - retention.max_age_ms])?;
                tx.execute("DELETE FROM denials WHERE id <= (SELECT MAX(id) FROM denials) - ?1", [retention.max_rows])?;
            }
            tx.commit()
        })
        .await
    }

    /// Refusals matching `f`, newest first.
    pub async fn denials(&self, f: DenialFilter) -> Result<Vec<pb::StoredDenial>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT service, instance, unix_ms, request_id, trace_id, route, rule, code, status, client_id,
                        client_ip, method, host, path, dry_run, request_id_from_client
                 FROM denials {WHERE} ORDER BY id DESC LIMIT ?6"
            ))?;
            stmt.query_map(params![f.service, f.since_unix_ms, f.route, f.rule, f.client, f.limit.max(1)], denial_row)?
                .collect()
        })
        .await
    }

    /// Refusals matching `f`, counted by service, route, rule, reason and client, most first.
    pub async fn denial_groups(&self, f: DenialFilter) -> Result<Vec<pb::DenialGroup>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT service, route, rule, code, client_id, COUNT(*), MAX(unix_ms), SUM(dry_run)
                 FROM denials {WHERE} GROUP BY service, route, rule, code, client_id
                 ORDER BY COUNT(*) DESC, MAX(unix_ms) DESC LIMIT ?6"
            ))?;
            stmt.query_map(params![f.service, f.since_unix_ms, f.route, f.rule, f.client, f.limit.max(1)], |r| {
                Ok(pb::DenialGroup {
                    service: r.get(0)?,
                    route: r.get(1)?,
                    rule: r.get(2)?,
                    code: r.get(3)?,
                    client_id: r.get(4)?,
                    count: r.get(5)?,
                    last_unix_ms: r.get(6)?,
                    dry_run: r.get(7)?,
                })
            })?
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(at: i64, rule: &str, client: &str) -> pb::DenyRecord {
        pb::DenyRecord {
            unix_ms: at,
            request_id: format!("r{at}"),
            rule: rule.into(),
            code: "rate_limited".into(),
            client_id: client.into(),
            status: 429,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_log_is_filtered_grouped_and_kept_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = now_unix_ms();
        let keep = Retention { max_age_ms: 60_000, max_rows: 3 };
        let records = vec![denial(now - 120_000, "old", "a"), denial(now, "l", "a"), denial(now, "l", "b")];
        PRUNED_AT.store(0, Ordering::Relaxed);
        store.insert_denials("orders", "i1", records, keep).await.unwrap();
        let all = store.denials(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 2, "older than the retention age: gone");
        let only_b = DenialFilter { client: "b".into(), limit: 10, ..Default::default() };
        assert_eq!(store.denials(only_b).await.unwrap().len(), 1);

        PRUNED_AT.store(0, Ordering::Relaxed);
        let more = (0..5).map(|i| denial(now + i, "l", "a")).collect();
        store.insert_denials("orders", "i1", more, keep).await.unwrap();
        let all = store.denials(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 3, "past the row cap the oldest go");
        assert_eq!(all[0].record.as_ref().unwrap().request_id, format!("r{}", now + 4), "newest first");
        let groups = store.denial_groups(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!((groups[0].client_id.as_str(), groups[0].count), ("a", 3));
    }
}
