//! The SQL text of every storage operation, shared by both backends.
//!
//! PostgreSQL runs it through sqlx (`sql.rs`), SQLite through rusqlite (`sqlite.rs`). Placeholders
//! are `$N` (PostgreSQL syntax; SQLite treats `$1` as a named parameter, and `sqlite::bind` binds it
//! by its number, so a placeholder may appear out of order or more than once). Booleans are 0/1
//! integers; blobs are BLOB/BYTEA.

macro_rules! device_cols {
    () => {
        "id, account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, window_size, time_drift, fail_count, locked_until, key_handle, public_key, app_id, key_name, u2f_counter, attestation, flagged, created_at"
    };
}
macro_rules! user_cols {
    () => {
        "id, account_id, username, first_name, last_name, mobile, email, password_hash, status, created_at, last_code_at"
    };
}
macro_rules! outbox_cols {
    () => {
        "id, account_id, channel, recipient, body, subject, attempts, next_attempt_at, expires_at, state, last_error"
    };
}
macro_rules! audit_cols {
    () => {
        "id, at_ms, account_id, account_name, op, username, psn, code, source, duration_us, req_count, seq, prev_id, hash"
    };
}
macro_rules! chain_cols {
    () => {
        "account_id, head_id, head_seq, head_hash, anchor_id, anchor_seq, anchor_hash"
    };
}
macro_rules! account_cols {
    () => {
        "id, name, key_hash, enabled, created_at"
    };
}

// accounts, facets, meta
pub(crate) const CREATE_ACCOUNT: &str =
    concat!("INSERT INTO accounts (name, key_hash, enabled, created_at) VALUES ($1, $2, 1, $3) RETURNING ", account_cols!());
pub(crate) const ACCOUNT_BY_NAME: &str = concat!("SELECT ", account_cols!(), " FROM accounts WHERE name = $1");
pub(crate) const LIST_ACCOUNTS: &str = concat!("SELECT ", account_cols!(), " FROM accounts ORDER BY name");
pub(crate) const SET_ACCOUNT_KEY: &str = "UPDATE accounts SET key_hash = $1 WHERE name = $2";
pub(crate) const SET_ACCOUNT_ENABLED: &str = "UPDATE accounts SET enabled = $1 WHERE name = $2";
pub(crate) const COUNT_ACCOUNTS: &str = "SELECT COUNT(*) AS n FROM accounts";
pub(crate) const ADD_FACET: &str = "INSERT INTO facets (account_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub(crate) const REMOVE_FACET: &str = "DELETE FROM facets WHERE account_id = $1 AND origin = $2";
pub(crate) const LIST_FACETS: &str = "SELECT origin FROM facets WHERE account_id = $1 ORDER BY origin";
pub(crate) const META_GET: &str = "SELECT v FROM meta WHERE k = $1";
pub(crate) const META_INIT: &str = "INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING";
pub(crate) const PING: &str = "SELECT 1";

// users
pub(crate) const CREATE_USER: &str = "INSERT INTO users (account_id, username, username_key, first_name, last_name, mobile, email, email_key, password_hash, status, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
pub(crate) const USER_BY_KEY: &str = concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND username_key = $2");
pub(crate) const USER_BY_ID: &str = concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND id = $2");
pub(crate) const UPDATE_USER: &str = "UPDATE users SET first_name = COALESCE($1, first_name), last_name = COALESCE($2, last_name), \
     mobile = COALESCE($3, mobile), email = COALESCE($4, email), email_key = COALESCE($5, email_key), \
     password_hash = COALESCE($6, password_hash), status = COALESCE($7, status) \
     WHERE account_id = $8 AND id = $9";
/// `delete_user`, in order, each bound to (account_id, user_id): software devices go, hardware tokens
/// (deviceType 14) return to the inventory, then the user's tokens, ceremonies and sent codes.
pub(crate) const DELETE_USER_RELATED: [&str; 5] = [
    "DELETE FROM devices WHERE account_id = $1 AND user_id = $2 AND device_type <> 14",
    "UPDATE devices SET user_id = NULL WHERE account_id = $1 AND user_id = $2",
    "DELETE FROM session_tokens WHERE account_id = $1 AND user_id = $2",
    "DELETE FROM u2f_sessions WHERE account_id = $1 AND user_id = $2",
    "DELETE FROM sent_codes WHERE account_id = $1 AND user_id = $2",
];
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE account_id = $1 AND id = $2";
pub(crate) const FIND_USERS_BY_NAME: &str =
    concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND username_key LIKE $2 ORDER BY username_key LIMIT $3");
