//! The SQL shared by both backends, as one macro instantiated once per backend.
//!
//! `sql_store!(Type, Database, RowType, SKIP_LOCKED)` implements every storage trait for `Type`, which
//! provides `r()` (the pool for reads) and `w()` (the pool for writes; on SQLite one connection, so
//! writers queue in the pool instead of in SQLite's busy-sleep loop). Placeholders are `$N` (PostgreSQL syntax, also understood by sqlx's SQLite
//! driver); booleans are stored as 0/1 integers; blobs as BLOB/BYTEA.

macro_rules! sql_store {
    ($store:ty, $db:ty, $row:ty, $skip_locked:expr) => {
        use async_trait::async_trait;
        use sqlx::Row;
        use tessera_core::error::StoreResult;
        use tessera_core::store::*;
        use $crate::{ids_to_text, map_err, text_to_ids};

        const DEVICE_COLS: &str = "id, account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, window_size, time_drift, fail_count, locked_until, key_handle, public_key, app_id, key_name, u2f_counter, attestation, flagged, created_at";
        const USER_COLS: &str = "id, account_id, username, first_name, last_name, mobile, email, password_hash, status, created_at, last_code_at";
        const OUTBOX_COLS: &str = "id, account_id, channel, recipient, body, subject, attempts, next_attempt_at, expires_at, state, last_error";
        const AUDIT_COLS: &str = "id, at_ms, account_id, account_name, op, username, psn, code, source, duration_us";

        fn account_from(r: &$row) -> Result<AccountRow, sqlx::Error> {
            Ok(AccountRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                key_hash: r.try_get("key_hash")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                created_at: r.try_get("created_at")?,
            })
        }

        fn user_from(r: &$row) -> Result<UserRow, sqlx::Error> {
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

        fn device_from(r: &$row) -> Result<DeviceRow, sqlx::Error> {
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

        fn outbox_from(r: &$row) -> Result<OutboxRow, sqlx::Error> {
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

        fn audit_from(r: &$row) -> Result<AuditRow, sqlx::Error> {
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
            })
        }

        async fn insert_outbox<'e, E>(e: E, m: &OutboxRow) -> StoreResult<i64>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            let r = sqlx::query(
                "INSERT INTO outbox (account_id, channel, recipient, subject, body, attempts, next_attempt_at, lease_until, expires_at, state, last_error, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, 'pending', '', $6) RETURNING id",
            )
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

        fn collect<T>(rows: Vec<$row>, f: fn(&$row) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
            rows.iter().map(f).collect::<Result<Vec<_>, _>>().map_err(map_err)
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn create_account(&self, name: &str, key_hash: &[u8], now: i64) -> StoreResult<AccountRow> {
                let r = sqlx::query("INSERT INTO accounts (name, key_hash, enabled, created_at) VALUES ($1, $2, 1, $3) RETURNING id, name, key_hash, enabled, created_at")
                    .bind(name)
                    .bind(key_hash)
                    .bind(now)
                    .fetch_one(self.w())
                    .await
                    .map_err(map_err)?;
                account_from(&r).map_err(map_err)
            }
            async fn account_by_name(&self, name: &str) -> StoreResult<Option<AccountRow>> {
                let r = sqlx::query("SELECT id, name, key_hash, enabled, created_at FROM accounts WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.r())
                    .await
                    .map_err(map_err)?;
                r.as_ref().map(account_from).transpose().map_err(map_err)
            }
            async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>> {
                let rows = sqlx::query("SELECT id, name, key_hash, enabled, created_at FROM accounts ORDER BY name").fetch_all(self.r()).await.map_err(map_err)?;
                collect(rows, account_from)
            }
            async fn set_account_key(&self, name: &str, key_hash: &[u8]) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE accounts SET key_hash = $1 WHERE name = $2").bind(key_hash).bind(name).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn set_account_enabled(&self, name: &str, enabled: bool) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE accounts SET enabled = $1 WHERE name = $2").bind(i64::from(enabled)).bind(name).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn count_accounts(&self) -> StoreResult<i64> {
                let r = sqlx::query("SELECT COUNT(*) AS n FROM accounts").fetch_one(self.r()).await.map_err(map_err)?;
                r.try_get::<i64, _>("n").map_err(map_err)
            }
            async fn add_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
                let r = sqlx::query("INSERT INTO facets (account_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(account_id)
                    .bind(origin)
                    .execute(self.w())
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn remove_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool> {
                let r = sqlx::query("DELETE FROM facets WHERE account_id = $1 AND origin = $2").bind(account_id).bind(origin).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn list_facets(&self, account_id: i64) -> StoreResult<Vec<String>> {
                let rows = sqlx::query("SELECT origin FROM facets WHERE account_id = $1 ORDER BY origin").bind(account_id).fetch_all(self.r()).await.map_err(map_err)?;
                rows.iter().map(|r| r.try_get::<String, _>("origin")).collect::<Result<Vec<_>, _>>().map_err(map_err)
            }
            async fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
                let r = sqlx::query("SELECT v FROM meta WHERE k = $1").bind(key).fetch_optional(self.r()).await.map_err(map_err)?;
                r.map(|r| r.try_get::<String, _>("v")).transpose().map_err(map_err)
            }
            async fn meta_init(&self, key: &str, value: &str) -> StoreResult<String> {
                sqlx::query("INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING").bind(key).bind(value).execute(self.w()).await.map_err(map_err)?;
                let r = sqlx::query("SELECT v FROM meta WHERE k = $1").bind(key).fetch_one(self.w()).await.map_err(map_err)?;
                r.try_get::<String, _>("v").map_err(map_err)
            }
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.r()).await.map_err(map_err)?;
                Ok(())
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, u: &UserRow, username_key: &str) -> StoreResult<i64> {
                let r = sqlx::query(
                    "INSERT INTO users (account_id, username, username_key, first_name, last_name, mobile, email, email_key, password_hash, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
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
                .fetch_one(self.w())
                .await
                .map_err(map_err)?;
                r.try_get::<i64, _>("id").map_err(map_err)
            }
            async fn user_by_key(&self, account_id: i64, username_key: &str) -> StoreResult<Option<UserRow>> {
                let q = format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 AND username_key = $2");
                let r = sqlx::query(&q).bind(account_id).bind(username_key).fetch_optional(self.r()).await.map_err(map_err)?;
                r.as_ref().map(user_from).transpose().map_err(map_err)
            }
            async fn user_by_id(&self, account_id: i64, user_id: i64) -> StoreResult<Option<UserRow>> {
                let q = format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 AND id = $2");
                let r = sqlx::query(&q).bind(account_id).bind(user_id).fetch_optional(self.r()).await.map_err(map_err)?;
                r.as_ref().map(user_from).transpose().map_err(map_err)
            }
            async fn update_user(&self, account_id: i64, user_id: i64, p: &UserPatch) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE users SET first_name = COALESCE($1, first_name), last_name = COALESCE($2, last_name), \
                     mobile = COALESCE($3, mobile), email = COALESCE($4, email), email_key = COALESCE($5, email_key), \
                     password_hash = COALESCE($6, password_hash), status = COALESCE($7, status) \
                     WHERE account_id = $8 AND id = $9",
                )
                .bind(&p.first_name)
                .bind(&p.last_name)
                .bind(&p.mobile)
                .bind(&p.email)
                .bind(p.email.as_ref().map(|e| e.to_lowercase()))
                .bind(&p.password_hash)
                .bind(p.status)
                .bind(account_id)
                .bind(user_id)
                .execute(self.w())
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn delete_user(&self, account_id: i64, user_id: i64, username_key: &str, remove_related: bool) -> StoreResult<bool> {
                let mut tx = self.w().begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM devices WHERE account_id = $1 AND user_id = $2 AND device_type <> 14")
                    .bind(account_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("UPDATE devices SET user_id = NULL WHERE account_id = $1 AND user_id = $2")
                    .bind(account_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for table in ["session_tokens", "u2f_sessions", "sent_codes"] {
                    let q = format!("DELETE FROM {table} WHERE account_id = $1 AND user_id = $2");
                    sqlx::query(&q).bind(account_id).bind(user_id).execute(&mut *tx).await.map_err(map_err)?;
                }
                let r = sqlx::query("DELETE FROM users WHERE account_id = $1 AND id = $2").bind(account_id).bind(user_id).execute(&mut *tx).await.map_err(map_err)?;
                if remove_related {
                    sqlx::query("DELETE FROM audit WHERE account_id = $1 AND lower(username) = $2")
                        .bind(account_id)
                        .bind(username_key)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn find_users(&self, account_id: i64, pattern: &str, by_email: bool, limit: i64) -> StoreResult<Vec<UserRow>> {
                let col = if by_email { "email_key" } else { "username_key" };
                let q = format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 AND {col} LIKE $2 ORDER BY username_key LIMIT $3");
                let rows = sqlx::query(&q).bind(account_id).bind(pattern).bind(limit).fetch_all(self.r()).await.map_err(map_err)?;
                collect(rows, user_from)
            }
        }

        #[async_trait]
        impl DeviceStore for $store {
            async fn create_device(&self, d: &DeviceRow) -> StoreResult<i64> {
                let r = sqlx::query(
                    "INSERT INTO devices (account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, \
                     window_size, time_drift, key_handle, public_key, app_id, key_name, u2f_counter, attestation, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING id",
                )
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
                .fetch_one(self.w())
                .await
                .map_err(map_err)?;
                r.try_get::<i64, _>("id").map_err(map_err)
            }
            async fn device_by_psn(&self, account_id: i64, psn: &str) -> StoreResult<Option<DeviceRow>> {
                let q = format!("SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 AND psn = $2");
                let r = sqlx::query(&q).bind(account_id).bind(psn).fetch_optional(self.r()).await.map_err(map_err)?;
                r.as_ref().map(device_from).transpose().map_err(map_err)
            }
            async fn device_by_id(&self, account_id: i64, id: i64) -> StoreResult<Option<DeviceRow>> {
                let q = format!("SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 AND id = $2");
                let r = sqlx::query(&q).bind(account_id).bind(id).fetch_optional(self.r()).await.map_err(map_err)?;
                r.as_ref().map(device_from).transpose().map_err(map_err)
            }
            async fn devices_of_user(&self, account_id: i64, user_id: i64) -> StoreResult<Vec<DeviceRow>> {
                let q = format!("SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 AND user_id = $2 ORDER BY id");
                let rows = sqlx::query(&q).bind(account_id).bind(user_id).fetch_all(self.r()).await.map_err(map_err)?;
                collect(rows, device_from)
            }
            async fn assign_device(&self, account_id: i64, device_id: i64, user_id: Option<i64>, only_if_unassigned: bool) -> StoreResult<bool> {
                let q = if only_if_unassigned {
                    "UPDATE devices SET user_id = $1 WHERE account_id = $2 AND id = $3 AND (user_id IS NULL OR user_id = $1)"
                } else {
                    "UPDATE devices SET user_id = $1 WHERE account_id = $2 AND id = $3"
                };
                let r = sqlx::query(q).bind(user_id).bind(account_id).bind(device_id).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn delete_device(&self, account_id: i64, device_id: i64) -> StoreResult<bool> {
                let r = sqlx::query("DELETE FROM devices WHERE account_id = $1 AND id = $2").bind(account_id).bind(device_id).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn set_device_status(&self, account_id: i64, device_id: i64, status: i64) -> StoreResult<bool> {
                let q = if status == 0 {
                    "UPDATE devices SET status = $1, fail_count = 0, locked_until = 0 WHERE account_id = $2 AND id = $3"
                } else {
                    "UPDATE devices SET status = $1 WHERE account_id = $2 AND id = $3"
                };
                let r = sqlx::query(q).bind(status).bind(account_id).bind(device_id).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn otp_accept(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
                self.otp_cas(device_id, matched, new_counter, drift).await
            }
            async fn otp_resync(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE devices SET counter = $1, drift = $2, activated = 1, fail_count = 0, locked_until = 0 WHERE id = $3 AND counter <= $4",
                )
                .bind(new_counter)
                .bind(drift)
                .bind(device_id)
                .bind(matched)
                .execute(self.w())
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn otp_fail(&self, device_id: i64, max_failures: i64, lock_until: i64) -> StoreResult<i64> {
                let r = sqlx::query(
                    "UPDATE devices SET fail_count = fail_count + 1, \
                     locked_until = CASE WHEN fail_count + 1 >= $1 THEN $2 ELSE locked_until END \
                     WHERE id = $3 RETURNING fail_count",
                )
                .bind(max_failures)
                .bind(lock_until)
                .bind(device_id)
                .fetch_optional(self.w())
                .await
                .map_err(map_err)?;
                match r {
                    Some(r) => r.try_get::<i64, _>("fail_count").map_err(map_err),
                    None => Ok(0),
                }
            }
            async fn u2f_bind(&self, d: &DeviceRow) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE devices SET key_handle = $1, public_key = $2, app_id = $3, key_name = $4, u2f_counter = $5, attestation = $6, activated = 1, user_id = $7, flagged = 0 \
                     WHERE account_id = $8 AND id = $9 AND key_handle IS NULL AND (user_id IS NULL OR user_id = $7)",
                )
                .bind(&d.key_handle)
                .bind(&d.public_key)
                .bind(&d.app_id)
                .bind(&d.key_name)
                .bind(d.u2f_counter)
                .bind(&d.attestation)
                .bind(d.user_id)
                .bind(d.account_id)
                .bind(d.id)
                .execute(self.w())
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn u2f_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool> {
                let r = sqlx::query("UPDATE devices SET u2f_counter = $1 WHERE id = $2 AND u2f_counter < $1").bind(counter).bind(device_id).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn u2f_flag(&self, device_id: i64) -> StoreResult<()> {
                sqlx::query("UPDATE devices SET flagged = 1 WHERE id = $1").bind(device_id).execute(self.w()).await.map_err(map_err)?;
                Ok(())
            }
            async fn unassigned_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
                let q = format!("SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 AND user_id IS NULL ORDER BY id LIMIT $2");
                let rows = sqlx::query(&q).bind(account_id).bind(limit).fetch_all(self.r()).await.map_err(map_err)?;
                collect(rows, device_from)
            }
            async fn account_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>> {
                let q = format!("SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 ORDER BY id LIMIT $2");
                let rows = sqlx::query(&q).bind(account_id).bind(limit).fetch_all(self.r()).await.map_err(map_err)?;
                collect(rows, device_from)
            }
            async fn import_devices(&self, devices: &[DeviceRow]) -> StoreResult<usize> {
                let mut tx = self.w().begin().await.map_err(map_err)?;
                for d in devices {
                    sqlx::query(
                        "INSERT INTO devices (account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, created_at) \
                         VALUES ($1, NULL, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, 0, $11)",
                    )
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
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn create_session_token(&self, token_hash: &[u8], s: &SessionTokenRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO session_tokens (token_hash, account_id, user_id, token_type, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(token_hash)
                    .bind(s.account_id)
                    .bind(s.user_id)
                    .bind(s.token_type)
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(self.w())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
            async fn session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionTokenRow>> {
                let r = sqlx::query("SELECT account_id, user_id, token_type, created_at, expires_at FROM session_tokens WHERE token_hash = $1 AND account_id = $2 AND expires_at > $3")
                    .bind(token_hash)
                    .bind(account_id)
                    .bind(now)
                    .fetch_optional(self.r())
                    .await
                    .map_err(map_err)?;
                r.map(|r| -> Result<SessionTokenRow, sqlx::Error> {
                    Ok(SessionTokenRow {
                        account_id: r.try_get("account_id")?,
                        user_id: r.try_get("user_id")?,
                        token_type: r.try_get("token_type")?,
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
                .map_err(map_err)
            }
            async fn delete_session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<bool> {
                let r = sqlx::query("DELETE FROM session_tokens WHERE token_hash = $1 AND account_id = $2 AND expires_at > $3")
                    .bind(token_hash)
                    .bind(account_id)
                    .bind(now)
                    .execute(self.w())
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn create_u2f_session(&self, id_hash: &[u8], s: &U2fSessionRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO u2f_sessions (id_hash, account_id, user_id, kind, app_id, challenge, device_ids, target_device, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                    .bind(id_hash)
                    .bind(s.account_id)
                    .bind(s.user_id)
                    .bind(&s.kind)
                    .bind(&s.app_id)
                    .bind(&s.challenge)
                    .bind(ids_to_text(&s.device_ids))
                    .bind(s.target_device)
                    .bind(s.expires_at)
                    .execute(self.w())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
            async fn consume_u2f_session(&self, account_id: i64, user_id: i64, kind: &str, id_hash: &[u8], now: i64) -> StoreResult<Option<U2fSessionRow>> {
                let r = sqlx::query(
                    "DELETE FROM u2f_sessions WHERE id_hash = $1 AND account_id = $2 AND user_id = $3 AND kind = $4 AND expires_at > $5 \
                     RETURNING account_id, user_id, kind, app_id, challenge, device_ids, target_device, expires_at",
                )
                .bind(id_hash)
                .bind(account_id)
                .bind(user_id)
                .bind(kind)
                .bind(now)
                .fetch_optional(self.w())
                .await
                .map_err(map_err)?;
                r.map(|r| -> Result<U2fSessionRow, sqlx::Error> {
                    Ok(U2fSessionRow {
                        account_id: r.try_get("account_id")?,
                        user_id: r.try_get("user_id")?,
                        kind: r.try_get("kind")?,
                        app_id: r.try_get("app_id")?,
                        challenge: r.try_get("challenge")?,
                        device_ids: text_to_ids(&r.try_get::<String, _>("device_ids")?),
                        target_device: r.try_get("target_device")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
                .map_err(map_err)
            }
            async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
                let mut n = 0;
                for q in [
                    "DELETE FROM session_tokens WHERE expires_at <= $1",
                    "DELETE FROM u2f_sessions WHERE expires_at <= $1",
                    "DELETE FROM sent_codes WHERE expires_at <= $1 - 86400",
                ] {
                    n += sqlx::query(q).bind(now).execute(self.w()).await.map_err(map_err)?.rows_affected();
                }
                Ok(n)
            }
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn append_audit(&self, rows: &[AuditRow]) -> StoreResult<()> {
                // Multi-row INSERTs (100 rows, 900 parameters each) in one transaction: one statement
                // per chunk instead of one per row.
                let mut tx = self.w().begin().await.map_err(map_err)?;
                for chunk in rows.chunks(100) {
                    let mut q = String::from("INSERT INTO audit (at_ms, account_id, account_name, op, username, psn, code, source, duration_us) VALUES ");
                    for i in 0..chunk.len() {
                        let b = i * 9;
                        if i > 0 {
                            q.push_str(", ");
                        }
                        q.push_str(&format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9
                        ));
                    }
                    let mut query = sqlx::query(&q);
                    for a in chunk {
                        query = query
                            .bind(a.at_ms)
                            .bind(a.account_id)
                            .bind(&a.account_name)
                            .bind(&a.op)
                            .bind(&a.username)
                            .bind(&a.psn)
                            .bind(a.code)
                            .bind(&a.source)
                            .bind(a.duration_us);
                    }
                    query.execute(&mut *tx).await.map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }
            async fn list_audit(&self, account_id: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRow>> {
                let rows = match account_id {
                    Some(a) => {
                        let q = format!("SELECT {AUDIT_COLS} FROM audit WHERE account_id = $1 ORDER BY id DESC LIMIT $2");
                        sqlx::query(&q).bind(a).bind(limit).fetch_all(self.r()).await
                    }
                    None => {
                        let q = format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT $1");
                        sqlx::query(&q).bind(limit).fetch_all(self.r()).await
                    }
                }
                .map_err(map_err)?;
                collect(rows, audit_from)
            }
        }

        #[async_trait]
        impl DeliveryStore for $store {
            async fn enqueue_code(&self, c: &SentCodeRow, m: &OutboxRow, window_start: i64, limit: i64) -> StoreResult<Option<(i64, i64)>> {
                let mut tx = self.w().begin().await.map_err(map_err)?;
                // Writing the user row first serialises concurrent sends to one user on both backends.
                sqlx::query("UPDATE users SET send_seq = send_seq + 1, last_code_at = $3 WHERE account_id = $1 AND id = $2")
                    .bind(c.account_id)
                    .bind(c.user_id)
                    .bind(m.next_attempt_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sent_codes WHERE account_id = $1 AND user_id = $2 AND created_at >= $3")
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
                let code_id: i64 = sqlx::query(
                    "INSERT INTO sent_codes (account_id, user_id, device_id, code_hash, created_at, expires_at, used) VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING id",
                )
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
                let mut conn = self.w().acquire().await.map_err(map_err)?;
                insert_outbox(&mut *conn, m).await
            }
            async fn sent_codes(&self, account_id: i64, user_id: i64, since: i64) -> StoreResult<Vec<SentCodeRow>> {
                let rows = sqlx::query(
                    "SELECT id, account_id, user_id, device_id, code_hash, expires_at, used FROM sent_codes WHERE account_id = $1 AND user_id = $2 AND created_at >= $3 ORDER BY id DESC",
                )
                .bind(account_id)
                .bind(user_id)
                .bind(since)
                .fetch_all(self.r())
                .await
                .map_err(map_err)?;
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
                let r = sqlx::query("UPDATE sent_codes SET used = 1 WHERE id = $1 AND used = 0").bind(id).execute(self.w()).await.map_err(map_err)?;
                Ok(r.rows_affected() == 1)
            }
            async fn claim_outbox(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxRow>> {
                let q = format!(
                    "UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 WHERE id IN \
                     (SELECT id FROM outbox WHERE (state = 'pending' AND next_attempt_at <= $2) OR (state = 'sending' AND lease_until <= $2) \
                     ORDER BY id LIMIT $3 {}) RETURNING {OUTBOX_COLS}",
                    $skip_locked
                );
                let rows = sqlx::query(&q).bind(lease_until).bind(now).bind(limit).fetch_all(self.w()).await.map_err(map_err)?;
                collect(rows, outbox_from)
            }
            async fn claim_outbox_one(&self, id: i64, now: i64, lease_until: i64) -> StoreResult<Option<OutboxRow>> {
                let q = format!(
                    "UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 WHERE id = $2 AND \
                     ((state = 'pending' AND next_attempt_at <= $3) OR (state = 'sending' AND lease_until <= $3)) RETURNING {OUTBOX_COLS}"
                );
                let r = sqlx::query(&q).bind(lease_until).bind(id).bind(now).fetch_optional(self.w()).await.map_err(map_err)?;
                r.as_ref().map(outbox_from).transpose().map_err(map_err)
            }
            async fn finish_outbox(&self, id: i64, state: &str, next_attempt_at: i64, error: &str) -> StoreResult<()> {
                // A delivered message no longer needs its text (it may carry a code).
                let q = if state == "sent" || state == "expired" || state == "failed" {
                    "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3, lease_until = 0, body = '' WHERE id = $4"
                } else {
                    "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3, lease_until = 0 WHERE id = $4"
                };
                sqlx::query(q).bind(state).bind(next_attempt_at).bind(error).bind(id).execute(self.w()).await.map_err(map_err)?;
                Ok(())
            }
            async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRow>> {
                let q = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE id = $1");
                let r = sqlx::query(&q).bind(id).fetch_optional(self.r()).await.map_err(map_err)?;
                r.as_ref().map(outbox_from).transpose().map_err(map_err)
            }
        }
    };
}
