//! A canary's sums across replicas: each replica replaces its own rows (one per running
//! canary and side) every second in an unlogged table; the evaluator reads everyone's
//! fresh rows and adds them up. The sums travel as JSON: they are read whole, never queried.

use deadpool_postgres::Object;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::CanaryWindow;
use crate::store::postgres::bigint::big;

/// See `Store::share_canary`.
pub async fn share(c: &mut Object, replica: &str, windows: &[CanaryWindow]) -> Result<(), Error> {
    let tx = c.transaction().await?;
    tx.execute("DELETE FROM canary_windows WHERE replica = $1", &[&replica]).await?;
    let now = now_unix_ms();
    for w in windows {
        let sums = serde_json::to_string(w).unwrap_or_default();
        tx.execute(
            "INSERT INTO canary_windows (replica, service, version, canary, unix_ms, sums) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&replica, &w.service, &big(w.version), &w.canary, &now, &sums],
        )
        .await?;
    }
    tx.commit().await
}

/// See `Store::canary_windows`.
pub async fn fresh(c: &Object, fresh_ms: i64) -> Result<Vec<CanaryWindow>, Error> {
    let rows =
        c.query("SELECT replica, sums FROM canary_windows WHERE unix_ms >= $1", &[&(now_unix_ms() - fresh_ms)]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let mut w: CanaryWindow = serde_json::from_str(r.get(1)).ok()?;
            w.replica = r.get(0);
            Some(w)
        })
        .collect())
}
