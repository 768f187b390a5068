//! SQLite backend (rusqlite): one file in WAL mode, `synchronous=FULL` (a reply means the write is
//! on disk), foreign keys on.
//!
//! **Reads** run on the calling thread, on a connection taken from a pool of read-only connections
//! with their prepared statements cached (WAL lets them run beside the writer). A point read costs a
//! few microseconds, less than a hand-off to another thread would; the scans that may take longer
//! (listings, user search) run on tokio's blocking pool.
//!
//! **Writes** all go to one writer thread that owns the only read-write connection. It takes every
//! write waiting at that moment (up to [`MAX_BATCH`]), runs each in its own SAVEPOINT inside one
//! `BEGIN IMMEDIATE` transaction in arrival order, COMMITs (one fsync for the whole batch: group
//! commit) and only then answers each request. A write that fails rolls back its own savepoint and
//! nothing else; if the COMMIT fails, every write of the batch is answered with the error. Each write
//! is still the same conditional statement as on PostgreSQL, so a code accepted by one write of a
//! batch is refused to a later one exactly as with separate transactions. Other processes on the same
//! file (the CLI) are ordered by SQLite's file lock and the busy timeout.

use crate::queries as q;
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql};
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_core::error::{StoreError, StoreResult};
use tessera_core::store::*;
use tokio::sync::oneshot;

/// Most writes committed together.
pub const MAX_BATCH: usize = 512;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_CACHE: usize = 64;

/// What a queued write does once its batch's COMMIT is known: answer its caller.
type Done = Box<dyn FnOnce(Option<&str>) + Send>;
/// A queued write: runs on the writer's connection (None: the batch could not begin) and returns
/// how to answer once the COMMIT is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Done + Send>;

pub struct SqliteStore {
    readers: Arc<Readers>,
    /// Unbounded, but never longer than the number of requests in flight: each waits for its answer.
    jobs: std::sync::mpsc::Sender<Job>,
}

/// How often the writer checkpoints the WAL into the database file (when it wrote anything).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Messages from the writer to the lock holder.
enum Hold {
    /// A write was committed: move the read transaction to the newest snapshot.
    Renew,
    /// End the read transaction (and say so) so that a checkpoint can run behind no old snapshot.
    Release(std::sync::mpsc::SyncSender<()>),
    /// Start the next read transaction.
    Resume,
}

/// Keeps a WAL read lock of the newest snapshot held by this process. SQLite counts this process's
/// connections reading each WAL snapshot ("read mark") and takes or drops the lock on the `-shm`
/// file (an `fcntl` call, under a mutex that the other runtime thread then waits on) whenever that
/// count goes from 0 to 1 and back, which with short point reads is nearly every read. A connection
/// that stays in a read transaction of the newest snapshot keeps the count above 0, so readers
/// only bump it: the writer tells it after every commit to move to the new snapshot.
///
/// The held transaction must not keep the WAL from being checkpointed and started over, so the
/// writer (which alone checkpoints, see `writer_loop`) asks it to let go for each checkpoint; the
/// transaction begun right after a complete checkpoint reads the database file only (read mark 0),
/// which does not keep the writer from starting the WAL over. It is renewed at least every
/// [`HOLD_AT_MOST`], and not held at all while the WAL file is over twice [`WAL_SIZE_LIMIT`].
fn hold_shared_lock(conn: Connection, wal: PathBuf, ctl: std::sync::mpsc::Receiver<Hold>) {
    let begin = || {
        // Another process's holder (several processes on one file) could keep the WAL from
        // starting over; a WAL grown past twice its size limit makes this one stand down too.
        if std::fs::metadata(&wal).map(|m| m.len() > 2 * WAL_SIZE_LIMIT).unwrap_or(false) {
            return;
        }
        // A deferred BEGIN starts the read transaction at its first read.
        if conn.execute_batch("BEGIN").is_ok() {
            if let Err(e) = conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0)) {
                tracing::warn!(error = %e, "SQLite: the lock holder could not begin a read");
            }
        }
    };
    let end = || {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("COMMIT");
        }
    };
    begin();
    // Between a Release and its Resume the holder holds nothing, whatever else arrives.
    let mut released = false;
    loop {
        match ctl.recv_timeout(HOLD_AT_MOST) {
            Ok(Hold::Release(ack)) => {
                end();
                released = true;
                let _ = ack.send(());
            }
            Ok(Hold::Resume) => {
                released = false;
                end();
                begin();
            }
            Ok(Hold::Renew) | Err(RecvTimeoutError::Timeout) => {
                if !released {
                    end();
                    begin();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    end();
}

/// The lock holder's snapshot is at most this old (another process may be writing the file).
const HOLD_AT_MOST: Duration = Duration::from_millis(100);
/// `journal_size_limit`: a WAL file that grew past this is truncated back when it starts over.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Read-only connections, opened on demand and kept for reuse.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Readers {
    fn open(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(c)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(c) => c,
            None => self.open().map_err(map_err)?,
        };
        let r = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        r.map_err(map_err)
    }
}

/// The file path of a `sqlite://PATH` (or `sqlite:PATH`) URL; query parameters are ignored.
fn path_of(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        anyhow::bail!("SQLite needs a file (sqlite://PATH): an in-memory database would lose every write");
    }
    Ok(PathBuf::from(path))
}

