-- RADIUS: the NAS clients of each account (shared secret sealed under the master key) and pending
-- Access-Challenges (only a hash of the State is stored; single use, short-lived).
CREATE TABLE radius_clients (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    address TEXT NOT NULL UNIQUE,
    secret BLOB NOT NULL,
    otp_only INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE radius_challenges (
    state_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX radius_challenges_expiry ON radius_challenges(expires_at);
