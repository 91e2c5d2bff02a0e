//! Credentials in the store: API keys (only their SHA-256, with client, plan, dates and
//! revocation) and named webhook secrets (several values per name while one rotates
//! out). Every change bumps one counter in the same transaction: the credentials revision
//! sidecars ACK. Each key row remembers the revision of its last change, so what changed
//! since any revision is one indexed query.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{Store, StoreError, now_unix_ms};

/// A stored key. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub service: String,
    pub client: String,
    pub plan: String,
    pub sha256: Vec<u8>,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub created_unix_ms: i64,
    /// 0 = never.
    pub expires_unix_ms: i64,
    /// 0 = active.
    pub revoked_unix_ms: i64,
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub service: String,
    pub client: String,
    pub plan: String,
    pub sha256: Vec<u8>,
    pub prefix: String,
    pub expires_unix_ms: i64,
}

/// One value of a named secret. `value` is empty in listings.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub id: String,
    pub name: String,
    pub value: Vec<u8>,
    pub created_unix_ms: i64,
    /// 0 = no end.
    pub expires_unix_ms: i64,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("expires_unix_ms", &self.expires_unix_ms)
            .finish()
    }
}

const KEY_COLUMNS: &str =
    "id, service, client, plan, sha256, prefix, created_unix_ms, expires_unix_ms, revoked_unix_ms";

fn key_row(r: &Row<'_>) -> Result<KeyRow, rusqlite::Error> {
    Ok(KeyRow {
        id: r.get(0)?,
        service: r.get(1)?,
        client: r.get(2)?,
        plan: r.get(3)?,
        sha256: r.get(4)?,
        prefix: r.get(5)?,
        created_unix_ms: r.get(6)?,
        expires_unix_ms: r.get(7)?,
        revoked_unix_ms: r.get(8)?,
    })
}

/// Bumps the credentials revision inside `tx`; returns the new one.
fn bump(tx: &Transaction<'_>) -> Result<u64, rusqlite::Error> {
    tx.query_row(
        "INSERT INTO counters (name, value) VALUES ('credentials', 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        [],
        |r| r.get(0),
    )
}

/// The store's credentials epoch, made (random, 63 bits) the first time.
pub(super) fn epoch(c: &Connection) -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::Io(std::io::Error::other("no randomness from the OS")))?;
    let fresh = u64::from_le_bytes(bytes) >> 1;
    c.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('epoch', ?1)", [fresh])?;
    Ok(c.query_row("SELECT value FROM counters WHERE name = 'epoch'", [], |r| r.get(0))?)
}

fn revision_in(c: &Connection) -> Result<u64, rusqlite::Error> {
    Ok(c.query_row("SELECT value FROM counters WHERE name = 'credentials'", [], |r| r.get(0)).optional()?.unwrap_or(0))
}

impl Store {
    /// Stores a new key.
    pub async fn create_key(&self, k: NewKey) -> Result<KeyRow, StoreError> {
        let mut rows = self.create_keys(vec![k]).await?;
        rows.pop().ok_or_else(|| StoreError::Io(std::io::Error::other("no key stored")))
    }

