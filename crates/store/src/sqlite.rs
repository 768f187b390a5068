//! SQLite backend: one file in WAL mode, `synchronous=FULL` (a reply means the write is on disk),
//! a busy timeout so concurrent writers queue instead of failing, foreign keys on.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

/// Outbox claims need no row locks: SQLite serialises writers.
const SKIP_LOCKED: &str = "";

impl SqliteStore {
    pub async fn open(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(opts).await?;
        if migrate {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        }
        Ok(SqliteStore { pool })
    }
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, SKIP_LOCKED);