impl SqliteStore {
    pub async fn open(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<Self> {
        let path = path_of(url)?;
        let writer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!("SQLite refused WAL mode for {} (journal_mode is {mode})", path.display());
        }
        // The writer thread checkpoints (wal_autocheckpoint off), see `writer_loop`; a WAL that grew
        // large once is truncated back to 64 MiB when it starts over.
        writer.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
        ))?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if migrate {
            run_migrations(&path).await?;
        }
        let readers = Arc::new(Readers { path, idle: Mutex::new(Vec::new()), max_idle: max_connections.max(1) as usize });
        let (jobs, rx) = std::sync::mpsc::channel();
        let (hold, hold_rx) = std::sync::mpsc::channel();
        let (holder, wal) = (readers.open()?, PathBuf::from(format!("{}-wal", readers.path.display())));
        std::thread::Builder::new().name("sqlite-lock".into()).spawn(move || hold_shared_lock(holder, wal, hold_rx))?;
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || writer_loop(writer, rx, hold))?;
        let store = SqliteStore { readers, jobs };
        store.ping().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(store)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        self.readers.with(f)
    }

    /// A read that may scan many rows: on the blocking pool, so it does not hold up a runtime thread.
    async fn read_long<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static) -> StoreResult<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| StoreError::Other(format!("a database read stopped: {e}")))?
    }

    /// Queues a write for the next group commit and waits until that commit is on disk.
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn: Option<&Connection>| -> Done {
            let outcome = match conn {
                Some(c) => in_savepoint(c, f),
                None => Err(StoreError::Other("the write transaction could not begin".into())),
            };
            Box::new(move |commit_error: Option<&str>| {
                let reply = match commit_error {
                    Some(e) => Err(StoreError::Other(e.to_string())),
                    None => outcome,
                };
                let _ = tx.send(reply);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Other("the SQLite writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Other("the SQLite writer dropped a write".into()))?
    }
}

/// Applies the schema migrations (sqlx's migrator, so the `_sqlx_migrations` bookkeeping is shared
/// with every earlier version) on a connection of its own, closed afterwards.
async fn run_migrations(path: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection as _};
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let mut conn = opts.connect().await?;
    sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Runs `f` in a savepoint: its effects are kept if it succeeds and undone (alone) if it fails.
fn in_savepoint<T>(c: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
    exec(c, "SAVEPOINT w", &[]).map_err(map_err)?;
    match f(c) {
        Ok(v) => {
            exec(c, "RELEASE w", &[]).map_err(map_err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = exec(c, "ROLLBACK TO w", &[]);
            let _ = exec(c, "RELEASE w", &[]);
            Err(map_err(e))
        }
    }
}

/// The writer thread: batches of queued writes, one transaction and one fsync per batch; a
/// checkpoint at most every [`CHECKPOINT_EVERY`] after something was written. It ends (and with it
/// the lock holder) when the store is dropped.
fn writer_loop(conn: Connection, rx: std::sync::mpsc::Receiver<Job>, hold: std::sync::mpsc::Sender<Hold>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut answers: Vec<Done> = Vec::with_capacity(MAX_BATCH);
    let mut last_checkpoint = std::time::Instant::now();
    let mut dirty = false;
    loop {
        let next = if dirty {
            rx.recv_timeout(CHECKPOINT_EVERY.saturating_sub(last_checkpoint.elapsed()))
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let first = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                checkpoint(&conn, &hold);
                (dirty, last_checkpoint) = (false, std::time::Instant::now());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let error = match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) => {
                tracing::error!(error = %e, "SQLite: could not begin a write transaction");
                for job in batch.drain(..) {
                    answers.push(run_job(job, None));
                }
                Some(e.to_string())
            }
            Ok(()) => {
                for job in batch.drain(..) {
                    answers.push(run_job(job, Some(&conn)));
                }
                match conn.execute_batch("COMMIT") {
                    Ok(()) => {
                        let _ = hold.send(Hold::Renew);
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "SQLite: COMMIT failed; the batch's writes are answered with an error");
                        let _ = conn.execute_batch("ROLLBACK");
                        Some(e.to_string())
                    }
                }
            }
        };
        for answer in answers.drain(..) {
            answer(error.as_deref());
        }
        dirty = true;
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&conn, &hold);
            (dirty, last_checkpoint) = (false, std::time::Instant::now());
        }
    }
    if dirty {
        checkpoint(&conn, &hold);
    }
}

/// A passive checkpoint (it never waits for readers), with the lock holder out of the way.
fn checkpoint(conn: &Connection, hold: &std::sync::mpsc::Sender<Hold>) {
    let (ack, acked) = std::sync::mpsc::sync_channel(1);
    let released = hold.send(Hold::Release(ack)).is_ok() && acked.recv_timeout(Duration::from_millis(100)).is_ok();
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
        tracing::warn!(error = %e, "SQLite: checkpoint failed");
    }
    if !released {
        tracing::warn!("SQLite: the lock holder did not let go in time; checkpointed anyway");
    }
    // Also after a late answer: the holder then sees Release, then Resume, in that order.
    let _ = hold.send(Hold::Resume);
}

