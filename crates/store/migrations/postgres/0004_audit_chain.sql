-- Audit trail (docs/operations.md, "Audit trail"): each account's rows form a hash chain (seq,
-- prev_id, hash); requests that fail account authentication are counted in one aggregate row per
-- source address and minute (bucket = at_ms / 60000), outside every chain.
ALTER TABLE audit ADD COLUMN req_count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN seq BIGINT;
ALTER TABLE audit ADD COLUMN prev_id BIGINT;
ALTER TABLE audit ADD COLUMN hash BYTEA;
ALTER TABLE audit ADD COLUMN bucket BIGINT;
CREATE UNIQUE INDEX audit_unauth ON audit(source, bucket) WHERE bucket IS NOT NULL;
-- Each chain's head (the last row appended) and anchor (the last row pruned; the first remaining
-- row follows it). Appends hold the head row (FOR UPDATE on PostgreSQL).
CREATE TABLE audit_chain (
    account_id BIGINT PRIMARY KEY,
    head_id BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash BYTEA NOT NULL,
    anchor_id BIGINT NOT NULL,
    anchor_seq BIGINT NOT NULL,
    anchor_hash BYTEA NOT NULL
);
-- Rows written before the chain existed (ids up to this one) are outside it.
INSERT INTO meta (k, v) SELECT 'audit_chain_from', COALESCE(MAX(id), 0)::text FROM audit;
