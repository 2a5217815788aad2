-- The credential kind of each audited verification, so the audit can be filtered by
-- kind (ListVerificationAudit); empty for rows written before this migration and for
-- inputs that were not verifiable credentials.
ALTER TABLE verify_audit ADD COLUMN kind TEXT NOT NULL DEFAULT '';

-- The audit is listed newest first, by (verified_at, id), keyset-paged: for one
-- partner, and for every partner (operators).
DROP INDEX verify_audit_by_client;
CREATE INDEX verify_audit_by_client ON verify_audit (client_id, verified_at, id);
CREATE INDEX verify_audit_by_time ON verify_audit (verified_at, id);
