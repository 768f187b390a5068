//! PostgreSQL backend: a connection pool; atomic steps are single conditional statements, and the
//! outbox is claimed with `FOR UPDATE SKIP LOCKED` so several nodes share the work. The SQL text is
//! the one in `queries.rs`, shared with the SQLite backend.

use crate::map_err;
use crate::queries as q;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use std::str::FromStr;
use std::time::Duration;
use tessera_core::error::StoreResult;
use tessera_core::store::*;

pub struct PgStore {
    pub(crate) pool: PgPool,
}

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
}

fn account_from(r: &PgRow) -> Result<AccountRow, sqlx::Error> {
    Ok(AccountRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        key_hash: r.try_get("key_hash")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn user_from(r: &PgRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        username: r.try_get("username")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        mobile: r.try_get("mobile")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        last_code_at: r.try_get("last_code_at")?,
    })
}

fn device_from(r: &PgRow) -> Result<DeviceRow, sqlx::Error> {
    Ok(DeviceRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        user_id: r.try_get("user_id")?,
        psn: r.try_get("psn")?,
        device_type: r.try_get("device_type")?,
        otp_type: r.try_get("otp_type")?,
        status: r.try_get("status")?,
        activated: r.try_get::<i64, _>("activated")? != 0,
        seed: r.try_get("seed")?,
        algorithm: r.try_get("algorithm")?,
        digits: r.try_get("digits")?,
        time_step: r.try_get("time_step")?,
        counter: r.try_get("counter")?,
        drift: r.try_get("drift")?,
        window_size: r.try_get("window_size")?,
        time_drift: r.try_get("time_drift")?,
        fail_count: r.try_get("fail_count")?,
        locked_until: r.try_get("locked_until")?,
        key_handle: r.try_get("key_handle")?,
        public_key: r.try_get("public_key")?,
        app_id: r.try_get("app_id")?,
        key_name: r.try_get("key_name")?,
        u2f_counter: r.try_get("u2f_counter")?,
        attestation: r.try_get("attestation")?,
        flagged: r.try_get::<i64, _>("flagged")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn outbox_from(r: &PgRow) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        channel: r.try_get("channel")?,
        recipient: r.try_get("recipient")?,
        body: r.try_get("body")?,
        subject: r.try_get("subject")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        expires_at: r.try_get("expires_at")?,
        state: r.try_get("state")?,
        last_error: r.try_get("last_error")?,
    })
}

fn audit_from(r: &PgRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        account_id: r.try_get("account_id")?,
        account_name: r.try_get("account_name")?,
        op: r.try_get("op")?,
        username: r.try_get("username")?,
        psn: r.try_get("psn")?,
        code: r.try_get("code")?,
        source: r.try_get("source")?,
        duration_us: r.try_get("duration_us")?,
        count: r.try_get("req_count")?,
        seq: r.try_get("seq")?,
        prev_id: r.try_get("prev_id")?,
        hash: r.try_get("hash")?,
    })
}

fn chain_from(r: &PgRow) -> Result<ChainHead, sqlx::Error> {
    Ok(ChainHead {
        account_id: r.try_get("account_id")?,
        head_id: r.try_get("head_id")?,
        head_seq: r.try_get("head_seq")?,
        head_hash: r.try_get("head_hash")?,
        anchor_id: r.try_get("anchor_id")?,
        anchor_seq: r.try_get("anchor_seq")?,
        anchor_hash: r.try_get("anchor_hash")?,
    })
}

