-- The inspection service's own tables (database per service).

-- One row per inspected enterprise: every plan and join locks it first (FOR UPDATE), so
-- rule checks of one enterprise are serialised and a cap cannot be passed twice.
CREATE TABLE inspected_enterprises (
    uscc       TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- One row per (possibly joint) inspection with its current code.
CREATE TABLE inspections (
    id              TEXT    PRIMARY KEY,
    seq             BIGINT  NOT NULL UNIQUE,
    uscc            TEXT    NOT NULL,
    enterprise_name TEXT    NOT NULL,
    routine         BOOLEAN NOT NULL,
    window_start    BIGINT  NOT NULL,
    window_end      BIGINT  NOT NULL,
    state           TEXT    NOT NULL,
    multi_head      BOOLEAN NOT NULL,
    override_reason TEXT    NOT NULL,
    alerts          TEXT    NOT NULL,
    alert_count     BIGINT  NOT NULL DEFAULT 0,
    code_version    BIGINT  NOT NULL,
    list_no         BIGINT  NOT NULL,
    list_index      BIGINT  NOT NULL,
    kid             TEXT    NOT NULL,
    envelope        BYTEA   NOT NULL,
    vc_jwt          TEXT    NOT NULL,
    shown_at        BIGINT  NOT NULL DEFAULT 0,
    completed_at    BIGINT  NOT NULL DEFAULT 0,
    has_findings    BOOLEAN NOT NULL DEFAULT FALSE,
    summary         TEXT    NOT NULL DEFAULT '',
    recorded_by     TEXT    NOT NULL DEFAULT '',
    evaluated       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL
);
-- Every rule query is "this enterprise, windows near this start": an index, not a scan.
CREATE INDEX inspections_enterprise ON inspections (uscc, window_start);

CREATE TABLE inspection_participants (
    inspection_id  TEXT    NOT NULL REFERENCES inspections (id),
    department     TEXT    NOT NULL,
    position       BIGINT  NOT NULL,
    kind           TEXT    NOT NULL,
    items          TEXT    NOT NULL,
    plan_number    TEXT    NOT NULL,
    trigger_name   TEXT    NOT NULL,
    trigger_reason TEXT    NOT NULL,
    is_repeat      BOOLEAN NOT NULL,
    joined_at      BIGINT  NOT NULL,
    PRIMARY KEY (inspection_id, department)
);
CREATE INDEX participants_department ON inspection_participants (department, joined_at);

CREATE TABLE inspection_inspectors (
    inspection_id TEXT    NOT NULL REFERENCES inspections (id),
    client_id     TEXT    NOT NULL,
    certificate   TEXT    NOT NULL,
    department    TEXT    NOT NULL,
    position      BIGINT  NOT NULL,
    PRIMARY KEY (inspection_id, client_id)
);
CREATE INDEX inspectors_client ON inspection_inspectors (client_id);

-- Evaluations are immutable: written once, never updated or deleted.
CREATE TABLE evaluations (
    inspection_id TEXT    PRIMARY KEY REFERENCES inspections (id),
    uscc          TEXT    NOT NULL,
    score         BIGINT  NOT NULL,
    tags          TEXT    NOT NULL,
    comment       TEXT    NOT NULL,
    evaluated_at  BIGINT  NOT NULL
);
CREATE OR REPLACE FUNCTION evaluations_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'evaluations are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER evaluations_no_change BEFORE UPDATE OR DELETE ON evaluations
    FOR EACH ROW EXECUTE FUNCTION evaluations_immutable();

-- Policy data, current state.
CREATE TABLE credit_grades (
    uscc       TEXT   PRIMARY KEY,
    grade      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE monitoring_list (
    uscc     TEXT   PRIMARY KEY,
    note     TEXT   NOT NULL,
    added_at BIGINT NOT NULL
);
-- uscc '' means the item is not to be disturbed at any enterprise.
CREATE TABLE do_not_disturb (
    item     TEXT   NOT NULL,
    uscc     TEXT   NOT NULL,
    note     TEXT   NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (item, uscc)
);
CREATE TABLE non_site_checks (
    id         BIGSERIAL PRIMARY KEY,
    uscc       TEXT    NOT NULL,
    item       TEXT    NOT NULL,
    checked_at BIGINT  NOT NULL,
    clean      BOOLEAN NOT NULL,
    note       TEXT    NOT NULL
);
CREATE INDEX non_site_checks_enterprise ON non_site_checks (uscc, item, checked_at);

-- Every policy change ever applied (the history).
CREATE TABLE policy_changes (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    uscc       TEXT    NOT NULL,
    item       TEXT    NOT NULL,
    grade      TEXT    NOT NULL,
    clean      BOOLEAN NOT NULL,
    checked_at BIGINT  NOT NULL,
    removed    BOOLEAN NOT NULL,
    note       TEXT    NOT NULL,
    changed_at BIGINT  NOT NULL,
    changed_by TEXT    NOT NULL
);
CREATE INDEX policy_changes_enterprise ON policy_changes (uscc, id);

-- The next free status-list entry (also the inspections' sequence).
CREATE TABLE status_allocator (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_index BIGINT  NOT NULL
);
INSERT INTO status_allocator (id, next_index) VALUES (1, 0);

-- Set status bits; only ever added (a joined inspection's previous code is revoked as
-- superseded), so the row count of a list and purpose counts its changes.
CREATE TABLE status_bits (
    list_no    BIGINT NOT NULL,
    purpose    BIGINT NOT NULL,
    list_index BIGINT NOT NULL,
    set_at     BIGINT NOT NULL,
    PRIMARY KEY (list_no, purpose, list_index)
);