/// Runs one job; a panic in it (a bug) fails that write only (its savepoint is rolled back and its
/// caller gets an error), never the writer thread.
fn run_job(job: Job, conn: Option<&Connection>) -> Done {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
        Ok(done) => done,
        Err(_) => {
            tracing::error!("SQLite: a write panicked; it was rolled back");
            if let Some(c) = conn {
                let _ = c.execute_batch("ROLLBACK TO w; RELEASE w");
            }
            Box::new(|_| {})
        }
    }
}

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == SQLITE_CONSTRAINT_UNIQUE || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Binds the arguments of a statement written with `$N` placeholders: `$N` takes `args[N-1]`,
/// wherever and however often it appears.
fn bind(st: &mut Statement<'_>, args: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for i in 1..=st.parameter_count() {
        let n = st
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(st.parameter_name(i).unwrap_or("?").to_string()))?;
        let arg = n.checked_sub(1).and_then(|k| args.get(k)).ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        st.raw_bind_parameter(i, arg)?;
    }
    Ok(())
}

/// Executes a statement that returns no rows; the number of rows it changed.
fn exec(c: &Connection, sql: &str, args: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    let mut st = c.prepare_cached(sql)?;
    bind(&mut st, args)?;
    st.raw_execute()
}

/// The first row of a query (or of a statement with RETURNING), mapped by `f`.
fn one<T>(c: &Connection, sql: &str, args: &[&dyn ToSql], f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    let mut st = c.prepare_cached(sql)?;
    bind(&mut st, args)?;
    let mut rows = st.raw_query();
    match rows.next()? {
        Some(r) => Ok(Some(f(r)?)),
        None => Ok(None),
    }
}

/// Every row of a query, mapped by `f`.
fn all<T>(c: &Connection, sql: &str, args: &[&dyn ToSql], f: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> rusqlite::Result<Vec<T>> {
    let mut st = c.prepare_cached(sql)?;
    bind(&mut st, args)?;
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// A statement with RETURNING id (or a query of one integer) that must produce its row.
fn returning_i64(c: &Connection, sql: &str, args: &[&dyn ToSql]) -> rusqlite::Result<i64> {
    one(c, sql, args, |r| r.get(0))?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

// Row mappers read columns by position, in the order of the column lists in `queries.rs`
// (`account_cols!`, `user_cols!`, `device_cols!`, `outbox_cols!`, `audit_cols!`, and the
// session-token, ceremony and sent-code SELECTs); the conformance suite checks every field.

fn account_from(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow { id: r.get(0)?, name: r.get(1)?, key_hash: r.get(2)?, enabled: r.get::<_, i64>(3)? != 0, created_at: r.get(4)? })
}

fn user_from(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        username: r.get(2)?,
        first_name: r.get(3)?,
        last_name: r.get(4)?,
        mobile: r.get(5)?,
        email: r.get(6)?,
        password_hash: r.get(7)?,
        status: r.get(8)?,
        created_at: r.get(9)?,
        last_code_at: r.get(10)?,
    })
}

fn device_from(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        user_id: r.get(2)?,
        psn: r.get(3)?,
        device_type: r.get(4)?,
        otp_type: r.get(5)?,
        status: r.get(6)?,
        activated: r.get::<_, i64>(7)? != 0,
        seed: r.get(8)?,
        algorithm: r.get(9)?,
        digits: r.get(10)?,
        time_step: r.get(11)?,
        counter: r.get(12)?,
        drift: r.get(13)?,
        window_size: r.get(14)?,
        time_drift: r.get(15)?,
        fail_count: r.get(16)?,
        locked_until: r.get(17)?,
        key_handle: r.get(18)?,
        public_key: r.get(19)?,
        app_id: r.get(20)?,
        key_name: r.get(21)?,
        u2f_counter: r.get(22)?,
        attestation: r.get(23)?,
        flagged: r.get::<_, i64>(24)? != 0,
        created_at: r.get(25)?,
    })
}

fn outbox_from(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        channel: r.get(2)?,
        recipient: r.get(3)?,
        body: r.get(4)?,
        subject: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        expires_at: r.get(8)?,
        state: r.get(9)?,
        last_error: r.get(10)?,
    })
}

fn audit_from(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        account_id: r.get(2)?,
        account_name: r.get(3)?,
        op: r.get(4)?,
        username: r.get(5)?,
        psn: r.get(6)?,
        code: r.get(7)?,
        source: r.get(8)?,
        duration_us: r.get(9)?,
        count: r.get(10)?,
        seq: r.get(11)?,
        prev_id: r.get(12)?,
        hash: r.get(13)?,
    })
}

fn chain_from(r: &Row<'_>) -> rusqlite::Result<ChainHead> {
    Ok(ChainHead {
        account_id: r.get(0)?,
        head_id: r.get(1)?,
        head_seq: r.get(2)?,
        head_hash: r.get(3)?,
        anchor_id: r.get(4)?,
        anchor_seq: r.get(5)?,
        anchor_hash: r.get(6)?,
    })
}