    /// Stores new keys in one transaction, under one credentials revision.
    pub async fn create_keys(&self, keys: Vec<NewKey>) -> Result<Vec<KeyRow>, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let revision = bump(&tx)?;
            let created_unix_ms = now_unix_ms();
            let mut rows = Vec::with_capacity(keys.len());
            {
                let mut insert = tx.prepare(&format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)"
                ))?;
                for k in keys {
                    insert.execute(params![
                        k.id,
                        k.service,
                        k.client,
                        k.plan,
                        k.sha256,
                        k.prefix,
                        created_unix_ms,
                        k.expires_unix_ms,
                        revision
                    ])?;
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
            }
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    /// Keys, optionally of one service and one client, oldest first.
    pub async fn keys(&self, service: Option<String>, client: Option<String>) -> Result<Vec<KeyRow>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys
                 WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR client = ?2)
                 ORDER BY created_unix_ms, id"
            ))?;
            stmt.query_map(params![service, client], key_row)?.collect()
        })
        .await
    }

    /// Revokes a key (a second revoke changes nothing); None when there is no such key.
    pub async fn revoke_key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let active: bool = tx
                .query_row("SELECT revoked_unix_ms = 0 FROM api_keys WHERE id = ?1", [&id], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            if active {
                let revision = bump(&tx)?;
                tx.execute(
                    "UPDATE api_keys SET revoked_unix_ms = ?2, revision = ?3 WHERE id = ?1",
                    params![id, now_unix_ms(), revision],
                )?;
            }
            let row = tx
                .query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), [&id], key_row)
                .optional()?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// The key of `service` with this hash.
    pub async fn lookup_key(&self, service: &str, sha256: Vec<u8>) -> Result<Option<KeyRow>, StoreError> {
        let service = service.to_owned();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE service = ?1 AND sha256 = ?2"),
                params![service, sha256],
                key_row,
            )
            .optional()
        })
        .await
    }

    /// Adds a value to a named secret. Values already set keep verifying for
    /// `retire_previous_after_ms` more (those set to retire sooner keep their date).
    pub async fn set_secret(
        &self,
        name: &str,
        value: Vec<u8>,
        retire_previous_after_ms: i64,
    ) -> Result<SecretRow, StoreError> {
        let name = name.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let now = now_unix_ms();
            let retire_at = now.saturating_add(retire_previous_after_ms);
            tx.execute(
                "UPDATE secrets SET expires_unix_ms = ?2
                 WHERE name = ?1 AND (expires_unix_ms = 0 OR expires_unix_ms > ?2)",
                params![name, retire_at],
            )?;
            let row =
                SecretRow { id: ulid::Ulid::new().to_string(), name, value, created_unix_ms: now, expires_unix_ms: 0 };
            tx.execute(
                "INSERT INTO secrets (id, name, value, created_unix_ms, expires_unix_ms) VALUES (?1, ?2, ?3, ?4, 0)",
                params![row.id, row.name, row.value, row.created_unix_ms],
            )?;
            bump(&tx)?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Every secret value still verifying, without the values, by name then age.
    pub async fn secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, name, created_unix_ms, expires_unix_ms FROM secrets
                 WHERE expires_unix_ms = 0 OR expires_unix_ms > ?1 ORDER BY name, created_unix_ms",
            )?;
            stmt.query_map([now_unix_ms()], |r| {
                Ok(SecretRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    value: Vec::new(),
                    created_unix_ms: r.get(2)?,
                    expires_unix_ms: r.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// Moves the credentials revision on without a key or secret change: when a policy
    /// starts naming other secrets, what its sidecars hold changes too.
    pub async fn bump_credentials_revision(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let revision = bump(&tx)?;
            tx.commit()?;
            Ok(revision)
        })
        .await
    }

    /// What a service's sidecars get, at the current revision: its keys changed after
    /// revision `since` (all of them for 0), and the still-verifying values of the secrets
    /// its policy names. Read in one transaction so the revision matches the rows.
    pub async fn credentials(
        &self,
        service: &str,
        since: u64,
        secret_names: Vec<String>,
    ) -> Result<(u64, Vec<KeyRow>, Vec<SecretRow>), StoreError> {
        let service = service.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let revision = revision_in(&tx)?;
            let keys = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE service = ?1 AND revision > ?2 ORDER BY revision"
                ))?;
                stmt.query_map(params![service, since], key_row)?.collect::<Result<Vec<_>, _>>()?
            };
            let mut secrets = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT id, name, value, created_unix_ms, expires_unix_ms FROM secrets
                     WHERE name = ?1 AND (expires_unix_ms = 0 OR expires_unix_ms > ?2) ORDER BY created_unix_ms",
                )?;
                let now = now_unix_ms();
                for name in &secret_names {
                    let rows = stmt.query_map(params![name, now], |r| {
                        Ok(SecretRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            value: r.get(2)?,
                            created_unix_ms: r.get(3)?,
                            expires_unix_ms: r.get(4)?,
                        })
                    })?;
                    for row in rows {
                        secrets.push(row?);
                    }
                }
            }
            tx.commit()?;
            Ok((revision, keys, secrets))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, service: &str, hash: u8) -> NewKey {
        NewKey {
            id: id.into(),
            service: service.into(),
            client: "acme".into(),
            plan: "pro".into(),
            sha256: vec![hash; 32],
            prefix: "wdn_ab".into(),
            expires_unix_ms: 0,
        }
    }

    #[tokio::test]
    async fn keys_are_per_service_revocation_sticks_and_every_change_bumps_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_key(key("k1", "orders", 1)).await.unwrap();
        store.create_key(key("k2", "orders", 2)).await.unwrap();
        store.create_key(key("k3", "billing", 3)).await.unwrap();
        assert!(store.create_key(key("k4", "orders", 1)).await.is_err(), "a hash is unique");
        let (rev, keys, _) = store.credentials("orders", 0, vec![]).await.unwrap();
        assert_eq!((rev, keys.len()), (3, 2));

        let revoked = store.revoke_key("k1").await.unwrap().unwrap();
        assert!(revoked.revoked_unix_ms > 0);
        let again = store.revoke_key("k1").await.unwrap().unwrap();
        assert_eq!(again.revoked_unix_ms, revoked.revoked_unix_ms, "a second revoke changes nothing");
        assert_eq!(store.revoke_key("nope").await.unwrap(), None);
        let (rev, changed, _) = store.credentials("orders", 3, vec![]).await.unwrap();
        assert_eq!(rev, 4);
        assert_eq!(changed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1"], "only what changed after r3");
        assert_eq!(store.credentials("orders", 4, vec![]).await.unwrap().1, []);
        assert_eq!(store.lookup_key("orders", vec![2; 32]).await.unwrap().unwrap().id, "k2");
        assert_eq!(store.lookup_key("billing", vec![2; 32]).await.unwrap(), None);
        assert_eq!(store.keys(Some("orders".into()), None).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_new_secret_value_keeps_the_old_one_verifying_until_it_retires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_secret("stripe", b"one".to_vec(), 0).await.unwrap();
        store.set_secret("stripe", b"two".to_vec(), 3_600_000).await.unwrap();
        store.set_secret("github", b"gh".to_vec(), 0).await.unwrap();
        let (_, _, secrets) = store.credentials("orders", 0, vec!["stripe".into()]).await.unwrap();
        let values: Vec<&[u8]> = secrets.iter().map(|s| s.value.as_slice()).collect();
        assert_eq!(values, [b"one".as_slice(), b"two".as_slice()]);
        assert!(secrets[0].expires_unix_ms > now_unix_ms() && secrets[1].expires_unix_ms == 0);

        store.set_secret("stripe", b"three".to_vec(), 0).await.unwrap();
        let (_, _, secrets) = store.credentials("orders", 0, vec!["stripe".into()]).await.unwrap();
        assert_eq!(secrets.iter().map(|s| s.value.as_slice()).collect::<Vec<_>>(), [b"three".as_slice()]);
        let listed = store.secrets().await.unwrap();
        assert_eq!(listed.len(), 2, "github and the one active stripe value");
        assert!(listed.iter().all(|s| s.value.is_empty()), "listings carry no values");
    }
}