/// One chain's part of a prune, inside the caller's transaction (see the SQLite twin).
async fn prune_chain(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, account_id: i64, before_ms: i64) -> StoreResult<u64> {
    let Some(head) = sqlx::query(q::CHAIN_HEAD_FOR_UPDATE).bind(account_id).fetch_optional(&mut **tx).await.map_err(map_err)? else {
        return Ok(0);
    };
    let head = chain_from(&head).map_err(map_err)?;
    let point = sqlx::query(q::PRUNE_POINT)
        .bind(account_id)
        .bind(head.anchor_id)
        .bind(before_ms)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    let Some(point) = point else {
        return Ok(0);
    };
    let (id, seq, hash): (i64, i64, Vec<u8>) =
        (point.try_get("id").map_err(map_err)?, point.try_get("seq").map_err(map_err)?, point.try_get("hash").map_err(map_err)?);
    let n = sqlx::query(q::PRUNE_CHAIN_ROWS).bind(account_id).bind(id).execute(&mut **tx).await.map_err(map_err)?.rows_affected();
    sqlx::query(q::SET_CHAIN_ANCHOR).bind(id).bind(seq).bind(hash).bind(account_id).execute(&mut **tx).await.map_err(map_err)?;
    Ok(n)
}

async fn insert_outbox<'e, E>(e: E, m: &OutboxRow) -> StoreResult<i64>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let r = sqlx::query(q::INSERT_OUTBOX)
        .bind(m.account_id)
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(m.next_attempt_at)
        .bind(m.expires_at)
        .fetch_one(e)
        .await
        .map_err(map_err)?;
    r.try_get::<i64, _>("id").map_err(map_err)
}