/// Appends rows to the chain of one account (run by the writer thread, which orders every write;
/// `BEGIN IMMEDIATE` holds the file's write lock against other processes).
fn append_chain(c: &Connection, key: &ChainKey, account_id: i64, rows: &[&AuditRow]) -> rusqlite::Result<()> {
    let genesis = tessera_core::audit_chain::GENESIS.to_vec();
    exec(c, q::ENSURE_CHAIN, &[&account_id, &genesis])?;
    let mut head = one(c, q::CHAIN_HEAD, &[&account_id], chain_from)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    let first_id = returning_i64(c, q::SQLITE_NEXT_AUDIT_ID, &[])?;
    let sql = q::insert_rows(q::INSERT_AUDIT_WITH_ID_HEAD, q::AUDIT_WITH_ID_PARAMS, 1);
    for (id, a) in (first_id..).zip(rows.iter()) {
        let mut row = (*a).clone();
        row.account_id = Some(account_id);
        row.seq = Some(head.head_seq + 1);
        row.prev_id = Some(head.head_id);
        let hash = key.link(&head.head_hash, &row);
        exec(
            c,
            &sql,
            &[
                &id,
                &row.at_ms,
                &row.account_id,
                &row.account_name,
                &row.op,
                &row.username,
                &row.psn,
                &row.code,
                &row.source,
                &row.duration_us,
                &row.count,
                &row.seq,
                &row.prev_id,
                &hash,
            ],
        )?;
        head.head_id = id;
        head.head_seq += 1;
        head.head_hash = hash;
    }
    exec(c, q::SET_CHAIN_HEAD, &[&head.head_id, &head.head_seq, &head.head_hash, &account_id])?;
    Ok(())
}

fn upsert_unauth(c: &Connection, a: &AuditRow) -> rusqlite::Result<()> {
    let bucket = a.at_ms.div_euclid(60_000);
    exec(
        c,
        q::UPSERT_AUDIT_UNAUTH,
        &[&a.at_ms, &a.account_name, &a.op, &a.username, &a.psn, &a.code, &a.source, &a.duration_us, &a.count, &bucket],
    )
    .map(|_| ())
}

/// One chain's part of a prune: the rows up to the newest one older than `before_ms` go, and that
/// row becomes the anchor. Returns how many rows went.
fn prune_chain(c: &Connection, account_id: i64, before_ms: i64) -> rusqlite::Result<u64> {
    let Some(head) = one(c, q::CHAIN_HEAD, &[&account_id], chain_from)? else {
        return Ok(0);
    };
    let point = one(c, q::PRUNE_POINT, &[&account_id, &head.anchor_id, &before_ms], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
    })?;
    let Some((id, seq, hash)) = point else {
        return Ok(0);
    };
    let n = exec(c, q::PRUNE_CHAIN_ROWS, &[&account_id, &id])?;
    exec(c, q::SET_CHAIN_ANCHOR, &[&id, &seq, &hash, &account_id])?;
    Ok(n as u64)
}

fn session_token_from(r: &Row<'_>) -> rusqlite::Result<SessionTokenRow> {
    Ok(SessionTokenRow {
        account_id: r.get(0)?,
        user_id: r.get(1)?,
        token_type: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        owner_key: r.get(5)?,
    })
}

fn u2f_session_from(r: &Row<'_>) -> rusqlite::Result<U2fSessionRow> {
    Ok(U2fSessionRow {
        account_id: r.get(0)?,
        user_id: r.get(1)?,
        kind: r.get(2)?,
        app_id: r.get(3)?,
        challenge: r.get(4)?,
        device_ids: q::text_to_ids(&r.get::<_, String>(5)?),
        target_device: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

fn webauthn_session_from(r: &Row<'_>) -> rusqlite::Result<WebAuthnSessionRow> {
    Ok(WebAuthnSessionRow {
        account_id: r.get(0)?,
        user_id: r.get(1)?,
        kind: r.get(2)?,
        rp_id: r.get(3)?,
        challenge: r.get(4)?,
        state: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

fn sent_code_from(r: &Row<'_>) -> rusqlite::Result<SentCodeRow> {
    Ok(SentCodeRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        user_id: r.get(2)?,
        device_id: r.get(3)?,
        code_hash: r.get(4)?,
        expires_at: r.get(5)?,
        used: r.get::<_, i64>(6)? != 0,
    })
}

fn insert_outbox(c: &Connection, m: &OutboxRow) -> rusqlite::Result<i64> {
    returning_i64(c, q::INSERT_OUTBOX, &[&m.account_id, &m.channel, &m.recipient, &m.subject, &m.body, &m.next_attempt_at, &m.expires_at])
}

#[async_trait::async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, name: &str, key_hash: &[u8], now: i64) -> StoreResult<AccountRow> {
        let (name, key_hash) = (name.to_string(), key_hash.to_vec());
        self.write(move |c| one(c, q::CREATE_ACCOUNT, &[&name, &key_hash, &now], account_from)?.ok_or(rusqlite::Error::QueryReturnedNoRows))
            .await
    }
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<AccountRow>> {
        self.read(|c| one(c, q::ACCOUNT_BY_NAME, &[&name], account_from))
    }
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>> {
        self.read_long(|c| all(c, q::LIST_ACCOUNTS, &[], account_from)).await
    }
    async fn set_account_key(&self, name: &str, key_hash: &[u8]) -> StoreResult<bool> {
        let (name, key_hash) = (name.to_string(), key_hash.to_vec());
        self.write(move |c| Ok(exec(c, q::SET_ACCOUNT_KEY, &[&key_hash, &name])? == 1)).await
    }
    async fn set_account_enabled(&self, name: &str, enabled: bool) -> StoreResult<bool> {
        let (name, enabled) = (name.to_string(), i64::from(enabled));
        self.write(move |c| Ok(exec(c, q::SET_ACCOUNT_ENABLED, &[&enabled, &name])? == 1)).await
    }
    async fn count_accounts(&self) -> StoreResult<i64> {
        self.read(|c| returning_i64(c, q::COUNT_ACCOUNTS, &[]))
    }
    async fn add_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
        let origin = origin.to_string();
        self.write(move |c| Ok(exec(c, q::ADD_FACET, &[&account_id, &origin])? == 1)).await
    }
    async fn remove_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
        let origin = origin.to_string();
        self.write(move |c| Ok(exec(c, q::REMOVE_FACET, &[&account_id, &origin])? == 1)).await
    }
    async fn list_facets(&self, account_id: i64) -> StoreResult<Vec<String>> {
        self.read(|c| all(c, q::LIST_FACETS, &[&account_id], |r| r.get("origin")))
    }
    async fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|c| one(c, q::META_GET, &[&key], |r| r.get("v")))
    }
    async fn meta_init(&self, key: &str, value: &str) -> StoreResult<String> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |c| {
            exec(c, q::META_INIT, &[&key, &value])?;
            one(c, q::META_GET, &[&key], |r| r.get("v"))?.ok_or(rusqlite::Error::QueryReturnedNoRows)
        })
        .await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| returning_i64(c, q::PING, &[]).map(|_| ()))
    }
}

