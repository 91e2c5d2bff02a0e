//! Credentials in PostgreSQL, as in SQLite: API key hashes and webhook secrets, every
//! change bumping the one credentials revision in the same transaction. The counter's row
//! lock orders concurrent changes, so revisions follow commit order across replicas; a
//! read is one REPEATABLE READ snapshot, so the revision it reports matches its rows.

use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::error::Error;
use tokio_postgres::{IsolationLevel, Row};

use crate::clock::now_unix_ms;
use crate::store::error::StoreError;
use crate::store::model::{CredentialRows, KeyRow, NewKey, SecretRow};
use crate::store::postgres::bigint::{big, small};
use crate::store::postgres::change_feed::notify;

const KEY_COLUMNS: &str =
    "id, service, client, plan, sha256, prefix, created_unix_ms, expires_unix_ms, revoked_unix_ms";

fn key_row(r: &Row) -> KeyRow {
    KeyRow {
        id: r.get(0),
        service: r.get(1),
        client: r.get(2),
        plan: r.get(3),
        sha256: r.get(4),
        prefix: r.get(5),
        created_unix_ms: r.get(6),
        expires_unix_ms: r.get(7),
        revoked_unix_ms: r.get(8),
    }
}

/// The current credentials revision.
pub async fn revision(c: &impl GenericClient) -> Result<u64, Error> {
    let row = c.query_opt("SELECT value FROM counters WHERE name = 'credentials'", &[]).await?;
    Ok(row.map_or(0, |r| small(r.get(0))))
}

/// Bumps the credentials revision inside `tx` and announces it (`credentials:SERVICE`
/// when only that service's keys changed, `credentials` for secrets, which any service's
/// policy may name); returns the new revision.
async fn bump(tx: &Transaction<'_>, service: Option<&str>) -> Result<i64, Error> {
    let row = tx
        .query_one(
            "INSERT INTO counters (name, value) VALUES ('credentials', 1)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            &[],
        )
        .await?;
    let payload = match service {
        Some(s) => format!("credentials:{s}"),
        None => "credentials".to_owned(),
    };
    notify(tx, &payload).await?;
    Ok(row.get(0))
}

/// The store's credentials epoch, made (random, 63 bits) the first time.
pub async fn epoch(c: &Object) -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::Unavailable("no randomness from the OS".into()))?;
    let fresh = big(u64::from_le_bytes(bytes) >> 1);
    let read = async {
        c.execute("INSERT INTO counters (name, value) VALUES ('epoch', $1) ON CONFLICT (name) DO NOTHING", &[&fresh])
            .await?;
        c.query_one("SELECT value FROM counters WHERE name = 'epoch'", &[]).await
    };
    let row = read.await.map_err(|e| StoreError::Failed(format!("reading the store's epoch: {e}")))?;
    Ok(small(row.get(0)))
}

/// Stores new keys in one transaction, under one credentials revision.
pub async fn create_keys(c: &mut Object, keys: Vec<NewKey>) -> Result<Vec<KeyRow>, Error> {
    let tx = c.transaction().await?;
    let mut services: Vec<&str> = keys.iter().map(|k| k.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let only = if services.len() == 1 { Some(services[0]) } else { None };
    let revision = bump(&tx, only).await?;
    let created_unix_ms = now_unix_ms();
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)"
        ))
        .await?;
    let mut rows = Vec::with_capacity(keys.len());
    for k in keys {
        tx.execute(
            &insert,
            &[
                &k.id,
                &k.service,
                &k.client,
                &k.plan,
                &k.sha256,
                &k.prefix,
                &created_unix_ms,
                &k.expires_unix_ms,
                &revision,
            ],
        )
        .await?;
        rows.push(KeyRow {
            id: k.id,
            service: k.service,
            client: k.client,
            plan: k.plan,
            sha256: k.sha256,
            prefix: k.prefix,
            created_unix_ms,
            expires_unix_ms: k.expires_unix_ms,
            revoked_unix_ms: 0,
        });
    }
    tx.commit().await?;
    Ok(rows)
}

/// Keys, optionally of one service and one client, oldest first.
pub async fn keys(c: &Object, service: Option<&str>, client: Option<&str>) -> Result<Vec<KeyRow>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM api_keys
                 WHERE ($1::TEXT IS NULL OR service = $1) AND ($2::TEXT IS NULL OR client = $2)
                 ORDER BY created_unix_ms, id"
            ),
            &[&service, &client],
        )
        .await?;
    Ok(rows.iter().map(key_row).collect())
}

