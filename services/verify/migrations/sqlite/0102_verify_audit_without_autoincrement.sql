-- verify_audit without AUTOINCREMENT (SQLite only; PostgreSQL keeps its sequence). Every
-- audited verification is a row, so the insert is on the gateway's hot path, and
-- AUTOINCREMENT made each one also update sqlite_sequence. Rows are never deleted, so a
-- plain INTEGER PRIMARY KEY (the largest id plus one) still gives ids that only grow,
-- and the (verified_at, id) keyset pages list the same rows in the same order.
CREATE TABLE verify_audit_rebuilt (
    id            INTEGER PRIMARY KEY,
    client_id     TEXT    NOT NULL,
    credential_id TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    issuer        TEXT    NOT NULL,
    verified_at   INTEGER NOT NULL,
    kind          TEXT    NOT NULL DEFAULT ''
);
INSERT INTO verify_audit_rebuilt
        (id, client_id, credential_id, outcome, reason, issuer, verified_at, kind)
    SELECT id, client_id, credential_id, outcome, reason, issuer, verified_at, kind
    FROM verify_audit;
DROP TABLE verify_audit;
ALTER TABLE verify_audit_rebuilt RENAME TO verify_audit;
CREATE INDEX verify_audit_by_client ON verify_audit (client_id, verified_at, id);
CREATE INDEX verify_audit_by_time ON verify_audit (verified_at, id);