#[async_trait::async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &UserRow, username_key: &str) -> StoreResult<i64> {
        let (u, username_key) = (u.clone(), username_key.to_string());
        self.write(move |c| {
            let email_key = u.email.to_lowercase();
            returning_i64(
                c,
                q::CREATE_USER,
                &[
                    &u.account_id,
                    &u.username,
                    &username_key,
                    &u.first_name,
                    &u.last_name,
                    &u.mobile,
                    &u.email,
                    &email_key,
                    &u.password_hash,
                    &u.status,
                    &u.created_at,
                ],
            )
        })
        .await
    }
    async fn user_by_key(&self, account_id: i64, username_key: &str) -> StoreResult<Option<UserRow>> {
        self.read(|c| one(c, q::USER_BY_KEY, &[&account_id, &username_key], user_from))
    }
    async fn user_by_id(&self, account_id: i64, user_id: i64) -> StoreResult<Option<UserRow>> {
        self.read(|c| one(c, q::USER_BY_ID, &[&account_id, &user_id], user_from))
    }
    async fn update_user(&self, account_id: i64, user_id: i64, p: &UserPatch) -> StoreResult<bool> {
        let p = p.clone();
        self.write(move |c| {
            let email_key = p.email.as_ref().map(|e| e.to_lowercase());
            let n = exec(
                c,
                q::UPDATE_USER,
                &[&p.first_name, &p.last_name, &p.mobile, &p.email, &email_key, &p.password_hash, &p.status, &account_id, &user_id],
            )?;
            Ok(n == 1)
        })
        .await
    }
    async fn delete_user(&self, account_id: i64, user_id: i64, _username_key: &str, _remove_related: bool) -> StoreResult<bool> {
        // The audit trail is append-only: the user's history stays.
        self.write(move |c| {
            for stmt in q::DELETE_USER_RELATED {
                exec(c, stmt, &[&account_id, &user_id])?;
            }
            let n = exec(c, q::DELETE_USER, &[&account_id, &user_id])?;
            Ok(n == 1)
        })
        .await
    }
    async fn find_users(&self, account_id: i64, pattern: &str, by_email: bool, limit: i64) -> StoreResult<Vec<UserRow>> {
        let sql = if by_email { q::FIND_USERS_BY_EMAIL } else { q::FIND_USERS_BY_NAME };
        let pattern = pattern.to_string();
        self.read_long(move |c| all(c, sql, &[&account_id, &pattern, &limit], user_from)).await
    }
    async fn webauthn_user_handle(&self, account_id: i64, user_id: i64, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let candidate = candidate.to_vec();
        self.write(move |c| {
            exec(c, q::SET_WEBAUTHN_HANDLE, &[&candidate, &account_id, &user_id])?;
            Ok(one(c, q::WEBAUTHN_HANDLE, &[&account_id, &user_id], |r| r.get::<_, Option<Vec<u8>>>(0))?.flatten())
        })
        .await
    }
    async fn user_by_webauthn_handle(&self, account_id: i64, handle: &[u8]) -> StoreResult<Option<UserRow>> {
        self.read(|c| one(c, q::USER_BY_WEBAUTHN_HANDLE, &[&account_id, &handle], user_from))
    }
    async fn password_attempt(&self, account_id: i64, user_id: i64, now: i64, max_failures: i64, lock_until: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::PASSWORD_ATTEMPT, &[&max_failures, &lock_until, &account_id, &user_id, &now])? == 1)).await
    }
    async fn password_reset(&self, account_id: i64, user_id: i64) -> StoreResult<()> {
        self.write(move |c| exec(c, q::PASSWORD_RESET, &[&account_id, &user_id]).map(|_| ())).await
    }
    async fn user_keys_page(&self, after_id: i64, limit: i64) -> StoreResult<Vec<UserKeyRow>> {
        self.read_long(move |c| {
            all(c, q::USER_KEYS_PAGE, &[&after_id, &limit], |r| {
                Ok(UserKeyRow { id: r.get(0)?, account_id: r.get(1)?, username: r.get(2)?, username_key: r.get(3)? })
            })
        })
        .await
    }
    async fn set_username_key(&self, account_id: i64, user_id: i64, username_key: &str) -> StoreResult<bool> {
        let key = username_key.to_string();
        self.write(move |c| Ok(exec(c, q::SET_USERNAME_KEY, &[&key, &account_id, &user_id])? == 1)).await
    }
}

