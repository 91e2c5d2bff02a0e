//! The PostgreSQL schema as numbered migrations, applied at start-up in order, each in
//! its own transaction, under one advisory lock so replicas starting together apply each
//! migration once. Rolling upgrades: a migration only adds (tables, indexes, columns with
//! defaults), so the previous release keeps working against the migrated schema; a column
//! the code stops reading is dropped two releases later, never in the release that stops.
//! A store migrated by a newer release (numbers this one does not know) is used as it is.

use tokio_postgres::Client;

/// (number, what it does, SQL). Append only; never edit a released one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "policy versions, sidecars, credentials, the deny log",
        "
CREATE TABLE policy_versions (
    service         TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    author          TEXT   NOT NULL,
    created_unix_ms BIGINT NOT NULL,
    message         TEXT   NOT NULL,
    content_hash    TEXT   NOT NULL,
    source_yaml     TEXT   NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE sidecars (
    service           TEXT   NOT NULL,
    instance          TEXT   NOT NULL,
    peer              TEXT   NOT NULL,
    acked_version     BIGINT NOT NULL,
    acked_unix_ms     BIGINT NOT NULL,
    nacked_version    BIGINT NOT NULL,
    nack_error        TEXT   NOT NULL,
    nacked_unix_ms    BIGINT NOT NULL,
    last_seen_unix_ms BIGINT NOT NULL,
    PRIMARY KEY (service, instance)
);
CREATE TABLE api_keys (
    id              TEXT   PRIMARY KEY,
    service         TEXT   NOT NULL,
    client          TEXT   NOT NULL,
    plan            TEXT   NOT NULL,
    sha256          BYTEA  NOT NULL UNIQUE,
    prefix          TEXT   NOT NULL,
    created_unix_ms BIGINT NOT NULL,
    expires_unix_ms BIGINT NOT NULL,
    revoked_unix_ms BIGINT NOT NULL,
    revision        BIGINT NOT NULL
);
CREATE INDEX api_keys_by_service ON api_keys (service, revision);
CREATE TABLE secrets (
    id              TEXT   PRIMARY KEY,
    name            TEXT   NOT NULL,
    value           BYTEA  NOT NULL,
    created_unix_ms BIGINT NOT NULL,
    expires_unix_ms BIGINT NOT NULL
);
CREATE INDEX secrets_by_name ON secrets (name);
CREATE TABLE denials (
    id         BIGSERIAL PRIMARY KEY,
    service    TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    unix_ms    BIGINT  NOT NULL,
    request_id TEXT    NOT NULL,
    trace_id   TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    code       TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    client_id  TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    dry_run    BOOLEAN NOT NULL,
    request_id_from_client BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX denials_by_time ON denials (unix_ms);
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
",
    ),
    (
        2,
        "which replica each sidecar is on, for status from any replica",
        "ALTER TABLE sidecars ADD COLUMN replica TEXT NOT NULL DEFAULT '',
                             ADD COLUMN connected BOOLEAN NOT NULL DEFAULT FALSE,
                             ADD COLUMN acked_credentials BIGINT NOT NULL DEFAULT 0;",
    ),
    (
        3,
        "global quota demand exchanged between replicas",
        // UNLOGGED: rewritten every quarter second and worthless after a crash, so not
        // worth the write-ahead log.
        "CREATE UNLOGGED TABLE quota_replicas (
             replica         TEXT   PRIMARY KEY,
             updated_unix_ms BIGINT NOT NULL
         );
         CREATE UNLOGGED TABLE quota_demand (
             replica    TEXT             NOT NULL,
             limit_name TEXT             NOT NULL,
             key        BYTEA            NOT NULL,
             rate       DOUBLE PRECISION NOT NULL,
             PRIMARY KEY (replica, limit_name, key)
         );
         CREATE UNLOGGED TABLE quota_peers (
             replica    TEXT    NOT NULL,
             limit_name TEXT    NOT NULL,
             sidecars   INTEGER NOT NULL,
             PRIMARY KEY (replica, limit_name)
         );",
    ),
    (
        4,
        "each sidecar's latest traffic per route, for top from any replica",
        "CREATE UNLOGGED TABLE traffic (
             service         TEXT     NOT NULL,
             instance        TEXT     NOT NULL,
             route           TEXT     NOT NULL,
             unix_ms         BIGINT   NOT NULL,
             interval_ms     BIGINT   NOT NULL,
             requests        BIGINT   NOT NULL,
             denials         BIGINT   NOT NULL,
             latency_buckets BIGINT[] NOT NULL,
             PRIMARY KEY (service, instance, route)
         );
         CREATE INDEX traffic_by_time ON traffic (unix_ms);",
    ),
    (
        5,
        "which replica is elected to evaluate, for status from any replica",
        "CREATE UNLOGGED TABLE leaders (
             role            TEXT   PRIMARY KEY,
             replica         TEXT   NOT NULL,
             since_unix_ms   BIGINT NOT NULL,
             renewed_unix_ms BIGINT NOT NULL
         );",
    ),
    (
        6,
        "decision samples; deny records carry their policy version and head fields",
        "ALTER TABLE denials ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0,
                             ADD COLUMN headers TEXT NOT NULL DEFAULT '[]',
                             ADD COLUMN auth_provider TEXT NOT NULL DEFAULT '',
                             ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
         CREATE UNLOGGED TABLE samples (
             id                 BIGSERIAL        PRIMARY KEY,
             service            TEXT             NOT NULL,
             instance           TEXT             NOT NULL,
             unix_ms            BIGINT           NOT NULL,
             request_id         TEXT             NOT NULL,
             method             TEXT             NOT NULL,
             host               TEXT             NOT NULL,
             path               TEXT             NOT NULL,
             client_ip          TEXT             NOT NULL,
             client_id          TEXT             NOT NULL,
             auth_provider      TEXT             NOT NULL,
             key_id             TEXT             NOT NULL,
             headers            TEXT             NOT NULL,
             credential_headers TEXT             NOT NULL,
             route              TEXT             NOT NULL,
             decision           TEXT             NOT NULL,
             rule               TEXT             NOT NULL,
             code               TEXT             NOT NULL,
             status             INTEGER          NOT NULL,
             policy_version     BIGINT           NOT NULL,
             weight             DOUBLE PRECISION NOT NULL
         );
         CREATE INDEX samples_by_service ON samples (service, id);
         CREATE INDEX samples_by_time ON samples (unix_ms);",
    ),
    (7, "the plan of a sample's identity", "ALTER TABLE samples ADD COLUMN plan TEXT NOT NULL DEFAULT '';"),
    (
        8,
        "rollouts (shadow, canary) beside the versions; shadow deny records; shadow state of sidecars",
        "CREATE TABLE rollouts (
             service          TEXT    NOT NULL,
             version          BIGINT  NOT NULL,
             base_version     BIGINT  NOT NULL,
             mode             TEXT    NOT NULL,
             state            TEXT    NOT NULL,
             canary_percent   INTEGER NOT NULL,
             canary_instances TEXT    NOT NULL,
             abort_if         TEXT    NOT NULL,
             author           TEXT    NOT NULL,
             started_unix_ms  BIGINT  NOT NULL,
             ended_unix_ms    BIGINT  NOT NULL,
             ended_by         TEXT    NOT NULL,
             reason           TEXT    NOT NULL,
             PRIMARY KEY (service, version)
         );
         CREATE UNIQUE INDEX rollouts_running ON rollouts (service) WHERE state IN ('shadow', 'canary');
         CREATE TABLE shadow_counts (
             service   TEXT    NOT NULL,
             version   BIGINT  NOT NULL,
             denied    BOOLEAN NOT NULL,
             route     TEXT    NOT NULL,
             rule      TEXT    NOT NULL,
             code      TEXT    NOT NULL,
             client_id TEXT    NOT NULL,
             count     BIGINT  NOT NULL,
             examples  TEXT    NOT NULL,
             PRIMARY KEY (service, version, denied, route, rule, code, client_id)
         );
         ALTER TABLE denials ADD COLUMN shadow BOOLEAN NOT NULL DEFAULT FALSE;
         ALTER TABLE denials ADD COLUMN shadow_allowed_by BIGINT NOT NULL DEFAULT 0;
         CREATE INDEX denials_by_shadow ON denials (shadow, id);
         ALTER TABLE sidecars ADD COLUMN shadow_version BIGINT NOT NULL DEFAULT 0;
         ALTER TABLE sidecars ADD COLUMN shadow_error TEXT NOT NULL DEFAULT '';
         CREATE UNLOGGED TABLE canary_windows (
             replica  TEXT    NOT NULL,
             service  TEXT    NOT NULL,
             version  BIGINT  NOT NULL,
             canary   BOOLEAN NOT NULL,
             unix_ms  BIGINT  NOT NULL,
             sums     TEXT    NOT NULL,
             PRIMARY KEY (replica, service, version, canary)
         );",
    ),
    (
        9,
        "the console: its session signing key, refusal group marks",
        "CREATE TABLE console_keys (
             id              INTEGER PRIMARY KEY CHECK (id = 1),
             key             BYTEA   NOT NULL,
             created_unix_ms BIGINT  NOT NULL
         );
         CREATE TABLE denial_marks (
             group_id  TEXT    PRIMARY KEY,
             service   TEXT    NOT NULL,
             route     TEXT    NOT NULL,
             rule      TEXT    NOT NULL,
             code      TEXT    NOT NULL,
             client_id TEXT    NOT NULL,
             mark      TEXT    NOT NULL CHECK (mark IN ('expected', 'false-positive')),
             note      TEXT    NOT NULL,
             owner     TEXT    NOT NULL,
             author    TEXT    NOT NULL,
             unix_ms   BIGINT  NOT NULL
         );",
    ),
];

/// Any number, the same in every release: the lock replicas take to migrate.
const MIGRATION_LOCK: i64 = 0x5741_5244_454e_0001;

/// Applies the migrations this store lacks; returns how many ran.
pub async fn run(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    // Held for the whole run: two replicas creating the table at once can collide in
    // PostgreSQL's catalog even with IF NOT EXISTS.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let ran = migrate(client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    ran
}

async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS warden_migrations (
                 number          BIGINT PRIMARY KEY,
                 description     TEXT   NOT NULL,
                 applied_unix_ms BIGINT NOT NULL
             )",
        )
        .await?;
    let mut ran = 0;
    for (number, description, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        let done = tx.query_opt("SELECT 1 FROM warden_migrations WHERE number = $1", &[number]).await?.is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO warden_migrations (number, description, applied_unix_ms) VALUES ($1, $2, $3)",
                &[number, description, &crate::clock::now_unix_ms()],
            )
            .await?;
            tracing::info!(migration = number, description, "database migrated");
            ran += 1;
        }
        tx.commit().await?;
    }
    Ok(ran)
}
