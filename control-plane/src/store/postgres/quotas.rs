//! Global quota demand exchanged between replicas through PostgreSQL: each replica
//! replaces its own rows (demand per limit and key, sidecars per limit) a few times a
//! second and reads the sums of the others' rows, counting only replicas that published
//! recently (a dead replica's demand stops counting). The tables are unlogged: the data
//! lives for a second and is rebuilt from the sidecars' reports.

use deadpool_postgres::Object;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::QuotaDemand;

/// See `Store::exchange_demand`.
pub async fn exchange(c: &mut Object, replica: &str, mine: QuotaDemand, fresh_ms: i64) -> Result<QuotaDemand, Error> {
    let tx = c.transaction().await?;
    let now = now_unix_ms();
    tx.execute(
        "INSERT INTO quota_replicas (replica, updated_unix_ms) VALUES ($1, $2)
         ON CONFLICT (replica) DO UPDATE SET updated_unix_ms = excluded.updated_unix_ms",
        &[&replica, &now],
    )
    .await?;
    tx.execute("DELETE FROM quota_demand WHERE replica = $1", &[&replica]).await?;
    tx.execute("DELETE FROM quota_peers WHERE replica = $1", &[&replica]).await?;
    let limits: Vec<&str> = mine.keys.iter().map(|(l, _, _)| l.as_str()).collect();
    let keys: Vec<&[u8]> = mine.keys.iter().map(|(_, k, _)| k.as_slice()).collect();
    let rates: Vec<f64> = mine.keys.iter().map(|(_, _, r)| *r).collect();
    tx.execute(
        "INSERT INTO quota_demand (replica, limit_name, key, rate)
         SELECT $1, * FROM UNNEST($2::TEXT[], $3::BYTEA[], $4::DOUBLE PRECISION[])",
        &[&replica, &limits, &keys, &rates],
    )
    .await?;
    let peer_limits: Vec<&str> = mine.peers.iter().map(|(l, _)| l.as_str()).collect();
    let sidecars: Vec<i32> = mine.peers.iter().map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX)).collect();
    tx.execute(
        "INSERT INTO quota_peers (replica, limit_name, sidecars) SELECT $1, * FROM UNNEST($2::TEXT[], $3::INTEGER[])",
        &[&replica, &peer_limits, &sidecars],
    )
    .await?;
    let since = now - fresh_ms;
    let keys = tx
        .query(
            "SELECT d.limit_name, d.key, SUM(d.rate) FROM quota_demand d JOIN quota_replicas r USING (replica)
             WHERE d.replica <> $1 AND r.updated_unix_ms > $2 GROUP BY d.limit_name, d.key",
            &[&replica, &since],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let peers = tx
        .query(
            "SELECT p.limit_name, SUM(p.sidecars)::BIGINT FROM quota_peers p JOIN quota_replicas r USING (replica)
             WHERE p.replica <> $1 AND r.updated_unix_ms > $2 GROUP BY p.limit_name",
            &[&replica, &since],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX)))
        .collect();
    tx.commit().await?;
    Ok(QuotaDemand { keys, peers })
}