/// One password check reserved, counted as a failure until the password proves right (see
/// `password_attempt`); refused while the user is locked.
pub(crate) const PASSWORD_ATTEMPT: &str = "UPDATE users SET pw_fail_count = pw_fail_count + 1, \
     pw_locked_until = CASE WHEN pw_fail_count + 1 >= $1 THEN $2 ELSE pw_locked_until END \
     WHERE account_id = $3 AND id = $4 AND pw_locked_until <= $5";
pub(crate) const PASSWORD_RESET: &str = "UPDATE users SET pw_fail_count = 0, pw_locked_until = 0 WHERE account_id = $1 AND id = $2";
pub(crate) const USER_KEYS_PAGE: &str = "SELECT id, account_id, username, username_key FROM users WHERE id > $1 ORDER BY id LIMIT $2";
pub(crate) const SET_USERNAME_KEY: &str = "UPDATE users SET username_key = $1 WHERE account_id = $2 AND id = $3";
pub(crate) const FIND_USERS_BY_EMAIL: &str =
    concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND email_key LIKE $2 ORDER BY username_key LIMIT $3");

// devices
pub(crate) const CREATE_DEVICE: &str = "INSERT INTO devices (account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, \
     window_size, time_drift, key_handle, public_key, app_id, key_name, u2f_counter, attestation, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING id";
pub(crate) const DEVICE_BY_PSN: &str = concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 AND psn = $2");
pub(crate) const DEVICE_BY_ID: &str = concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 AND id = $2");
pub(crate) const DEVICES_OF_USER: &str =
    concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 AND user_id = $2 ORDER BY id");
pub(crate) const ASSIGN_DEVICE_IF_FREE: &str =
    "UPDATE devices SET user_id = $1 WHERE account_id = $2 AND id = $3 AND (user_id IS NULL OR user_id = $1)";
pub(crate) const ASSIGN_DEVICE: &str = "UPDATE devices SET user_id = $1 WHERE account_id = $2 AND id = $3";
pub(crate) const DELETE_DEVICE: &str = "DELETE FROM devices WHERE account_id = $1 AND id = $2";
pub(crate) const ENABLE_DEVICE: &str = "UPDATE devices SET status = $1, fail_count = 0, locked_until = 0 WHERE account_id = $2 AND id = $3";
pub(crate) const SET_DEVICE_STATUS: &str = "UPDATE devices SET status = $1 WHERE account_id = $2 AND id = $3";
/// The OTP compare-and-set: the counter moves to `new_counter` only if it is still <= `matched`.
pub(crate) const OTP_ACCEPT: &str =
    "UPDATE devices SET counter = $1, drift = $2, fail_count = 0, locked_until = 0 WHERE id = $3 AND counter <= $4";
pub(crate) const OTP_RESYNC: &str =
    "UPDATE devices SET counter = $1, drift = $2, activated = 1, fail_count = 0, locked_until = 0 WHERE id = $3 AND counter <= $4";
pub(crate) const OTP_FAIL: &str = "UPDATE devices SET fail_count = fail_count + 1, \
     locked_until = CASE WHEN fail_count + 1 >= $1 THEN $2 ELSE locked_until END \
     WHERE id = $3 RETURNING fail_count";
pub(crate) const U2F_BIND: &str = "UPDATE devices SET key_handle = $1, public_key = $2, app_id = $3, key_name = $4, u2f_counter = $5, attestation = $6, activated = 1, user_id = $7, flagged = 0 \
     WHERE account_id = $8 AND id = $9 AND key_handle IS NULL AND (user_id IS NULL OR user_id = $7)";
pub(crate) const U2F_COUNTER_ADVANCE: &str = "UPDATE devices SET u2f_counter = $1 WHERE id = $2 AND u2f_counter < $1";
pub(crate) const U2F_FLAG: &str = "UPDATE devices SET flagged = 1 WHERE id = $1";
pub(crate) const UNASSIGNED_DEVICES: &str =
    concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 AND user_id IS NULL ORDER BY id LIMIT $2");
pub(crate) const ACCOUNT_DEVICES: &str = concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 ORDER BY id LIMIT $2");
pub(crate) const IMPORT_DEVICE: &str = "INSERT INTO devices (account_id, user_id, psn, device_type, otp_type, status, activated, seed, algorithm, digits, time_step, counter, drift, created_at) \
     VALUES ($1, NULL, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, 0, $11)";