#[async_trait::async_trait]
impl DeviceStore for SqliteStore {
    async fn create_device(&self, d: &DeviceRow) -> StoreResult<i64> {
        let d = d.clone();
        self.write(move |c| {
            let activated = i64::from(d.activated);
            returning_i64(
                c,
                q::CREATE_DEVICE,
                &[
                    &d.account_id,
                    &d.user_id,
                    &d.psn,
                    &d.device_type,
                    &d.otp_type,
                    &d.status,
                    &activated,
                    &d.seed,
                    &d.algorithm,
                    &d.digits,
                    &d.time_step,
                    &d.counter,
                    &d.drift,
                    &d.window_size,
                    &d.time_drift,
                    &d.key_handle,
                    &d.public_key,
                    &d.app_id,
                    &d.key_name,
                    &d.u2f_counter,
                    &d.attestation,
                    &d.created_at,
                ],
            )
        })
        .await
    }
    async fn device_by_psn(&self, account_id: i64, psn: &str) -> StoreResult<Option<DeviceRow>> {
        self.read(|c| one(c, q::DEVICE_BY_PSN, &[&account_id, &psn], device_from))
    }
    async fn device_by_id(&self, account_id: i64, id: i64) -> StoreResult<Option<DeviceRow>> {
        self.read(|c| one(c, q::DEVICE_BY_ID, &[&account_id, &id], device_from))
    }
    async fn devices_of_user(&self, account_id: i64, user_id: i64) -> StoreResult<Vec<DeviceRow>> {
        self.read(|c| all(c, q::DEVICES_OF_USER, &[&account_id, &user_id], device_from))
    }
    async fn assign_device(&self, account_id: i64, device_id: i64, user_id: Option<i64>, only_if_unassigned: bool) -> StoreResult<bool> {
        let sql = if only_if_unassigned { q::ASSIGN_DEVICE_IF_FREE } else { q::ASSIGN_DEVICE };
        self.write(move |c| Ok(exec(c, sql, &[&user_id, &account_id, &device_id])? == 1)).await
    }
    async fn delete_device(&self, account_id: i64, device_id: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::DELETE_DEVICE, &[&account_id, &device_id])? == 1)).await
    }
    async fn set_device_status(&self, account_id: i64, device_id: i64, status: i64) -> StoreResult<bool> {
        let sql = if status == 0 { q::ENABLE_DEVICE } else { q::SET_DEVICE_STATUS };
        self.write(move |c| Ok(exec(c, sql, &[&status, &account_id, &device_id])? == 1)).await
    }
    async fn otp_accept(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::OTP_ACCEPT, &[&new_counter, &drift, &device_id, &matched])? == 1)).await
    }
    async fn otp_resync(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::OTP_RESYNC, &[&new_counter, &drift, &device_id, &matched])? == 1)).await
    }
    async fn otp_fail(&self, device_id: i64, max_failures: i64, lock_until: i64) -> StoreResult<i64> {
        self.write(move |c| Ok(one(c, q::OTP_FAIL, &[&max_failures, &lock_until, &device_id], |r| r.get(0))?.unwrap_or(0))).await
    }
    async fn u2f_bind(&self, d: &DeviceRow) -> StoreResult<bool> {
        let d = d.clone();
        self.write(move |c| {
            let n = exec(
                c,
                q::U2F_BIND,
                &[&d.key_handle, &d.public_key, &d.app_id, &d.key_name, &d.u2f_counter, &d.attestation, &d.user_id, &d.account_id, &d.id],
            )?;
            Ok(n == 1)
        })
        .await
    }
    async fn u2f_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::U2F_COUNTER_ADVANCE, &[&counter, &device_id])? == 1)).await
    }
    async fn u2f_flag(&self, device_id: i64) -> StoreResult<()> {
        self.write(move |c| exec(c, q::U2F_FLAG, &[&device_id]).map(|_| ())).await
    }
    async fn unassigned_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
        self.read_long(move |c| all(c, q::UNASSIGNED_DEVICES, &[&account_id, &limit], device_from)).await
    }
    async fn account_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
        self.read_long(move |c| all(c, q::ACCOUNT_DEVICES, &[&account_id, &limit], device_from)).await
    }
    async fn import_devices(&self, devices: &[DeviceRow]) -> StoreResult<usize> {
        let devices = devices.to_vec();
        self.write(move |c| {
            for d in &devices {
                let activated = i64::from(d.activated);
                exec(
                    c,
                    q::IMPORT_DEVICE,
                    &[
                        &d.account_id,
                        &d.psn,
                        &d.device_type,
                        &d.otp_type,
                        &activated,
                        &d.seed,
                        &d.algorithm,
                        &d.digits,
                        &d.time_step,
                        &d.counter,
                        &d.created_at,
                    ],
                )?;
            }
            Ok(devices.len())
        })
        .await
    }
    async fn devices_by_key_handle(&self, account_id: i64, key_handle: &[u8]) -> StoreResult<Vec<DeviceRow>> {
        self.read(|c| all(c, q::DEVICES_BY_KEY_HANDLE, &[&account_id, &key_handle], device_from))
    }
    async fn fido_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::FIDO_COUNTER_ADVANCE, &[&counter, &device_id])? == 1)).await
    }
}

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn create_session_token(&self, token_hash: &[u8], s: &SessionTokenRow) -> StoreResult<()> {
        let (h, s) = (token_hash.to_vec(), s.clone());
        self.write(move |c| {
            exec(c, q::CREATE_SESSION_TOKEN, &[&h, &s.account_id, &s.user_id, &s.token_type, &s.created_at, &s.expires_at]).map(|_| ())
        })
        .await
    }
    async fn session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionTokenRow>> {
        self.read(|c| one(c, q::SESSION_TOKEN, &[&token_hash, &account_id, &now], session_token_from))
    }
    async fn delete_session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<bool> {
        let h = token_hash.to_vec();
        self.write(move |c| Ok(exec(c, q::DELETE_SESSION_TOKEN, &[&h, &account_id, &now])? == 1)).await
    }
    async fn create_u2f_session(&self, id_hash: &[u8], s: &U2fSessionRow) -> StoreResult<()> {
        let (h, s) = (id_hash.to_vec(), s.clone());
        self.write(move |c| {
            let ids = q::ids_to_text(&s.device_ids);
            exec(
                c,
                q::CREATE_U2F_SESSION,
                &[&h, &s.account_id, &s.user_id, &s.kind, &s.app_id, &s.challenge, &ids, &s.target_device, &s.expires_at],
            )
            .map(|_| ())
        })
        .await
    }
    async fn consume_u2f_session(
        &self,
        account_id: i64,
        user_id: i64,
        kind: &str,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<U2fSessionRow>> {
        let (kind, h) = (kind.to_string(), id_hash.to_vec());
        self.write(move |c| one(c, q::CONSUME_U2F_SESSION, &[&h, &account_id, &user_id, &kind, &now], u2f_session_from)).await
    }
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.write(move |c| {
            let mut n = 0u64;
            for stmt in q::PURGE_EXPIRED {
                n += exec(c, stmt, &[&now])? as u64;
            }
            Ok(n)
        })
        .await
    }
    async fn create_webauthn_session(&self, id_hash: &[u8], s: &WebAuthnSessionRow) -> StoreResult<()> {
        let (h, s) = (id_hash.to_vec(), s.clone());
        self.write(move |c| {
            exec(c, q::CREATE_WEBAUTHN_SESSION, &[&h, &s.account_id, &s.user_id, &s.kind, &s.rp_id, &s.challenge, &s.state, &s.expires_at])
                .map(|_| ())
        })
        .await
    }
    async fn consume_webauthn_session(
        &self,
        account_id: i64,
        kind: &str,
        id_hash: &[u8],
        user_id: Option<i64>,
        now: i64,
    ) -> StoreResult<Option<WebAuthnSessionRow>> {
        let (kind, h, user) = (kind.to_string(), id_hash.to_vec(), user_id.unwrap_or(-1));
        self.write(move |c| one(c, q::CONSUME_WEBAUTHN_SESSION, &[&h, &account_id, &kind, &now, &user], webauthn_session_from)).await
    }
}

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, rows: &[AuditRow], key: &ChainKey) -> StoreResult<()> {
        // One prepared single-row INSERT per row, inside the writer's batch transaction (measured
        // faster here than multi-row INSERTs of 64 rows).
        let (rows, key) = (rows.to_vec(), key.clone());
        self.write(move |c| {
            let mut chains: std::collections::BTreeMap<i64, Vec<&AuditRow>> = std::collections::BTreeMap::new();
            for a in &rows {
                match a.account_id {
                    Some(account_id) => chains.entry(account_id).or_default().push(a),
                    None => upsert_unauth(c, a)?,
                }
            }
            for (account_id, chain_rows) in chains {
                append_chain(c, &key, account_id, &chain_rows)?;
            }
            Ok(())
        })
        .await
    }
    async fn audit_chain_heads(&self, account_id: Option<i64>) -> StoreResult<Vec<ChainHead>> {
        self.read_long(move |c| match account_id {
            Some(a) => all(c, q::CHAIN_HEAD, &[&a], chain_from),
            None => all(c, q::CHAIN_HEADS_ALL, &[], chain_from),
        })
        .await
    }
    async fn audit_rows_after(&self, account_id: i64, after_id: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        self.read_long(move |c| all(c, q::AUDIT_ROWS_AFTER, &[&account_id, &after_id, &limit], audit_from)).await
    }
    async fn prune_audit(&self, account_id: Option<i64>, before_ms: i64) -> StoreResult<u64> {
        self.write(move |c| {
            let mut n = 0;
            match account_id {
                Some(a) => {
                    n += prune_chain(c, a, before_ms)?;
                    n += exec(c, q::PRUNE_UNCHAINED_OF, &[&a, &before_ms])? as u64;
                }
                None => {
                    for head in all(c, q::CHAIN_HEADS_ALL, &[], chain_from)? {
                        n += prune_chain(c, head.account_id, before_ms)?;
                    }
                    n += exec(c, q::PRUNE_UNCHAINED_ALL, &[&before_ms])? as u64;
                }
            }
            Ok(n)
        })
        .await
    }
    async fn list_audit(&self, account_id: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        self.read_long(move |c| match account_id {
            Some(a) => all(c, q::LIST_AUDIT_OF, &[&a, &limit], audit_from),
            None => all(c, q::LIST_AUDIT_ALL, &[&limit], audit_from),
        })
        .await
    }
}

