//! What other replicas changed, as it commits: one connection of its own `LISTEN`s on the
//! channel every change `NOTIFY`s in its transaction (`policy:SERVICE`,
//! `credentials:SERVICE`, `credentials`).
//! Notifications are not stored by PostgreSQL, so whenever the connection is (re)made the
//! feed first says `Resync`: everything may have changed while nobody listened. A lost
//! connection is remade with back-off, forever; the replica keeps serving meanwhile.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::model::Change;
use crate::store::postgres::session::connect;
use crate::store::postgres::target::Target;

/// The channel changes are announced on.
const CHANNEL: &str = "warden_changes";

/// Announces a change to every replica's feed when (and only if) `tx` commits.
pub async fn notify(tx: &deadpool_postgres::Transaction<'_>, payload: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await.map(drop)
}

/// Listens for changes on `target` until the receiver is dropped.
pub fn listen(target: Target) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        while !tx.is_closed() {
            match connect(&target).await {
                Ok((client, mut notes)) => match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        tracing::info!(database = %target.name, "listening for changes made through other replicas");
                        if tx.send(Change::Resync).await.is_err() {
                            return;
                        }
                        while let Some((channel, payload)) = notes.recv().await {
                            if channel != CHANNEL {
                                continue;
                            }
                            let change = match payload.split_once(':') {
                                Some(("policy", service)) => Change::Policy(service.to_owned()),
                                Some((_, service)) => Change::Credentials(Some(service.to_owned())),
                                None => Change::Credentials(None),
                            };
                            if tx.send(change).await.is_err() {
                                return;
                            }
                        }
                        tracing::warn!(database = %target.name, "the change feed's connection closed; reconnecting");
                    }
                    Err(e) => tracing::warn!(database = %target.name, error = %e, "LISTEN failed"),
                },
                Err(e) => tracing::warn!(error = %e, "the change feed cannot connect; retrying"),
            }
            tokio::time::sleep(backoff + Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2)))
                .await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    rx
}
