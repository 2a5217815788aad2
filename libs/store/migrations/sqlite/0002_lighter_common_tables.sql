-- Every write of every service touches these two tables, so on SQLite they are rebuilt
-- in a lighter shape (PostgreSQL keeps its own):
--
-- * audit_log without AUTOINCREMENT. AUTOINCREMENT made each insert also update
--   sqlite_sequence. Rows are never deleted (the append-only trigger), so a plain
--   INTEGER PRIMARY KEY (the largest id plus one) still gives ids that only grow, and
--   readers that page by id see the same order.
-- * idempotency WITHOUT ROWID. A record is only ever found by its primary key
--   (scope, key), so it is stored in that key's b-tree alone instead of in a table
--   plus an index on the key.
--
-- Together about a tenth off an establishment on SQLite (`make bench`, license).
--
-- Services' triggers write both tables by name (license's establishment view). With
-- legacy_alter_table on, the rename below leaves their text alone, and they resolve the
-- names again when they run; the rebuilt tables keep every column and row.
PRAGMA legacy_alter_table = ON;

CREATE TABLE audit_log_rebuilt (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    actor_kind TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    trace_id   TEXT    NOT NULL DEFAULT ''
);
INSERT INTO audit_log_rebuilt (id, at, actor, actor_kind, action, target, detail, trace_id)
    SELECT id, at, actor, actor_kind, action, target, detail, trace_id FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;
CREATE INDEX audit_log_target ON audit_log (target, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TABLE idempotency_rebuilt (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    response     BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
INSERT INTO idempotency_rebuilt (scope, key, request_hash, response, created_at)
    SELECT scope, key, request_hash, response, created_at FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_rebuilt RENAME TO idempotency;

PRAGMA legacy_alter_table = OFF;