#[async_trait::async_trait]
impl DeliveryStore for SqliteStore {
    async fn enqueue_code(&self, code: &SentCodeRow, msg: &OutboxRow, window_start: i64, limit: i64) -> StoreResult<Option<(i64, i64)>> {
        let (code, msg) = (code.clone(), msg.clone());
        // The writer serialises every write (and BEGIN IMMEDIATE holds the file's write lock against
        // other processes), so the count and the insert cannot interleave with another send.
        self.write(move |c| {
            let n = returning_i64(c, q::COUNT_SENT, &[&code.account_id, &code.user_id, &window_start])?;
            if n >= limit {
                return Ok(None);
            }
            exec(c, q::TOUCH_USER_SEND, &[&code.account_id, &code.user_id, &msg.next_attempt_at])?;
            let code_id = returning_i64(
                c,
                q::INSERT_SENT_CODE,
                &[&code.account_id, &code.user_id, &code.device_id, &code.code_hash, &msg.next_attempt_at, &code.expires_at],
            )?;
            let msg_id = insert_outbox(c, &msg)?;
            Ok(Some((code_id, msg_id)))
        })
        .await
    }
    async fn enqueue_message(&self, msg: &OutboxRow) -> StoreResult<i64> {
        let msg = msg.clone();
        self.write(move |c| insert_outbox(c, &msg)).await
    }
    async fn sent_codes(&self, account_id: i64, user_id: i64, since: i64) -> StoreResult<Vec<SentCodeRow>> {
        self.read(|c| all(c, q::SENT_CODES, &[&account_id, &user_id, &since], sent_code_from))
    }
    async fn consume_sent_code(&self, id: i64) -> StoreResult<bool> {
        self.write(move |c| Ok(exec(c, q::CONSUME_SENT_CODE, &[&id])? == 1)).await
    }
    async fn claim_outbox(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        self.write(move |c| all(c, q::CLAIM_OUTBOX, &[&lease_until, &now, &limit], outbox_from)).await
    }
    async fn claim_outbox_one(&self, id: i64, now: i64, lease_until: i64) -> StoreResult<Option<OutboxRow>> {
        self.write(move |c| one(c, q::CLAIM_OUTBOX_ONE, &[&lease_until, &id, &now], outbox_from)).await
    }
    async fn finish_outbox(&self, id: i64, state: &str, next_attempt_at: i64, error: &str) -> StoreResult<()> {
        let sql = if q::finish_clears_body(state) { q::FINISH_OUTBOX_CLEAR } else { q::FINISH_OUTBOX };
        let (state, error) = (state.to_string(), error.to_string());
        self.write(move |c| exec(c, sql, &[&state, &next_attempt_at, &error, &id]).map(|_| ())).await
    }
    async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRow>> {
        self.read(|c| one(c, q::OUTBOX_BY_ID, &[&id], outbox_from))
    }
}