// session tokens, U2F ceremonies
pub(crate) const CREATE_SESSION_TOKEN: &str =
    "INSERT INTO session_tokens (token_hash, account_id, user_id, token_type, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
/// The token and its owner's username key, in one read.
pub(crate) const SESSION_TOKEN: &str = "SELECT t.account_id, t.user_id, t.token_type, t.created_at, t.expires_at, u.username_key \
     FROM session_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.account_id = $2 AND t.expires_at > $3";
pub(crate) const DELETE_SESSION_TOKEN: &str = "DELETE FROM session_tokens WHERE token_hash = $1 AND account_id = $2 AND expires_at > $3";
pub(crate) const CREATE_U2F_SESSION: &str = "INSERT INTO u2f_sessions (id_hash, account_id, user_id, kind, app_id, challenge, device_ids, target_device, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const CONSUME_U2F_SESSION: &str =
    "DELETE FROM u2f_sessions WHERE id_hash = $1 AND account_id = $2 AND user_id = $3 AND kind = $4 AND expires_at > $5 \
     RETURNING account_id, user_id, kind, app_id, challenge, device_ids, target_device, expires_at";
/// `purge_expired`, each bound to (now).
/// The text of an outbox message that expired undelivered is erased too (it may carry a code).
pub(crate) const PURGE_EXPIRED: [&str; 5] = [
    "DELETE FROM session_tokens WHERE expires_at <= $1",
    "DELETE FROM u2f_sessions WHERE expires_at <= $1",
    "DELETE FROM sent_codes WHERE expires_at <= $1 - 86400",
    "DELETE FROM webauthn_sessions WHERE expires_at <= $1",
    "UPDATE outbox SET body = '' WHERE expires_at <= $1 AND body <> ''",
];

// WebAuthn: user handles, credentials by id, the shared FIDO counter, ceremonies
/// Sets the user's handle if it has none yet (a concurrent first use keeps the first one).
pub(crate) const SET_WEBAUTHN_HANDLE: &str =
    "UPDATE users SET webauthn_handle = $1 WHERE account_id = $2 AND id = $3 AND webauthn_handle IS NULL";
pub(crate) const WEBAUTHN_HANDLE: &str = "SELECT webauthn_handle FROM users WHERE account_id = $1 AND id = $2";
pub(crate) const USER_BY_WEBAUTHN_HANDLE: &str =
    concat!("SELECT ", user_cols!(), " FROM users WHERE account_id = $1 AND webauthn_handle = $2");
pub(crate) const DEVICES_BY_KEY_HANDLE: &str =
    concat!("SELECT ", device_cols!(), " FROM devices WHERE account_id = $1 AND key_handle = $2 ORDER BY id");
/// The FIDO counter compare-and-set of a WebAuthn assertion: up, or 0 while the stored counter is
/// still 0 (or unused, -1): authenticators without a counter always send 0.
pub(crate) const FIDO_COUNTER_ADVANCE: &str =
    "UPDATE devices SET u2f_counter = $1 WHERE id = $2 AND flagged = 0 AND (u2f_counter < $1 OR ($1 = 0 AND u2f_counter <= 0))";
pub(crate) const CREATE_WEBAUTHN_SESSION: &str =
    "INSERT INTO webauthn_sessions (id_hash, account_id, user_id, kind, rp_id, challenge, state, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// Consumes a ceremony of this account and kind; `$5` is the user the call names (-1: none named),
/// and a ceremony begun for another user is left alone.
pub(crate) const CONSUME_WEBAUTHN_SESSION: &str =
    "DELETE FROM webauthn_sessions WHERE id_hash = $1 AND account_id = $2 AND kind = $3 AND expires_at > $4 \
     AND ($5 < 0 OR user_id IS NULL OR user_id = $5) RETURNING account_id, user_id, kind, rp_id, challenge, state, expires_at";

// audit
pub(crate) const LIST_AUDIT_OF: &str = concat!("SELECT ", audit_cols!(), " FROM audit WHERE account_id = $1 ORDER BY id DESC LIMIT $2");
pub(crate) const LIST_AUDIT_ALL: &str = concat!("SELECT ", audit_cols!(), " FROM audit ORDER BY id DESC LIMIT $1");
/// SQLite: the next id of a chained row. SQLite would reuse the ids of deleted rows (a table
/// without AUTOINCREMENT takes max(id) + 1), and a chain's ids must keep growing after a prune, so
/// the ids chained rows get never fall back below the highest head.
pub(crate) const SQLITE_NEXT_AUDIT_ID: &str =
    "SELECT MAX(COALESCE((SELECT MAX(id) FROM audit), 0), COALESCE((SELECT MAX(head_id) FROM audit_chain), 0)) + 1";
