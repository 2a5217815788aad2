-- An establishment written by one statement. Inserting a row into this view runs the
-- trigger below, which writes the idempotency record (when the row carries a key), the
-- register row, version 1 and the audit entry. One statement is one atomic transaction
-- in SQLite, triggers included: a failing insert (a registered code, a used key) rolls
-- all of it back. The store used to spend a transaction of nine statements, each a
-- wake-up of the connection's worker thread, on the same rows.
CREATE VIEW license_establishments AS SELECT
    '' AS uscc, '' AS name, '' AS license_id, '' AS authority, 1 AS version, 0 AS issued_at,
    '' AS entity_type, '' AS legal_representative, NULL AS rep_id_salt, NULL AS rep_id_hash,
    '' AS capital_amount, '' AS capital_currency, '' AS establishment_date, '' AS term_start,
    '' AS term_end, '' AS domicile, '' AS business_scope, '' AS issue_date, 0 AS list_no,
    0 AS list_index, '' AS kid, X'' AS envelope, '' AS vc_jwt, '' AS issued_by,
    '' AS license_serial, '' AS actor_kind, '' AS detail, '' AS trace_id,
    NULL AS idempotency_scope, NULL AS idempotency_key, NULL AS request_hash, NULL AS response
WHERE 0;

CREATE TRIGGER license_establishments_write INSTEAD OF INSERT ON license_establishments
BEGIN
    INSERT INTO idempotency (scope, key, request_hash, response, created_at)
        SELECT NEW.idempotency_scope, NEW.idempotency_key, NEW.request_hash, NEW.response,
               NEW.issued_at
        WHERE NEW.idempotency_scope IS NOT NULL;
    INSERT INTO enterprises (uscc, name, state, current_version, license_id, authority,
                             license_serial, state_reason, created_at, updated_at)
        VALUES (NEW.uscc, NEW.name, 'active', 1, NEW.license_id, NEW.authority,
                NEW.license_serial, '', NEW.issued_at, NEW.issued_at);
    INSERT INTO license_versions (uscc, version, license_id, is_current, name, entity_type,
                                  legal_representative, rep_id_salt, rep_id_hash,
                                  capital_amount, capital_currency, establishment_date,
                                  term_start, term_end, domicile, business_scope, authority,
                                  issue_date, list_no, list_index, kid, envelope, vc_jwt,
                                  issued_at, issued_by, superseded_at, revoked_at)
        VALUES (NEW.uscc, NEW.version, NEW.license_id, TRUE, NEW.name, NEW.entity_type,
                NEW.legal_representative, NEW.rep_id_salt, NEW.rep_id_hash,
                NEW.capital_amount, NEW.capital_currency, NEW.establishment_date,
                NEW.term_start, NEW.term_end, NEW.domicile, NEW.business_scope, NEW.authority,
                NEW.issue_date, NEW.list_no, NEW.list_index, NEW.kid, NEW.envelope, NEW.vc_jwt,
                NEW.issued_at, NEW.issued_by, 0, 0);
    INSERT INTO audit_log (at, actor, actor_kind, action, target, detail, trace_id)
        VALUES (NEW.issued_at, NEW.issued_by, NEW.actor_kind, 'license.establish', NEW.uscc,
                NEW.detail, NEW.trace_id);
END;
