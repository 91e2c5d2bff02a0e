//! Versions and revisions are u64 in the model and BIGINT (i64) in PostgreSQL.

/// A model number as a column value (saturating: no version comes near).
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A column value as a model number (a negative one, which nothing writes, as 0).
pub fn small(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
