//! Sidecar records in PostgreSQL: the last ACK, NACK and sighting of every sidecar, written
//! by whichever replica it is connected to, a batch per statement (arrays unnested), so
//! `wardenctl status` on any replica sees the whole fleet.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::error::Error;

use crate::store::model::SidecarRecord;
use crate::store::postgres::bigint::{big, small};

/// Upserts the records in one statement.
pub async fn save(c: &Object, records: &[SidecarRecord]) -> Result<(), Error> {
    save_in(c, records).await
}

/// Upserts the records in one statement, on `c` (a connection or a transaction).
pub async fn save_in(c: &impl GenericClient, records: &[SidecarRecord]) -> Result<(), Error> {
    let col = |f: fn(&SidecarRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&SidecarRecord) -> i64| records.iter().map(f).collect::<Vec<_>>();
    c.execute(
        "INSERT INTO sidecars (service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error,
                               nacked_unix_ms, last_seen_unix_ms, replica, connected,
                               acked_credentials, shadow_version, shadow_error)
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[],
                              $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[], $11::BOOLEAN[],
                              $12::BIGINT[], $13::BIGINT[], $14::TEXT[])
         ON CONFLICT (service, instance) DO UPDATE SET
           peer = excluded.peer, acked_version = excluded.acked_version, acked_unix_ms = excluded.acked_unix_ms,
           nacked_version = excluded.nacked_version, nack_error = excluded.nack_error,
           nacked_unix_ms = excluded.nacked_unix_ms, last_seen_unix_ms = excluded.last_seen_unix_ms,
           replica = excluded.replica, connected = excluded.connected, acked_credentials = excluded.acked_credentials,
           shadow_version = excluded.shadow_version, shadow_error = excluded.shadow_error",
        &[
            &col(|s| s.service.clone()),
            &col(|s| s.instance.clone()),
            &col(|s| s.peer.clone()),
            &num(|s| big(s.acked_version)),
            &num(|s| s.acked_unix_ms),
            &num(|s| big(s.nacked_version)),
            &col(|s| s.nack_error.clone()),
            &num(|s| s.nacked_unix_ms),
            &num(|s| s.last_seen_unix_ms),
            &col(|s| s.replica.clone()),
            &records.iter().map(|s| s.connected).collect::<Vec<_>>(),
            &num(|s| big(s.acked_credentials)),
            &num(|s| big(s.shadow_version)),
            &col(|s| s.shadow_error.clone()),
        ],
    )
    .await?;
    Ok(())
}

/// Every sidecar ever seen.
pub async fn list(c: &Object) -> Result<Vec<SidecarRecord>, Error> {
    let rows = c
        .query(
            "SELECT service, instance, peer, acked_version, acked_unix_ms, nacked_version, nack_error, nacked_unix_ms,
                    last_seen_unix_ms, replica, connected, acked_credentials, shadow_version, shadow_error
             FROM sidecars ORDER BY service, instance",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SidecarRecord {
            service: r.get(0),
            instance: r.get(1),
            peer: r.get(2),
            acked_version: small(r.get(3)),
            acked_unix_ms: r.get(4),
            nacked_version: small(r.get(5)),
            nack_error: r.get(6),
            nacked_unix_ms: r.get(7),
            last_seen_unix_ms: r.get(8),
            replica: r.get(9),
            connected: r.get(10),
            acked_credentials: small(r.get(11)),
            shadow_version: small(r.get(12)),
            shadow_error: r.get(13),
        })
        .collect())
}
