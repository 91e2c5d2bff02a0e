//! How the SQLite store starts a transaction that writes.

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Starts a transaction that writes. IMMEDIATE takes the write lock up front: a deferred
/// one that read first could not upgrade once another connection (another process on
/// the file) had written, and would fail as busy instead of waiting its turn.
pub fn write(conn: &mut Connection) -> Result<Transaction<'_>, rusqlite::Error> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}
