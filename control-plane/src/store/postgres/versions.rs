//! Policy versions in PostgreSQL: one row per service and version, never rewritten. An
//! apply takes each of its services' advisory locks (in name order, so two applies cannot
//! deadlock) before reading the current versions, so concurrent applies to one service
//! through two replicas are serialised: the second numbers its version after the first's.
//! The current version is the highest that is not a running or aborted rollout's
//! candidate (`rollouts.rs`).

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::error::StoreError;
use crate::store::model::{FORCED, NewVersion, PolicyVersion, RolloutState, Stored};
use crate::store::postgres::bigint::{big, small};
use crate::store::postgres::change_feed::notify;
use crate::store::postgres::rollouts::{self, NOT_CURRENT, lock_service};

const VERSION_COLUMNS: &str = "service, version, author, created_unix_ms, message, content_hash";

/// See `Store::apply`. The inner error: a service has a rollout running and the document
/// does not force it (nothing was stored).
pub async fn apply(
    c: &mut Object,
    docs: Vec<NewVersion>,
    dry_run: bool,
) -> Result<Result<Vec<Stored>, StoreError>, Error> {
    let tx = c.transaction().await?;
    let mut services: Vec<&str> = docs.iter().map(|d| d.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for service in services {
        lock_service(&tx, service).await?;
    }
    let now = now_unix_ms();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let previous = current(&tx, &doc.service).await?;
        if let Some(prev) = &previous
            && prev.content_hash == doc.content_hash
        {
            let (version, previous) = (prev.clone(), previous.clone());
            out.push(Stored { version, previous, changed: false, rollout: None, aborted: None });
            continue;
        }
        // One rollout at a time, checked under the service's lock where the version is
        // numbered: no replica slips a change past a rollout it has not heard of yet.
        let aborted = match rollouts::running(&tx, &doc.service).await? {
            Some(r) if doc.force => rollouts::end_in(&tx, &r, RolloutState::Aborted, &doc.author, FORCED).await?,
            Some(r) => {
                let mode = r.mode.as_str().to_owned();
                return Ok(Err(StoreError::RolloutRunning { service: r.service, version: r.version, mode }));
            }
            None => None,
        };
        // After the highest stored, candidates included: an aborted candidate's number is
        // never reused.
        let highest = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM policy_versions WHERE service = $1", &[&doc.service])
            .await?;
        let version = PolicyVersion {
            service: doc.service,
            version: small(highest.get(0)) + 1,
            author: doc.author,
            created_unix_ms: now,
            message: doc.message,
            content_hash: doc.content_hash,
            source_yaml: doc.source_yaml,
        };
        tx.execute(
            "INSERT INTO policy_versions (service, version, author, created_unix_ms, message, content_hash, source_yaml)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &version.service,
                &big(version.version),
                &version.author,
                &version.created_unix_ms,
                &version.message,
                &version.content_hash,
                &version.source_yaml,
            ],
        )
        .await?;
        let rollout = match &doc.rollout {
            Some(plan) => {
                let base = previous.as_ref().map_or(0, |p| p.version);
                Some(rollouts::start(&tx, &version.service, version.version, base, &version.author, plan).await?)
            }
            None => None,
        };
        notify(&tx, &format!("policy:{}", version.service)).await?;
        out.push(Stored { version, previous, changed: true, rollout, aborted });
    }
    if dry_run {
        tx.rollback().await?
    } else {
        tx.commit().await?
    }
    Ok(Ok(out))
}

/// The current version of a service, with its source.
pub async fn current(c: &impl GenericClient, service: &str) -> Result<Option<PolicyVersion>, Error> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions p WHERE service = $1 AND {NOT_CURRENT}
                 ORDER BY version DESC LIMIT 1"
            ),
            &[&service],
        )
        .await?;
    Ok(row.map(|r| version_row(&r, true)))
}

/// One version of a service, with its source.
pub async fn get(c: &Object, service: &str, version: u64) -> Result<Option<PolicyVersion>, Error> {
    let row = c
        .query_opt(
            &format!("SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions WHERE service = $1 AND version = $2"),
            &[&service, &big(version)],
        )
        .await?;
    Ok(row.map(|r| version_row(&r, true)))
}

/// Every version of a service, newest first, without sources.
pub async fn history(c: &Object, service: &str) -> Result<Vec<PolicyVersion>, Error> {
    let rows = c
        .query(
            &format!("SELECT {VERSION_COLUMNS} FROM policy_versions WHERE service = $1 ORDER BY version DESC"),
            &[&service],
        )
        .await?;
    Ok(rows.iter().map(|r| version_row(r, false)).collect())
}

/// The current version of every service, with sources, by service name.
pub async fn list_current(c: &Object) -> Result<Vec<PolicyVersion>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT DISTINCT ON (service) {VERSION_COLUMNS}, source_yaml FROM policy_versions p
                 WHERE {NOT_CURRENT} ORDER BY service, version DESC"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| version_row(r, true)).collect())
}

/// Every service's current version, by service name.
pub async fn heads(c: &Object) -> Result<Vec<(String, u64)>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT service, MAX(version) FROM policy_versions p WHERE {NOT_CURRENT} GROUP BY service ORDER BY service"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), small(r.get(1)))).collect())
}

fn version_row(r: &Row, with_source: bool) -> PolicyVersion {
    PolicyVersion {
        service: r.get(0),
        version: small(r.get(1)),
        author: r.get(2),
        created_unix_ms: r.get(3),
        message: r.get(4),
        content_hash: r.get(5),
        source_yaml: if with_source { r.get(6) } else { String::new() },
    }
}
