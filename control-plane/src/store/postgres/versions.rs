//! Policy versions in PostgreSQL: one row per service and version, never rewritten. An
//! apply takes each of its services' advisory locks (in name order, so two applies cannot
//! deadlock) before reading the current versions, so concurrent applies to one service
//! through two replicas are serialised: the second numbers its version after the first's.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::error::Error;

use crate::clock::now_unix_ms;
use crate::store::model::{NewVersion, PolicyVersion, Stored};
use crate::store::postgres::bigint::{big, small};
use crate::store::postgres::change_feed::notify;

const VERSION_COLUMNS: &str = "service, version, author, created_unix_ms, message, content_hash";

/// See `Store::apply`.
pub async fn apply(c: &mut Object, docs: Vec<NewVersion>, dry_run: bool) -> Result<Vec<Stored>, Error> {
    let tx = c.transaction().await?;
    let mut services: Vec<&str> = docs.iter().map(|d| d.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for service in services {
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&service]).await?;
    }
    let now = now_unix_ms();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let previous = current(&tx, &doc.service).await?;
        if let Some(prev) = &previous
            && prev.content_hash == doc.content_hash
        {
            out.push(Stored { version: prev.clone(), previous: previous.clone(), changed: false });
            continue;
        }
        let version = PolicyVersion {
            service: doc.service,
            version: previous.as_ref().map_or(1, |p| p.version + 1),
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
        notify(&tx, &format!("policy:{}", version.service)).await?;
        out.push(Stored { version, previous, changed: true });
    }
    if dry_run {
        tx.rollback().await?
    } else {
        tx.commit().await?
    }
    Ok(out)
}

/// The current (highest) version of a service, with its source.
pub async fn current(c: &impl GenericClient, service: &str) -> Result<Option<PolicyVersion>, Error> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {VERSION_COLUMNS}, source_yaml FROM policy_versions WHERE service = $1
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
                "SELECT DISTINCT ON (service) {VERSION_COLUMNS}, source_yaml FROM policy_versions
                 ORDER BY service, version DESC"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| version_row(r, true)).collect())
}

/// Every service's current version, by service name.
pub async fn heads(c: &Object) -> Result<Vec<(String, u64)>, Error> {
    let rows =
        c.query("SELECT service, MAX(version) FROM policy_versions GROUP BY service ORDER BY service", &[]).await?;
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
