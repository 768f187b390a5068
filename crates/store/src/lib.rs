//! The two implementations of `tessera_core::store::Store`: SQLite (the embedded single-box
//! default) and PostgreSQL (several nodes on one database).
//!
//! Both share their SQL text (written with `$N` placeholders, which both accept) through the
//! `sql_store!` macro in `sql.rs`; what differs per backend (connection set-up, migrations, the
//! outbox's `FOR UPDATE SKIP LOCKED`) lives in `sqlite.rs` and `postgres.rs`.
//!
//! Architecture invariant: no SQL outside this crate; every trait method is one statement or one
//! transaction.

#[macro_use]
mod sql;
pub mod postgres;
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

/// The OTP compare-and-set: the counter moves to `new_counter` only if it is still <= `matched`.
pub(crate) const OTP_ACCEPT_SQL: &str =
    "UPDATE devices SET counter = $1, drift = $2, fail_count = 0, locked_until = 0 WHERE id = $3 AND counter <= $4";

pub(crate) fn ids_to_text(ids: &[i64]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

pub(crate) fn text_to_ids(s: &str) -> Vec<i64> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}