/// Head of the insert of chained rows with their ids (PostgreSQL: ids drawn beforehand; SQLite:
/// [`SQLITE_NEXT_AUDIT_ID`]).
pub(crate) const INSERT_AUDIT_WITH_ID_HEAD: &str =
    "INSERT INTO audit (id, at_ms, account_id, account_name, op, username, psn, code, source, duration_us, req_count, seq, prev_id, hash) VALUES ";
/// Columns per row in [`INSERT_AUDIT_WITH_ID_HEAD`].
pub(crate) const AUDIT_WITH_ID_PARAMS: usize = 14;
/// PostgreSQL: `$1` ids of the audit table, in order, drawn while the chains' heads are held.
pub(crate) const NEXT_AUDIT_IDS: &str =
    "SELECT nextval(pg_get_serial_sequence('audit', 'id')) AS id FROM generate_series(1, $1) ORDER BY 1";
/// An aggregate row of unauthenticated requests: added to the row of its source and minute.
pub(crate) const UPSERT_AUDIT_UNAUTH: &str =
    "INSERT INTO audit (at_ms, account_id, account_name, op, username, psn, code, source, duration_us, req_count, bucket) \
     VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (source, bucket) WHERE bucket IS NOT NULL \
     DO UPDATE SET req_count = audit.req_count + excluded.req_count, duration_us = audit.duration_us + excluded.duration_us";
/// Creates a chain's head row if it has none yet (bound to account id and the genesis hash).
pub(crate) const ENSURE_CHAIN: &str =
    "INSERT INTO audit_chain (account_id, head_id, head_seq, head_hash, anchor_id, anchor_seq, anchor_hash) \
     VALUES ($1, 0, 0, $2, 0, 0, $2) ON CONFLICT (account_id) DO NOTHING";
pub(crate) const CHAIN_HEAD: &str = concat!("SELECT ", chain_cols!(), " FROM audit_chain WHERE account_id = $1");
pub(crate) const CHAIN_HEAD_FOR_UPDATE: &str = concat!("SELECT ", chain_cols!(), " FROM audit_chain WHERE account_id = $1 FOR UPDATE");
pub(crate) const CHAIN_HEADS_ALL: &str = concat!("SELECT ", chain_cols!(), " FROM audit_chain ORDER BY account_id");
pub(crate) const SET_CHAIN_HEAD: &str = "UPDATE audit_chain SET head_id = $1, head_seq = $2, head_hash = $3 WHERE account_id = $4";
pub(crate) const SET_CHAIN_ANCHOR: &str = "UPDATE audit_chain SET anchor_id = $1, anchor_seq = $2, anchor_hash = $3 WHERE account_id = $4";
pub(crate) const AUDIT_ROWS_AFTER: &str =
    concat!("SELECT ", audit_cols!(), " FROM audit WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3");
/// The newest chained row of an account older than the cut-off: the chain's new anchor.
pub(crate) const PRUNE_POINT: &str =
    "SELECT id, seq, hash FROM audit WHERE account_id = $1 AND id > $2 AND seq IS NOT NULL AND at_ms < $3 ORDER BY id DESC LIMIT 1";
pub(crate) const PRUNE_CHAIN_ROWS: &str = "DELETE FROM audit WHERE account_id = $1 AND id <= $2";
/// Rows outside the chains (written before it existed) of one account.
pub(crate) const PRUNE_UNCHAINED_OF: &str = "DELETE FROM audit WHERE account_id = $1 AND seq IS NULL AND at_ms < $2";
/// Rows outside the chains: from before it existed, and the aggregate rows.
pub(crate) const PRUNE_UNCHAINED_ALL: &str = "DELETE FROM audit WHERE seq IS NULL AND at_ms < $1";

/// A multi-row INSERT of `rows` rows of `cols` columns: `head ($1, …, $cols), ($cols+1, …), …`.
pub(crate) fn insert_rows(head: &str, cols: usize, rows: usize) -> String {
    let mut q = String::from(head);
    for i in 0..rows {
        if i > 0 {
            q.push_str(", ");
        }
        q.push('(');
        for c in 0..cols {
            if c > 0 {
                q.push_str(", ");
            }
            q.push('$');
            q.push_str(&(i * cols + c + 1).to_string());
        }
        q.push(')');
    }
    q
}

