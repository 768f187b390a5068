-- Tessera schema, SQLite. Times are Unix seconds unless the column name says _ms.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash BLOB NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE facets (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    origin TEXT NOT NULL,
    PRIMARY KEY (account_id, origin)
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    mobile TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    email_key TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    status INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    send_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, username_key)
);
CREATE INDEX users_email ON users(account_id, email_key);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    psn TEXT NOT NULL,
    device_type INTEGER NOT NULL,
    otp_type INTEGER NOT NULL,
    status INTEGER NOT NULL DEFAULT 0,
    activated INTEGER NOT NULL DEFAULT 0,
    seed BLOB,
    algorithm TEXT NOT NULL DEFAULT 'SHA1',
    digits INTEGER NOT NULL DEFAULT 6,
    time_step INTEGER NOT NULL DEFAULT 30,
    counter INTEGER NOT NULL DEFAULT 0,
    drift INTEGER NOT NULL DEFAULT 0,
    window_size INTEGER,
    time_drift INTEGER,
    fail_count INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    key_handle BLOB,
    public_key BLOB,
    app_id TEXT,
    key_name TEXT,
    u2f_counter INTEGER NOT NULL DEFAULT -1,
    attestation BLOB,
    flagged INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, psn)
);
CREATE INDEX devices_user ON devices(account_id, user_id);
CREATE TABLE session_tokens (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_type INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX session_tokens_user ON session_tokens(user_id);
CREATE TABLE u2f_sessions (
    id_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    challenge TEXT NOT NULL,
    device_ids TEXT NOT NULL,
    target_device INTEGER,
    expires_at INTEGER NOT NULL
);
CREATE TABLE sent_codes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id INTEGER,
    code_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sent_codes_user ON sent_codes(account_id, user_id, created_at);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    account_id INTEGER,
    account_name TEXT NOT NULL,
    op TEXT NOT NULL,
    username TEXT NOT NULL,
    psn TEXT NOT NULL,
    code INTEGER NOT NULL,
    source TEXT NOT NULL,
    duration_us INTEGER NOT NULL
);
CREATE INDEX audit_account ON audit(account_id, id);
