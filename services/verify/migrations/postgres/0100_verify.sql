-- The verify gateway's own table (database per service): what each partner verified.
-- Only the credential id, the outcome and the time are kept, never the credential's data.

CREATE TABLE verify_audit (
    id            BIGSERIAL PRIMARY KEY,
    client_id     TEXT      NOT NULL,
    credential_id TEXT      NOT NULL,
    outcome       TEXT      NOT NULL,
    reason        TEXT      NOT NULL,
    issuer        TEXT      NOT NULL,
    verified_at   BIGINT    NOT NULL
);

CREATE INDEX verify_audit_by_client ON verify_audit (client_id, verified_at);
