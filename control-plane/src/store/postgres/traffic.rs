//! `wardenctl top` from any replica: each replica upserts the latest per-route windows of
//! the sidecars connected to it (one statement every few seconds) into an unlogged table,
//! and reads everyone's fresh rows. Old rows are swept with the writes.

use deadpool_postgres::Object;
use tokio_postgres::error::Error;

use crate::store::model::TrafficRow;
use crate::store::postgres::bigint::{big, small};

/// Rows older than this are deleted on the next save.
const KEEP_MS: i64 = 60_000;

/// See `Store::save_traffic`.
pub async fn save(c: &mut Object, rows: &[TrafficRow]) -> Result<(), Error> {
    let tx = c.transaction().await?;
    let text = |f: fn(&TrafficRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&TrafficRow) -> u64| rows.iter().map(|r| big(f(r))).collect::<Vec<_>>();
    // Arrays of arrays must be rectangular: the buckets go as text and are parsed back.
    let buckets: Vec<String> = rows
        .iter()
        .map(|r| format!("{{{}}}", r.latency_buckets.iter().map(u64::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    tx.execute(
        "INSERT INTO traffic (service, instance, route, unix_ms, interval_ms, requests, denials, latency_buckets)
         SELECT s, i, r, t, n, q, d, b::BIGINT[] FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[],
                $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::TEXT[]) AS u(s, i, r, t, n, q, d, b)
         ON CONFLICT (service, instance, route) DO UPDATE SET
           unix_ms = excluded.unix_ms, interval_ms = excluded.interval_ms, requests = excluded.requests,
           denials = excluded.denials, latency_buckets = excluded.latency_buckets
         WHERE traffic.unix_ms <= excluded.unix_ms",
        &[
            &text(|r| &r.service),
            &text(|r| &r.instance),
            &text(|r| &r.route),
            &rows.iter().map(|r| r.unix_ms).collect::<Vec<_>>(),
            &num(|r| r.interval_ms),
            &num(|r| r.requests),
            &num(|r| r.denials),
            &buckets,
        ],
    )
    .await?;
    tx.execute("DELETE FROM traffic WHERE unix_ms < $1", &[&(crate::clock::now_unix_ms() - KEEP_MS)]).await?;
    tx.commit().await
}

/// See `Store::traffic`.
pub async fn since(c: &Object, since_unix_ms: i64) -> Result<Vec<TrafficRow>, Error> {
    let rows = c
        .query(
            "SELECT service, instance, route, unix_ms, interval_ms, requests, denials, latency_buckets
             FROM traffic WHERE unix_ms > $1 ORDER BY service, route, instance",
            &[&since_unix_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TrafficRow {
            service: r.get(0),
            instance: r.get(1),
            route: r.get(2),
            unix_ms: r.get(3),
            interval_ms: small(r.get(4)),
            requests: small(r.get(5)),
            denials: small(r.get(6)),
            latency_buckets: r.get::<_, Vec<i64>>(7).into_iter().map(small).collect(),
        })
        .collect())
}
