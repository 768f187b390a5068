//! The two implementations of `tessera_core::store::Store`: SQLite (the embedded single-box
//! default) and PostgreSQL (several nodes on one database).
//!
//! Both run the same SQL text (`queries.rs`, written with `$N` placeholders). PostgreSQL goes
//! through sqlx (`postgres.rs`); SQLite through rusqlite (`sqlite.rs`), which runs a read on the
//! calling thread and every write on one writer thread that group-commits whatever is waiting.
//!
//! Architecture invariant: no SQL outside this crate; every trait method is one statement or one
//! transaction.

pub mod postgres;
mod queries;
pub mod sqlite;

use std::sync::Arc;
use tessera_core::store::Store;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL (expected sqlite://PATH or postgres://...)")
        }
    }
}

/// Opens the database named by `url`, applying migrations when `migrate` is set.
pub async fn open(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    match Backend::of(url)? {
        Backend::Sqlite => Ok(Arc::new(sqlite::SqliteStore::open(url, max_connections, migrate).await?)),
        Backend::Postgres => Ok(Arc::new(postgres::PgStore::open(url, max_connections, migrate).await?)),
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> tessera_core::error::StoreError {
    use tessera_core::error::StoreError;
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Other(e.to_string()),
    }
}
