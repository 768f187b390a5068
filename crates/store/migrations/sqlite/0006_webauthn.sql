-- WebAuthn (docs/api.md, "WebAuthn and passkeys"). Credentials live in `devices` beside U2F keys
-- (deviceType 16; key_handle = credential id, public_key = COSE_Key, app_id = rpId), so both share
-- one counter and one clone flag.
-- A stable random user handle per user (user.id of the creation options), set at first use.
ALTER TABLE users ADD COLUMN webauthn_handle BLOB;
CREATE UNIQUE INDEX users_webauthn_handle ON users(account_id, webauthn_handle);
-- Credentials are looked up by id (usernameless sign-in).
CREATE INDEX devices_key_handle ON devices(account_id, key_handle);
-- Ceremonies (any node finishes what another began); user_id is NULL for a usernameless sign-in.
CREATE TABLE webauthn_sessions (
    id_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    rp_id TEXT NOT NULL,
    challenge TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_sessions_expiry ON webauthn_sessions(expires_at);
