-- Password throttling per user (docs/api.md, "Users"): consecutive wrong passwords, and until when the user is
-- locked (Unix seconds). Counted apart from the devices' OTP failures.
ALTER TABLE users ADD COLUMN pw_fail_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN pw_locked_until BIGINT NOT NULL DEFAULT 0;