/// Revokes a key (a second revoke changes nothing); None when there is no such key.
pub async fn revoke_key(c: &mut Object, id: &str) -> Result<Option<KeyRow>, Error> {
    let tx = c.transaction().await?;
    let active =
        tx.query_opt("SELECT service FROM api_keys WHERE id = $1 AND revoked_unix_ms = 0 FOR UPDATE", &[&id]).await?;
    if let Some(row) = active {
        let revision = bump(&tx, Some(row.get(0))).await?;
        tx.execute(
            "UPDATE api_keys SET revoked_unix_ms = $2, revision = $3 WHERE id = $1",
            &[&id, &now_unix_ms(), &revision],
        )
        .await?;
    }
    let row = tx.query_opt(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"), &[&id]).await?;
    tx.commit().await?;
    Ok(row.as_ref().map(key_row))
}

/// The key of `service` with this hash.
pub async fn lookup_key(c: &Object, service: &str, sha256: &[u8]) -> Result<Option<KeyRow>, Error> {
    let row = c
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE service = $1 AND sha256 = $2"),
            &[&service, &sha256],
        )
        .await?;
    Ok(row.as_ref().map(key_row))
}

/// Adds a value to a named secret, retiring the values already set after
/// `retire_previous_after_ms` (those set to retire sooner keep their date).
pub async fn set_secret(
    c: &mut Object,
    name: &str,
    value: Vec<u8>,
    retire_previous_after_ms: i64,
) -> Result<SecretRow, Error> {
    let tx = c.transaction().await?;
    let now = now_unix_ms();
    let retire_at = now.saturating_add(retire_previous_after_ms);
    tx.execute(
        "UPDATE secrets SET expires_unix_ms = $2 WHERE name = $1 AND (expires_unix_ms = 0 OR expires_unix_ms > $2)",
        &[&name, &retire_at],
    )
    .await?;
    let row = SecretRow {
        id: ulid::Ulid::new().to_string(),
        name: name.to_owned(),
        value,
        created_unix_ms: now,
        expires_unix_ms: 0,
    };
    tx.execute(
        "INSERT INTO secrets (id, name, value, created_unix_ms, expires_unix_ms) VALUES ($1, $2, $3, $4, 0)",
        &[&row.id, &row.name, &row.value, &row.created_unix_ms],
    )
    .await?;
    bump(&tx, None).await?;
    tx.commit().await?;
    Ok(row)
}

/// Every secret value still verifying, without the values, by name then age.
pub async fn secrets(c: &Object) -> Result<Vec<SecretRow>, Error> {
    let rows = c
        .query(
            "SELECT id, name, created_unix_ms, expires_unix_ms FROM secrets
             WHERE expires_unix_ms = 0 OR expires_unix_ms > $1 ORDER BY name, created_unix_ms",
            &[&now_unix_ms()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SecretRow {
            id: r.get(0),
            name: r.get(1),
            value: Vec::new(),
            created_unix_ms: r.get(2),
            expires_unix_ms: r.get(3),
        })
        .collect())
}

/// Moves the credentials revision on without a key or secret change.
pub async fn bump_revision(c: &mut Object) -> Result<u64, Error> {
    let tx = c.transaction().await?;
    let revision = bump(&tx, None).await?;
    tx.commit().await?;
    Ok(small(revision))
}

/// A service's keys changed after `since` and the named secrets' values, read in one
/// snapshot so the revision matches the rows.
pub async fn credentials(
    c: &mut Object,
    service: &str,
    since: u64,
    secret_names: &[String],
) -> Result<CredentialRows, Error> {
    let tx = c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let revision = revision(&tx).await?;
    let keys = tx
        .query(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE service = $1 AND revision > $2 ORDER BY revision"),
            &[&service, &big(since)],
        )
        .await?
        .iter()
        .map(key_row)
        .collect();
    let secrets = tx
        .query(
            "SELECT id, name, value, created_unix_ms, expires_unix_ms FROM secrets
             WHERE name = ANY($1) AND (expires_unix_ms = 0 OR expires_unix_ms > $2)
             ORDER BY array_position($1, name), created_unix_ms",
            &[&secret_names, &now_unix_ms()],
        )
        .await?
        .iter()
        .map(|r| SecretRow {
            id: r.get(0),
            name: r.get(1),
            value: r.get(2),
            created_unix_ms: r.get(3),
            expires_unix_ms: r.get(4),
        })
        .collect();
    tx.commit().await?;
    Ok(CredentialRows { revision, keys, secrets })
}
