//! Which store to open: `--database-url sqlite:///path/warden.db` or `postgres://…`, or
//! `--data-dir DIR` as shorthand for `sqlite://DIR/warden.db`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::api::Store;
use crate::store::error::StoreError;
use crate::store::postgres::{Postgres, Target};
use crate::store::sqlite::Sqlite;

/// A parsed database URL.
#[derive(Clone)]
pub enum Location {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by any number of replicas.
    Postgres(Box<Target>),
}

impl Location {
    /// Parses `sqlite:///abs/file.db`, `sqlite://relative/file.db` or `postgres://…`
    /// (`postgresql://` too); `ca_pem` is a private CA for the database's TLS.
    pub fn parse(url: &str, ca_pem: Option<&[u8]>) -> Result<Location, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Failed("the database URL sqlite:// names no file".into()));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Target::parse(url, ca_pem).map(|t| Location::Postgres(Box::new(t)));
        }
        Err(StoreError::Failed(format!(
            "the database URL must start with sqlite:// or postgres:// (got '{}')",
            url.split(':').next().unwrap_or_default()
        )))
    }

    /// The SQLite file in a data directory.
    pub fn data_dir(dir: PathBuf) -> Location {
        Location::Sqlite(dir.join("warden.db"))
    }

    /// What it is, for logs and messages (never a password).
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("SQLite at {}", path.display()),
            Location::Postgres(target) => target.name.clone(),
        }
    }

    /// Opens the store, creating or migrating its schema.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Location::Sqlite(path) => Arc::new(Sqlite::open_file(path)?),
            Location::Postgres(target) => Arc::new(Postgres::open(Target::clone(target)).await?),
        })
    }
}
