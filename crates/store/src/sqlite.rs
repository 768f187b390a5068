//! SQLite backend: one file in WAL mode, `synchronous=FULL` (a reply means the write is on disk),
//! foreign keys on. Reads use a pool of read-only connections (WAL lets them run beside the
//! writer); every write goes through a pool of ONE connection, so writers wait their turn in the
//! pool's queue rather than in SQLite's busy handler (which sleeps in steps of milliseconds). The
//! busy timeout remains for other processes writing the same file.
//!
//! Group commit: OTP counter advances (the hot write of every successful validation) are queued to
//! one task that applies all waiting advances in one transaction and answers each request only after
//! that transaction's COMMIT (one fsync for the whole batch). Each advance is still its own
//! conditional UPDATE, applied in arrival order inside the transaction, so a code accepted by one
//! request of a batch is refused to a later one, exactly as with separate transactions.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;
use tessera_core::error::StoreError;
use tokio::sync::{mpsc, oneshot};

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    cas: mpsc::Sender<CasJob>,
}

/// One queued OTP counter advance and where to send its outcome.
struct CasJob {
    device_id: i64,
    matched: i64,
    new_counter: i64,
    drift: i64,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// Most advances committed together.
const MAX_BATCH: usize = 256;

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
        let writer =
            SqlitePoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(30)).connect_with(opts.clone()).await?;
        if migrate {
            sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        }
        let reader = SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(opts.read_only(true)).await?;
        let (cas, rx) = mpsc::channel(4096);
        tokio::spawn(group_commit(writer.clone(), rx));
        Ok(SqliteStore { reader, writer, cas })
    }

    /// Queues an OTP counter advance for the next group commit and waits for its outcome.
    async fn otp_cas(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> tessera_core::error::StoreResult<bool> {
        let (reply, rx) = oneshot::channel();
        let job = CasJob { device_id, matched, new_counter, drift, reply };
        self.cas.send(job).await.map_err(|_| StoreError::Other("the group-commit writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Other("the group-commit writer dropped a request".into()))?.map_err(StoreError::Other)
    }

    fn r(&self) -> &SqlitePool {
        &self.reader
    }

    fn w(&self) -> &SqlitePool {
        &self.writer
    }
}

/// Applies queued counter advances in batches: one transaction, one fsync, then every reply.
async fn group_commit(writer: SqlitePool, mut rx: mpsc::Receiver<CasJob>) {
    let mut jobs: Vec<CasJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let outcome = apply(&writer, &jobs).await;
        for (i, job) in jobs.drain(..).enumerate() {
            let r = match &outcome {
                Ok(results) => Ok(results.get(i).copied().unwrap_or(false)),
                Err(e) => Err(e.clone()),
            };
            let _ = job.reply.send(r);
        }
    }
}

async fn apply(writer: &SqlitePool, jobs: &[CasJob]) -> Result<Vec<bool>, String> {
    let mut tx = writer.begin().await.map_err(|e| e.to_string())?;
    let mut results = Vec::with_capacity(jobs.len());
    for j in jobs {
        let r = sqlx::query(crate::OTP_ACCEPT_SQL)
            .bind(j.new_counter)
            .bind(j.drift)
            .bind(j.device_id)
            .bind(j.matched)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        results.push(r.rows_affected() == 1);
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(results)
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, SKIP_LOCKED);
