-- Audit trail (docs/operations.md, "Audit trail"): each account's rows form a hash chain (seq,
-- prev_id, hash); requests that fail account authentication are counted in one aggregate row per
-- source address and minute (bucket = at_ms / 60000), outside every chain.
ALTER TABLE audit ADD COLUMN req_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN seq INTEGER;
ALTER TABLE audit ADD COLUMN prev_id INTEGER;
ALTER TABLE audit ADD COLUMN hash BLOB;
ALTER TABLE audit ADD COLUMN bucket INTEGER;
CREATE UNIQUE INDEX audit_unauth ON audit(source, bucket) WHERE bucket IS NOT NULL;
-- Each chain's head (the last row appended) and anchor (the last row pruned; the first remaining
-- row follows it). Appends hold the head row (FOR UPDATE on PostgreSQL).
CREATE TABLE audit_chain (
    account_id INTEGER PRIMARY KEY,
    head_id INTEGER NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    anchor_id INTEGER NOT NULL,
    anchor_seq INTEGER NOT NULL,
    anchor_hash BLOB NOT NULL
);
-- Rows written before the chain existed (ids up to this one) are outside it.
INSERT INTO meta (k, v) SELECT 'audit_chain_from', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM audit;