fn collect<T>(rows: Vec<PgRow>, f: fn(&PgRow) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect::<Result<Vec<_>, _>>().map_err(map_err)
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, name: &str, key_hash: &[u8], now: i64) -> StoreResult<AccountRow> {
        let r = sqlx::query(q::CREATE_ACCOUNT).bind(name).bind(key_hash).bind(now).fetch_one(&self.pool).await.map_err(map_err)?;
        account_from(&r).map_err(map_err)
    }
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<AccountRow>> {
        let r = sqlx::query(q::ACCOUNT_BY_NAME).bind(name).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(account_from).transpose().map_err(map_err)
    }
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>> {
        let rows = sqlx::query(q::LIST_ACCOUNTS).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, account_from)
    }
    async fn set_account_key(&self, name: &str, key_hash: &[u8]) -> StoreResult<bool> {
        let r = sqlx::query(q::SET_ACCOUNT_KEY).bind(key_hash).bind(name).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn set_account_enabled(&self, name: &str, enabled: bool) -> StoreResult<bool> {
        let r = sqlx::query(q::SET_ACCOUNT_ENABLED).bind(i64::from(enabled)).bind(name).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn count_accounts(&self) -> StoreResult<i64> {
        let r = sqlx::query(q::COUNT_ACCOUNTS).fetch_one(&self.pool).await.map_err(map_err)?;
        r.try_get::<i64, _>("n").map_err(map_err)
    }
    async fn add_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
        let r = sqlx::query(q::ADD_FACET).bind(account_id).bind(origin).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn remove_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
        let r = sqlx::query(q::REMOVE_FACET).bind(account_id).bind(origin).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn list_facets(&self, account_id: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(q::LIST_FACETS).bind(account_id).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(|r| r.try_get::<String, _>("origin")).collect::<Result<Vec<_>, _>>().map_err(map_err)
    }
    async fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
        let r = sqlx::query(q::META_GET).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.map(|r| r.try_get::<String, _>("v")).transpose().map_err(map_err)
    }
    async fn meta_init(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query(q::META_INIT).bind(key).bind(value).execute(&self.pool).await.map_err(map_err)?;
        let r = sqlx::query(q::META_GET).bind(key).fetch_one(&self.pool).await.map_err(map_err)?;
        r.try_get::<String, _>("v").map_err(map_err)
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(q::PING).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, u: &UserRow, username_key: &str) -> StoreResult<i64> {
        let r = sqlx::query(q::CREATE_USER)
            .bind(u.account_id)
            .bind(&u.username)
            .bind(username_key)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind(&u.mobile)
            .bind(&u.email)
            .bind(u.email.to_lowercase())
            .bind(&u.password_hash)
            .bind(u.status)
            .bind(u.created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        r.try_get::<i64, _>("id").map_err(map_err)
    }
    async fn user_by_key(&self, account_id: i64, username_key: &str) -> StoreResult<Option<UserRow>> {
        let r = sqlx::query(q::USER_BY_KEY).bind(account_id).bind(username_key).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(user_from).transpose().map_err(map_err)
    }
    async fn user_by_id(&self, account_id: i64, user_id: i64) -> StoreResult<Option<UserRow>> {
        let r = sqlx::query(q::USER_BY_ID).bind(account_id).bind(user_id).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(user_from).transpose().map_err(map_err)
    }
    async fn update_user(&self, account_id: i64, user_id: i64, p: &UserPatch) -> StoreResult<bool> {
        let r = sqlx::query(q::UPDATE_USER)
            .bind(&p.first_name)
            .bind(&p.last_name)
            .bind(&p.mobile)
            .bind(&p.email)
            .bind(p.email.as_ref().map(|e| e.to_lowercase()))
            .bind(&p.password_hash)
            .bind(p.status)
            .bind(account_id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn delete_user(&self, account_id: i64, user_id: i64, _username_key: &str, _remove_related: bool) -> StoreResult<bool> {
        // The audit trail is append-only: the user's history stays.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for stmt in q::DELETE_USER_RELATED {
            sqlx::query(stmt).bind(account_id).bind(user_id).execute(&mut *tx).await.map_err(map_err)?;
        }
        let r = sqlx::query(q::DELETE_USER).bind(account_id).bind(user_id).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn find_users(&self, account_id: i64, pattern: &str, by_email: bool, limit: i64) -> StoreResult<Vec<UserRow>> {
        let sql = if by_email { q::FIND_USERS_BY_EMAIL } else { q::FIND_USERS_BY_NAME };
        let rows = sqlx::query(sql).bind(account_id).bind(pattern).bind(limit).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, user_from)
    }
    async fn webauthn_user_handle(&self, account_id: i64, user_id: i64, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query(q::SET_WEBAUTHN_HANDLE).bind(candidate).bind(account_id).bind(user_id).execute(&self.pool).await.map_err(map_err)?;
        let r = sqlx::query(q::WEBAUTHN_HANDLE).bind(account_id).bind(user_id).fetch_optional(&self.pool).await.map_err(map_err)?;
        Ok(r.map(|r| r.try_get::<Option<Vec<u8>>, _>("webauthn_handle")).transpose().map_err(map_err)?.flatten())
    }
    async fn user_by_webauthn_handle(&self, account_id: i64, handle: &[u8]) -> StoreResult<Option<UserRow>> {
        let r = sqlx::query(q::USER_BY_WEBAUTHN_HANDLE).bind(account_id).bind(handle).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(user_from).transpose().map_err(map_err)
    }
    async fn password_attempt(&self, account_id: i64, user_id: i64, now: i64, max_failures: i64, lock_until: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::PASSWORD_ATTEMPT)
            .bind(max_failures)
            .bind(lock_until)
            .bind(account_id)
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn password_reset(&self, account_id: i64, user_id: i64) -> StoreResult<()> {
        sqlx::query(q::PASSWORD_RESET).bind(account_id).bind(user_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
    async fn user_keys_page(&self, after_id: i64, limit: i64) -> StoreResult<Vec<UserKeyRow>> {
        let rows = sqlx::query(q::USER_KEYS_PAGE).bind(after_id).bind(limit).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, |r| {
            Ok(UserKeyRow {
                id: r.try_get("id")?,
                account_id: r.try_get("account_id")?,
                username: r.try_get("username")?,
                username_key: r.try_get("username_key")?,
            })
        })
    }
    async fn set_username_key(&self, account_id: i64, user_id: i64, username_key: &str) -> StoreResult<bool> {
        let r = sqlx::query(q::SET_USERNAME_KEY)
            .bind(username_key)
            .bind(account_id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl DeviceStore for PgStore {
    async fn create_device(&self, d: &DeviceRow) -> StoreResult<i64> {
        let r = sqlx::query(q::CREATE_DEVICE)
            .bind(d.account_id)
            .bind(d.user_id)
            .bind(&d.psn)
            .bind(d.device_type)
            .bind(d.otp_type)
            .bind(d.status)
            .bind(i64::from(d.activated))
            .bind(&d.seed)
            .bind(&d.algorithm)
            .bind(d.digits)
            .bind(d.time_step)
            .bind(d.counter)
            .bind(d.drift)
            .bind(d.window_size)
            .bind(d.time_drift)
            .bind(&d.key_handle)
            .bind(&d.public_key)
            .bind(&d.app_id)
            .bind(&d.key_name)
            .bind(d.u2f_counter)
            .bind(&d.attestation)
            .bind(d.created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        r.try_get::<i64, _>("id").map_err(map_err)
    }
    async fn device_by_psn(&self, account_id: i64, psn: &str) -> StoreResult<Option<DeviceRow>> {
        let r = sqlx::query(q::DEVICE_BY_PSN).bind(account_id).bind(psn).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(device_from).transpose().map_err(map_err)
    }
    async fn device_by_id(&self, account_id: i64, id: i64) -> StoreResult<Option<DeviceRow>> {
        let r = sqlx::query(q::DEVICE_BY_ID).bind(account_id).bind(id).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(device_from).transpose().map_err(map_err)
    }
    async fn devices_of_user(&self, account_id: i64, user_id: i64) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(q::DEVICES_OF_USER).bind(account_id).bind(user_id).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, device_from)
    }
    async fn assign_device(&self, account_id: i64, device_id: i64, user_id: Option<i64>, only_if_unassigned: bool) -> StoreResult<bool> {
        let sql = if only_if_unassigned { q::ASSIGN_DEVICE_IF_FREE } else { q::ASSIGN_DEVICE };
        let r = sqlx::query(sql).bind(user_id).bind(account_id).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn delete_device(&self, account_id: i64, device_id: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::DELETE_DEVICE).bind(account_id).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn set_device_status(&self, account_id: i64, device_id: i64, status: i64) -> StoreResult<bool> {
        let sql = if status == 0 { q::ENABLE_DEVICE } else { q::SET_DEVICE_STATUS };
        let r = sqlx::query(sql).bind(status).bind(account_id).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    /// One statement; PostgreSQL groups concurrent commits itself.
    async fn otp_accept(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::OTP_ACCEPT)
            .bind(new_counter)
            .bind(drift)
            .bind(device_id)
            .bind(matched)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn otp_resync(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::OTP_RESYNC)
            .bind(new_counter)
            .bind(drift)
            .bind(device_id)
            .bind(matched)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn otp_fail(&self, device_id: i64, max_failures: i64, lock_until: i64) -> StoreResult<i64> {
        let r = sqlx::query(q::OTP_FAIL)
            .bind(max_failures)
            .bind(lock_until)
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match r {
            Some(r) => r.try_get::<i64, _>("fail_count").map_err(map_err),
            None => Ok(0),
        }
    }
    async fn u2f_bind(&self, d: &DeviceRow) -> StoreResult<bool> {
        let r = sqlx::query(q::U2F_BIND)
            .bind(&d.key_handle)
            .bind(&d.public_key)
            .bind(&d.app_id)
            .bind(&d.key_name)
            .bind(d.u2f_counter)
            .bind(&d.attestation)
            .bind(d.user_id)
            .bind(d.account_id)
            .bind(d.id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn u2f_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::U2F_COUNTER_ADVANCE).bind(counter).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn u2f_flag(&self, device_id: i64) -> StoreResult<()> {
        sqlx::query(q::U2F_FLAG).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
    async fn unassigned_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(q::UNASSIGNED_DEVICES).bind(account_id).bind(limit).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, device_from)
    }
    async fn account_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(q::ACCOUNT_DEVICES).bind(account_id).bind(limit).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, device_from)
    }
    async fn import_devices(&self, devices: &[DeviceRow]) -> StoreResult<usize> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for d in devices {
            sqlx::query(q::IMPORT_DEVICE)
                .bind(d.account_id)
                .bind(&d.psn)
                .bind(d.device_type)
                .bind(d.otp_type)
                .bind(i64::from(d.activated))
                .bind(&d.seed)
                .bind(&d.algorithm)
                .bind(d.digits)
                .bind(d.time_step)
                .bind(d.counter)
                .bind(d.created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(devices.len())
    }
    async fn devices_by_key_handle(&self, account_id: i64, key_handle: &[u8]) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(q::DEVICES_BY_KEY_HANDLE).bind(account_id).bind(key_handle).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, device_from)
    }
    async fn fido_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::FIDO_COUNTER_ADVANCE).bind(counter).bind(device_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session_token(&self, token_hash: &[u8], s: &SessionTokenRow) -> StoreResult<()> {
        sqlx::query(q::CREATE_SESSION_TOKEN)
            .bind(token_hash)
            .bind(s.account_id)
            .bind(s.user_id)
            .bind(s.token_type)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
    async fn session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionTokenRow>> {
        let r =
            sqlx::query(q::SESSION_TOKEN).bind(token_hash).bind(account_id).bind(now).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.map(|r| -> Result<SessionTokenRow, sqlx::Error> {
            Ok(SessionTokenRow {
                account_id: r.try_get("account_id")?,
                user_id: r.try_get("user_id")?,
                token_type: r.try_get("token_type")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                owner_key: r.try_get("username_key")?,
            })
        })
        .transpose()
        .map_err(map_err)
    }
    async fn delete_session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<bool> {
        let r =
            sqlx::query(q::DELETE_SESSION_TOKEN).bind(token_hash).bind(account_id).bind(now).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn create_u2f_session(&self, id_hash: &[u8], s: &U2fSessionRow) -> StoreResult<()> {
        sqlx::query(q::CREATE_U2F_SESSION)
            .bind(id_hash)
            .bind(s.account_id)
            .bind(s.user_id)
            .bind(&s.kind)
            .bind(&s.app_id)
            .bind(&s.challenge)
            .bind(q::ids_to_text(&s.device_ids))
            .bind(s.target_device)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
    async fn consume_u2f_session(
        &self,
        account_id: i64,
        user_id: i64,
        kind: &str,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<U2fSessionRow>> {
        let r = sqlx::query(q::CONSUME_U2F_SESSION)
            .bind(id_hash)
            .bind(account_id)
            .bind(user_id)
            .bind(kind)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        r.map(|r| -> Result<U2fSessionRow, sqlx::Error> {
            Ok(U2fSessionRow {
                account_id: r.try_get("account_id")?,
                user_id: r.try_get("user_id")?,
                kind: r.try_get("kind")?,
                app_id: r.try_get("app_id")?,
                challenge: r.try_get("challenge")?,
                device_ids: q::text_to_ids(&r.try_get::<String, _>("device_ids")?),
                target_device: r.try_get("target_device")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
        .map_err(map_err)
    }
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut n = 0;
        for stmt in q::PURGE_EXPIRED {
            n += sqlx::query(stmt).bind(now).execute(&self.pool).await.map_err(map_err)?.rows_affected();
        }
        Ok(n)
    }
    async fn create_webauthn_session(&self, id_hash: &[u8], s: &WebAuthnSessionRow) -> StoreResult<()> {
        sqlx::query(q::CREATE_WEBAUTHN_SESSION)
            .bind(id_hash)
            .bind(s.account_id)
            .bind(s.user_id)
            .bind(&s.kind)
            .bind(&s.rp_id)
            .bind(&s.challenge)
            .bind(&s.state)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
    async fn consume_webauthn_session(
        &self,
        account_id: i64,
        kind: &str,
        id_hash: &[u8],
        user_id: Option<i64>,
        now: i64,
    ) -> StoreResult<Option<WebAuthnSessionRow>> {
        let r = sqlx::query(q::CONSUME_WEBAUTHN_SESSION)
            .bind(id_hash)
            .bind(account_id)
            .bind(kind)
            .bind(now)
            .bind(user_id.unwrap_or(-1))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        r.map(|r| -> Result<WebAuthnSessionRow, sqlx::Error> {
            Ok(WebAuthnSessionRow {
                account_id: r.try_get("account_id")?,
                user_id: r.try_get("user_id")?,
                kind: r.try_get("kind")?,
                rp_id: r.try_get("rp_id")?,
                challenge: r.try_get("challenge")?,
                state: r.try_get("state")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
        .map_err(map_err)
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, rows: &[AuditRow], key: &ChainKey) -> StoreResult<()> {
        let mut chains: std::collections::BTreeMap<i64, Vec<&AuditRow>> = std::collections::BTreeMap::new();
        let mut unauth = Vec::new();
        for a in rows {
            match a.account_id {
                Some(account_id) => chains.entry(account_id).or_default().push(a),
                None => unauth.push(a),
            }
        }
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Hold every chain head of the batch (in account order, so that two nodes never wait on
        // each other), then draw the rows' ids: within a chain, ids grow with the sequence.
        let genesis = tessera_core::audit_chain::GENESIS.to_vec();
        let mut heads = Vec::with_capacity(chains.len());
        for &account_id in chains.keys() {
            sqlx::query(q::ENSURE_CHAIN).bind(account_id).bind(&genesis).execute(&mut *tx).await.map_err(map_err)?;
            let head = sqlx::query(q::CHAIN_HEAD_FOR_UPDATE).bind(account_id).fetch_one(&mut *tx).await.map_err(map_err)?;
            heads.push(chain_from(&head).map_err(map_err)?);
        }
        let total: i64 = chains.values().map(|v| v.len() as i64).sum();
        let mut ids: Vec<i64> = if total > 0 {
            sqlx::query_scalar(q::NEXT_AUDIT_IDS).bind(total).fetch_all(&mut *tx).await.map_err(map_err)?
        } else {
            Vec::new()
        };
        ids.sort_unstable();
        let mut ids = ids.into_iter();
        let mut chained: Vec<(i64, AuditRow)> = Vec::with_capacity(total as usize);
        for (head, chain_rows) in heads.iter_mut().zip(chains.values()) {
            for a in chain_rows {
                let id = ids.next().ok_or_else(|| tessera_core::error::StoreError::Other("too few audit ids drawn".into()))?;
                let mut row = (*a).clone();
                row.seq = Some(head.head_seq + 1);
                row.prev_id = Some(head.head_id);
                let hash = key.link(&head.head_hash, &row);
                row.hash = Some(hash.clone());
                (head.head_id, head.head_seq, head.head_hash) = (id, head.head_seq + 1, hash);
                chained.push((id, row));
            }
        }
        // Multi-row INSERTs (50 rows, 700 parameters each): one statement per chunk.
        for chunk in chained.chunks(50) {
            let sql = q::insert_rows(q::INSERT_AUDIT_WITH_ID_HEAD, q::AUDIT_WITH_ID_PARAMS, chunk.len());
            let mut query = sqlx::query(&sql);
            for (id, a) in chunk {
                query = query
                    .bind(*id)
                    .bind(a.at_ms)
                    .bind(a.account_id)
                    .bind(&a.account_name)
                    .bind(&a.op)
                    .bind(&a.username)
                    .bind(&a.psn)
                    .bind(a.code)
                    .bind(&a.source)
                    .bind(a.duration_us)
                    .bind(a.count)
                    .bind(a.seq)
                    .bind(a.prev_id)
                    .bind(&a.hash);
            }
            query.execute(&mut *tx).await.map_err(map_err)?;
        }
        for head in &heads {
            sqlx::query(q::SET_CHAIN_HEAD)
                .bind(head.head_id)
                .bind(head.head_seq)
                .bind(&head.head_hash)
                .bind(head.account_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for a in unauth {
            sqlx::query(q::UPSERT_AUDIT_UNAUTH)
                .bind(a.at_ms)
                .bind(&a.account_name)
                .bind(&a.op)
                .bind(&a.username)
                .bind(&a.psn)
                .bind(a.code)
                .bind(&a.source)
                .bind(a.duration_us)
                .bind(a.count)
                .bind(a.at_ms.div_euclid(60_000))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
    async fn audit_chain_heads(&self, account_id: Option<i64>) -> StoreResult<Vec<ChainHead>> {
        let rows = match account_id {
            Some(a) => sqlx::query(q::CHAIN_HEAD).bind(a).fetch_all(&self.pool).await,
            None => sqlx::query(q::CHAIN_HEADS_ALL).fetch_all(&self.pool).await,
        }
        .map_err(map_err)?;
        collect(rows, chain_from)
    }
    async fn audit_rows_after(&self, account_id: i64, after_id: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows =
            sqlx::query(q::AUDIT_ROWS_AFTER).bind(account_id).bind(after_id).bind(limit).fetch_all(&self.pool).await.map_err(map_err)?;
        collect(rows, audit_from)
    }
    async fn prune_audit(&self, account_id: Option<i64>, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut n = 0;
        match account_id {
            Some(a) => {
                n += prune_chain(&mut tx, a, before_ms).await?;
                n += sqlx::query(q::PRUNE_UNCHAINED_OF).bind(a).bind(before_ms).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
            }
            None => {
                let heads = sqlx::query(q::CHAIN_HEADS_ALL).fetch_all(&mut *tx).await.map_err(map_err)?;
                for head in collect(heads, chain_from)? {
                    n += prune_chain(&mut tx, head.account_id, before_ms).await?;
                }
                n += sqlx::query(q::PRUNE_UNCHAINED_ALL).bind(before_ms).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }
    async fn list_audit(&self, account_id: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = match account_id {
            Some(a) => sqlx::query(q::LIST_AUDIT_OF).bind(a).bind(limit).fetch_all(&self.pool).await,
            None => sqlx::query(q::LIST_AUDIT_ALL).bind(limit).fetch_all(&self.pool).await,
        }
        .map_err(map_err)?;
        collect(rows, audit_from)
    }
}

#[async_trait]
impl DeliveryStore for PgStore {
    async fn enqueue_code(&self, c: &SentCodeRow, m: &OutboxRow, window_start: i64, limit: i64) -> StoreResult<Option<(i64, i64)>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Writing the user row first serialises concurrent sends to one user on both backends.
        sqlx::query(q::TOUCH_USER_SEND)
            .bind(c.account_id)
            .bind(c.user_id)
            .bind(m.next_attempt_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let n: i64 = sqlx::query(q::COUNT_SENT)
            .bind(c.account_id)
            .bind(c.user_id)
            .bind(window_start)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?
            .try_get("n")
            .map_err(map_err)?;
        if n >= limit {
            tx.rollback().await.map_err(map_err)?;
            return Ok(None);
        }
        let code_id: i64 = sqlx::query(q::INSERT_SENT_CODE)
            .bind(c.account_id)
            .bind(c.user_id)
            .bind(c.device_id)
            .bind(&c.code_hash)
            .bind(m.next_attempt_at)
            .bind(c.expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?
            .try_get("id")
            .map_err(map_err)?;
        let msg_id = insert_outbox(&mut *tx, m).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some((code_id, msg_id)))
    }
    async fn enqueue_message(&self, m: &OutboxRow) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_outbox(&mut *conn, m).await
    }
    async fn sent_codes(&self, account_id: i64, user_id: i64, since: i64) -> StoreResult<Vec<SentCodeRow>> {
        let rows = sqlx::query(q::SENT_CODES).bind(account_id).bind(user_id).bind(since).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(|r| -> Result<SentCodeRow, sqlx::Error> {
                Ok(SentCodeRow {
                    id: r.try_get("id")?,
                    account_id: r.try_get("account_id")?,
                    user_id: r.try_get("user_id")?,
                    device_id: r.try_get("device_id")?,
                    code_hash: r.try_get("code_hash")?,
                    expires_at: r.try_get("expires_at")?,
                    used: r.try_get::<i64, _>("used")? != 0,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)
    }
    async fn consume_sent_code(&self, id: i64) -> StoreResult<bool> {
        let r = sqlx::query(q::CONSUME_SENT_CODE).bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn claim_outbox(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        let rows = sqlx::query(q::CLAIM_OUTBOX_SKIP_LOCKED)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        collect(rows, outbox_from)
    }
    async fn claim_outbox_one(&self, id: i64, now: i64, lease_until: i64) -> StoreResult<Option<OutboxRow>> {
        let r = sqlx::query(q::CLAIM_OUTBOX_ONE).bind(lease_until).bind(id).bind(now).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(outbox_from).transpose().map_err(map_err)
    }
    async fn finish_outbox(&self, id: i64, state: &str, next_attempt_at: i64, error: &str) -> StoreResult<()> {
        let sql = if q::finish_clears_body(state) { q::FINISH_OUTBOX_CLEAR } else { q::FINISH_OUTBOX };
        sqlx::query(sql).bind(state).bind(next_attempt_at).bind(error).bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
    async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRow>> {
        let r = sqlx::query(q::OUTBOX_BY_ID).bind(id).fetch_optional(&self.pool).await.map_err(map_err)?;
        r.as_ref().map(outbox_from).transpose().map_err(map_err)
    }
}

fn radius_client_from(r: &PgRow) -> Result<RadiusClientRow, sqlx::Error> {
    Ok(RadiusClientRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        account_name: r.try_get("account_name")?,
        address: r.try_get("address")?,
        secret: r.try_get("secret")?,
        otp_only: r.try_get::<i64, _>("otp_only")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

#[async_trait]
impl RadiusStore for PgStore {
    async fn add_radius_client(&self, c: &RadiusClientRow) -> StoreResult<i64> {
        let r = sqlx::query(q::ADD_RADIUS_CLIENT)
            .bind(c.account_id)
            .bind(&c.address)
            .bind(&c.secret)
            .bind(i64::from(c.otp_only))
            .bind(c.created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        r.try_get::<i64, _>("id").map_err(map_err)
    }
    async fn remove_radius_client(&self, account_id: i64, address: &str) -> StoreResult<bool> {
        let r = sqlx::query(q::REMOVE_RADIUS_CLIENT).bind(account_id).bind(address).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }
    async fn list_radius_clients(&self, account_id: Option<i64>) -> StoreResult<Vec<RadiusClientRow>> {
        let rows = match account_id {
            Some(a) => sqlx::query(q::LIST_RADIUS_CLIENTS_OF).bind(a).fetch_all(&self.pool).await,
            None => sqlx::query(q::LIST_RADIUS_CLIENTS_ALL).fetch_all(&self.pool).await,
        }
        .map_err(map_err)?;
        collect(rows, radius_client_from)
    }
    async fn create_radius_challenge(&self, state_hash: &[u8], row: &RadiusChallengeRow) -> StoreResult<()> {
        sqlx::query(q::CREATE_RADIUS_CHALLENGE)
            .bind(state_hash)
            .bind(row.account_id)
            .bind(&row.user_key)
            .bind(row.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
    async fn consume_radius_challenge(
        &self,
        account_id: i64,
        state_hash: &[u8],
        user_key: &str,
        now: i64,
    ) -> StoreResult<Option<RadiusChallengeRow>> {
        let r = sqlx::query(q::CONSUME_RADIUS_CHALLENGE)
            .bind(state_hash)
            .bind(account_id)
            .bind(user_key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        r.map(|r| -> Result<RadiusChallengeRow, sqlx::Error> {
            Ok(RadiusChallengeRow {
                account_id: r.try_get("account_id")?,
                user_key: r.try_get("user_key")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
        .map_err(map_err)
    }
    async fn purge_radius_challenges(&self, now: i64) -> StoreResult<u64> {
        let r = sqlx::query(q::PURGE_RADIUS_CHALLENGES).bind(now).execute(&self.pool).await.map_err(map_err)?;
        Ok(r.rows_affected())
    }
}