fn radius_client_from(r: &Row<'_>) -> rusqlite::Result<RadiusClientRow> {
    Ok(RadiusClientRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        account_name: r.get(2)?,
        address: r.get(3)?,
        secret: r.get(4)?,
        otp_only: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
    })
}

#[async_trait::async_trait]
impl RadiusStore for SqliteStore {
    async fn add_radius_client(&self, c: &RadiusClientRow) -> StoreResult<i64> {
        let c = c.clone();
        self.write(move |conn| {
            let otp_only = i64::from(c.otp_only);
            returning_i64(conn, q::ADD_RADIUS_CLIENT, &[&c.account_id, &c.address, &c.secret, &otp_only, &c.created_at])
        })
        .await
    }
    async fn remove_radius_client(&self, account_id: i64, address: &str) -> StoreResult<bool> {
        let address = address.to_string();
        self.write(move |c| Ok(exec(c, q::REMOVE_RADIUS_CLIENT, &[&account_id, &address])? == 1)).await
    }
    async fn list_radius_clients(&self, account_id: Option<i64>) -> StoreResult<Vec<RadiusClientRow>> {
        self.read_long(move |c| match account_id {
            Some(a) => all(c, q::LIST_RADIUS_CLIENTS_OF, &[&a], radius_client_from),
            None => all(c, q::LIST_RADIUS_CLIENTS_ALL, &[], radius_client_from),
        })
        .await
    }
    async fn create_radius_challenge(&self, state_hash: &[u8], row: &RadiusChallengeRow) -> StoreResult<()> {
        let (h, row) = (state_hash.to_vec(), row.clone());
        self.write(move |c| exec(c, q::CREATE_RADIUS_CHALLENGE, &[&h, &row.account_id, &row.user_key, &row.expires_at]).map(|_| ())).await
    }
    async fn consume_radius_challenge(
        &self,
        account_id: i64,
        state_hash: &[u8],
        user_key: &str,
        now: i64,
    ) -> StoreResult<Option<RadiusChallengeRow>> {
        let (h, user_key) = (state_hash.to_vec(), user_key.to_string());
        self.write(move |c| {
            one(c, q::CONSUME_RADIUS_CHALLENGE, &[&h, &account_id, &user_key, &now], |r| {
                Ok(RadiusChallengeRow { account_id: r.get(0)?, user_key: r.get(1)?, expires_at: r.get(2)? })
            })
        })
        .await
    }
    async fn purge_radius_challenges(&self, now: i64) -> StoreResult<u64> {
        self.write(move |c| Ok(exec(c, q::PURGE_RADIUS_CHALLENGES, &[&now])? as u64)).await
    }
}
