//! The SQLite schema, and how an older store's tables are brought up to it: tables are
//! created if missing, and columns added after a table was first released are added
//! (with defaults the older rows take), so a store written by any earlier release opens.

use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_versions (
    service         TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    author          TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    message         TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    source_yaml     TEXT    NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE IF NOT EXISTS sidecars (
    service           TEXT    NOT NULL,
    instance          TEXT    NOT NULL,
    peer              TEXT    NOT NULL,
    acked_version     INTEGER NOT NULL,
    acked_unix_ms     INTEGER NOT NULL,
    nacked_version    INTEGER NOT NULL,
    nack_error        TEXT    NOT NULL,
    nacked_unix_ms    INTEGER NOT NULL,
    last_seen_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (service, instance)
);
CREATE TABLE IF NOT EXISTS api_keys (
    id              TEXT    PRIMARY KEY,
    service         TEXT    NOT NULL,
    client          TEXT    NOT NULL,
    plan            TEXT    NOT NULL,
    sha256          BLOB    NOT NULL UNIQUE,
    prefix          TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL,
    revoked_unix_ms INTEGER NOT NULL,
    -- The credentials revision of the key's last change, so a sidecar can be sent only
    -- what changed after the revision it holds.
    revision        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_service ON api_keys (service, revision);
CREATE TABLE IF NOT EXISTS secrets (
    id              TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    value           BLOB    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS secrets_by_name ON secrets (name);
CREATE TABLE IF NOT EXISTS denials (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service    TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    unix_ms    INTEGER NOT NULL,
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
    dry_run    INTEGER NOT NULL,
    request_id_from_client INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS denials_by_time ON denials (unix_ms);
CREATE TABLE IF NOT EXISTS samples (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    service            TEXT    NOT NULL,
    instance           TEXT    NOT NULL,
    unix_ms            INTEGER NOT NULL,
    request_id         TEXT    NOT NULL,
    method             TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    path               TEXT    NOT NULL,
    client_ip          TEXT    NOT NULL,
    client_id          TEXT    NOT NULL,
    auth_provider      TEXT    NOT NULL,
    key_id             TEXT    NOT NULL,
    headers            TEXT    NOT NULL,
    credential_headers TEXT    NOT NULL,
    route              TEXT    NOT NULL,
    decision           TEXT    NOT NULL,
    rule               TEXT    NOT NULL,
    code               TEXT    NOT NULL,
    status             INTEGER NOT NULL,
    policy_version     INTEGER NOT NULL,
    weight             REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_service ON samples (service, id);
CREATE INDEX IF NOT EXISTS samples_by_time ON samples (unix_ms);
CREATE TABLE IF NOT EXISTS rollouts (
    service          TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    base_version     INTEGER NOT NULL,
    mode             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    canary_percent   INTEGER NOT NULL,
    canary_instances TEXT    NOT NULL,
    abort_if         TEXT    NOT NULL,
    author           TEXT    NOT NULL,
    started_unix_ms  INTEGER NOT NULL,
    ended_unix_ms    INTEGER NOT NULL,
    ended_by         TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE IF NOT EXISTS shadow_counts (
    service   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    denied    INTEGER NOT NULL,
    route     TEXT    NOT NULL,
    rule      TEXT    NOT NULL,
    code      TEXT    NOT NULL,
    client_id TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    examples  TEXT    NOT NULL,
    PRIMARY KEY (service, version, denied, route, rule, code, client_id)
);
-- One rollout running per service, whatever a replica believes.
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_running ON rollouts (service) WHERE state IN ('shadow', 'canary');
CREATE TABLE IF NOT EXISTS console_keys (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    key             BLOB    NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS denial_marks (
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
    unix_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Columns added after a table was first released: `CREATE TABLE IF NOT EXISTS` leaves an
/// older store's table as it was, so they are added here (with defaults the older rows take).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("denials", "request_id_from_client", "INTEGER NOT NULL DEFAULT 0"),
    ("sidecars", "replica", "TEXT NOT NULL DEFAULT ''"),
    ("sidecars", "connected", "INTEGER NOT NULL DEFAULT 0"),
    ("sidecars", "acked_credentials", "INTEGER NOT NULL DEFAULT 0"),
    ("denials", "policy_version", "INTEGER NOT NULL DEFAULT 0"),
    ("denials", "headers", "TEXT NOT NULL DEFAULT '[]'"),
    ("denials", "auth_provider", "TEXT NOT NULL DEFAULT ''"),
    ("denials", "key_id", "TEXT NOT NULL DEFAULT ''"),
    ("samples", "plan", "TEXT NOT NULL DEFAULT ''"),
    ("denials", "shadow", "INTEGER NOT NULL DEFAULT 0"),
    ("denials", "shadow_allowed_by", "INTEGER NOT NULL DEFAULT 0"),
    ("sidecars", "shadow_version", "INTEGER NOT NULL DEFAULT 0"),
    ("sidecars", "shadow_error", "TEXT NOT NULL DEFAULT ''"),
];

fn add_missing_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (table, column, decl) in ADDED_COLUMNS {
        let present: bool =
            conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2", [table, column], |r| {
                r.get(0)
            })?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// Creates what is missing.
pub fn create(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch(SCHEMA)?;
    add_missing_columns(conn)?;
    // On an added column: after it is there.
    conn.execute_batch("CREATE INDEX IF NOT EXISTS denials_by_shadow ON denials (shadow, id);")
}
