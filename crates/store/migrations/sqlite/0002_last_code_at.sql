-- When the user was last sent a code: validation skips the sent-code lookup for users with none pending.
ALTER TABLE users ADD COLUMN last_code_at INTEGER NOT NULL DEFAULT 0;
