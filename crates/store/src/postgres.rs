//! PostgreSQL backend: a connection pool; atomic steps are single conditional statements, and the
//! outbox is claimed with `FOR UPDATE SKIP LOCKED` so several nodes share the work.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    pub(crate) pool: PgPool,
}

const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";

impl PgStore {
    pub async fn open(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        if migrate {
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        }
        Ok(PgStore { pool })
    }

    /// PostgreSQL serves reads and writes from one pool (row locks, not a file lock, order writers).
    fn r(&self) -> &PgPool {
        &self.pool
    }

    fn w(&self) -> &PgPool {
        &self.pool
    }

    /// One statement; PostgreSQL groups concurrent commits itself.
    async fn otp_cas(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> tessera_core::error::StoreResult<bool> {
        let r = sqlx::query(crate::OTP_ACCEPT_SQL)
            .bind(new_counter)
            .bind(drift)
            .bind(device_id)
            .bind(matched)
            .execute(&self.pool)
            .await
            .map_err(crate::map_err)?;
        Ok(r.rows_affected() == 1)
    }
}

sql_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, SKIP_LOCKED);