// delivery
/// `enqueue_code` on PostgreSQL starts with it: writing the user row serialises concurrent sends to one user
/// (on SQLite the one writer thread serialises every write anyway). It also records `last_code_at`.
pub(crate) const TOUCH_USER_SEND: &str = "UPDATE users SET send_seq = send_seq + 1, last_code_at = $3 WHERE account_id = $1 AND id = $2";
pub(crate) const COUNT_SENT: &str = "SELECT COUNT(*) AS n FROM sent_codes WHERE account_id = $1 AND user_id = $2 AND created_at >= $3";
pub(crate) const INSERT_SENT_CODE: &str = "INSERT INTO sent_codes (account_id, user_id, device_id, code_hash, created_at, expires_at, used) VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING id";
pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO outbox (account_id, channel, recipient, subject, body, attempts, next_attempt_at, lease_until, expires_at, state, last_error, created_at) \
     VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, 'pending', '', $6) RETURNING id";
pub(crate) const SENT_CODES: &str = "SELECT id, account_id, user_id, device_id, code_hash, expires_at, used FROM sent_codes WHERE account_id = $1 AND user_id = $2 AND created_at >= $3 ORDER BY id DESC";
pub(crate) const CONSUME_SENT_CODE: &str = "UPDATE sent_codes SET used = 1 WHERE id = $1 AND used = 0";
/// `claim_outbox` without and with row locks (PostgreSQL: several nodes share the outbox).
macro_rules! claim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM outbox WHERE (state = 'pending' AND next_attempt_at <= $2) OR (state = 'sending' AND lease_until <= $2) \
             ORDER BY id LIMIT $3",
            $lock,
            ") RETURNING ",
            outbox_cols!()
        )
    };
}
pub(crate) const CLAIM_OUTBOX: &str = claim_outbox!("");
pub(crate) const CLAIM_OUTBOX_SKIP_LOCKED: &str = claim_outbox!(" FOR UPDATE SKIP LOCKED");
pub(crate) const CLAIM_OUTBOX_ONE: &str = concat!(
    "UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 WHERE id = $2 AND \
     ((state = 'pending' AND next_attempt_at <= $3) OR (state = 'sending' AND lease_until <= $3)) RETURNING ",
    outbox_cols!()
);
/// A finished message no longer needs its text (it may carry a code).
pub(crate) const FINISH_OUTBOX_CLEAR: &str =
    "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3, lease_until = 0, body = '' WHERE id = $4";
pub(crate) const FINISH_OUTBOX: &str = "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3, lease_until = 0 WHERE id = $4";
pub(crate) const OUTBOX_BY_ID: &str = concat!("SELECT ", outbox_cols!(), " FROM outbox WHERE id = $1");

// RADIUS clients and challenges
pub(crate) const ADD_RADIUS_CLIENT: &str =
    "INSERT INTO radius_clients (account_id, address, secret, otp_only, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id";
pub(crate) const REMOVE_RADIUS_CLIENT: &str = "DELETE FROM radius_clients WHERE account_id = $1 AND address = $2";
macro_rules! radius_client_select {
    ($filter:literal) => {
        concat!(
            "SELECT c.id, c.account_id, a.name AS account_name, c.address, c.secret, c.otp_only, c.created_at \
             FROM radius_clients c JOIN accounts a ON a.id = c.account_id",
            $filter,
            " ORDER BY a.name, c.address"
        )
    };
}
pub(crate) const LIST_RADIUS_CLIENTS_ALL: &str = radius_client_select!("");
pub(crate) const LIST_RADIUS_CLIENTS_OF: &str = radius_client_select!(" WHERE c.account_id = $1");
pub(crate) const CREATE_RADIUS_CHALLENGE: &str =
    "INSERT INTO radius_challenges (state_hash, account_id, user_key, expires_at) VALUES ($1, $2, $3, $4)";
pub(crate) const CONSUME_RADIUS_CHALLENGE: &str = "DELETE FROM radius_challenges \
     WHERE state_hash = $1 AND account_id = $2 AND user_key = $3 AND expires_at > $4 RETURNING account_id, user_key, expires_at";
pub(crate) const PURGE_RADIUS_CHALLENGES: &str = "DELETE FROM radius_challenges WHERE expires_at <= $1";

/// Whether `finish_outbox` with this state also erases the message text.
pub(crate) fn finish_clears_body(state: &str) -> bool {
    matches!(state, "sent" | "expired" | "failed")
}

/// Device ids of a U2F sign ceremony as stored (`1,2,3`).
pub(crate) fn ids_to_text(ids: &[i64]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

pub(crate) fn text_to_ids(s: &str) -> Vec<i64> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}
