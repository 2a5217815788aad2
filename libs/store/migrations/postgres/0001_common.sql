-- Tables every credmesh service has: idempotency records and the append-only audit log.
-- Versions below 100 belong to credmesh-store; each service numbers its own from 100.

CREATE TABLE IF NOT EXISTS idempotency (
    scope        TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    request_hash BYTEA  NOT NULL,
    response     BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE IF NOT EXISTS audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    actor_kind TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    trace_id   TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
