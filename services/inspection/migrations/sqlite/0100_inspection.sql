-- The inspection service's own tables (database per service).

-- One row per inspected enterprise: every plan and join locks it first (FOR UPDATE), so
-- rule checks of one enterprise are serialised and a cap cannot be passed twice.
CREATE TABLE inspected_enterprises (
    uscc       TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per (possibly joint) inspection with its current code.
CREATE TABLE inspections (
    id              TEXT    PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,
    uscc            TEXT    NOT NULL,
    enterprise_name TEXT    NOT NULL,
    routine         BOOLEAN NOT NULL,
    window_start    INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    multi_head      BOOLEAN NOT NULL,
    override_reason TEXT    NOT NULL,
    alerts          TEXT    NOT NULL,
    alert_count     INTEGER NOT NULL DEFAULT 0,
    code_version    INTEGER NOT NULL,
    list_no         INTEGER NOT NULL,
    list_index      INTEGER NOT NULL,
    kid             TEXT    NOT NULL,
    envelope        BLOB   NOT NULL,
    vc_jwt          TEXT    NOT NULL,
    shown_at        INTEGER NOT NULL DEFAULT 0,
    completed_at    INTEGER NOT NULL DEFAULT 0,
    has_findings    BOOLEAN NOT NULL DEFAULT FALSE,
    summary         TEXT    NOT NULL DEFAULT '',
    recorded_by     TEXT    NOT NULL DEFAULT '',
    evaluated       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL
);
-- Every rule query is "this enterprise, windows near this start": an index, not a scan.
CREATE INDEX inspections_enterprise ON inspections (uscc, window_start);

CREATE TABLE inspection_participants (
    inspection_id  TEXT    NOT NULL REFERENCES inspections (id),
    department     TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    items          TEXT    NOT NULL,
    plan_number    TEXT    NOT NULL,
    trigger_name   TEXT    NOT NULL,
    trigger_reason TEXT    NOT NULL,
    is_repeat      BOOLEAN NOT NULL,
    joined_at      INTEGER NOT NULL,
    PRIMARY KEY (inspection_id, department)
);
CREATE INDEX participants_department ON inspection_participants (department, joined_at);

CREATE TABLE inspection_inspectors (
    inspection_id TEXT    NOT NULL REFERENCES inspections (id),
    client_id     TEXT    NOT NULL,
    certificate   TEXT    NOT NULL,
    department    TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (inspection_id, client_id)
);
CREATE INDEX inspectors_client ON inspection_inspectors (client_id);

-- Evaluations are immutable: written once, never updated or deleted.
CREATE TABLE evaluations (
    inspection_id TEXT    PRIMARY KEY REFERENCES inspections (id),
    uscc          TEXT    NOT NULL,
    score         INTEGER NOT NULL,
    tags          TEXT    NOT NULL,
    comment       TEXT    NOT NULL,
    evaluated_at  INTEGER NOT NULL
);
CREATE TRIGGER evaluations_no_update BEFORE UPDATE ON evaluations
BEGIN
    SELECT RAISE(ABORT, 'evaluations are immutable');
END;
CREATE TRIGGER evaluations_no_delete BEFORE DELETE ON evaluations
BEGIN
    SELECT RAISE(ABORT, 'evaluations are immutable');
END;

-- Policy data, current state.
CREATE TABLE credit_grades (
    uscc       TEXT   PRIMARY KEY,
    grade      TEXT   NOT NULL,
    updated_at INTEGERNOT NULL
);
CREATE TABLE monitoring_list (
    uscc     TEXT   PRIMARY KEY,
    note     TEXT   NOT NULL,
    added_at INTEGERNOT NULL
);
-- uscc '' means the item is not to be disturbed at any enterprise.
CREATE TABLE do_not_disturb (
    item     TEXT   NOT NULL,
    uscc     TEXT   NOT NULL,
    note     TEXT   NOT NULL,
    added_at INTEGERNOT NULL,
    PRIMARY KEY (item, uscc)
);
CREATE TABLE non_site_checks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    uscc       TEXT    NOT NULL,
    item       TEXT    NOT NULL,
    checked_at INTEGER NOT NULL,
    clean      BOOLEAN NOT NULL,
    note       TEXT    NOT NULL
);
CREATE INDEX non_site_checks_enterprise ON non_site_checks (uscc, item, checked_at);

-- Every policy change ever applied (the history).
CREATE TABLE policy_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    uscc       TEXT    NOT NULL,
    item       TEXT    NOT NULL,
    grade      TEXT    NOT NULL,
    clean      BOOLEAN NOT NULL,
    checked_at INTEGER NOT NULL,
    removed    BOOLEAN NOT NULL,
    note       TEXT    NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT    NOT NULL
);
CREATE INDEX policy_changes_enterprise ON policy_changes (uscc, id);

-- The next free status-list entry (also the inspections' sequence).
CREATE TABLE status_allocator (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_index INTEGER NOT NULL
);
INSERT INTO status_allocator (id, next_index) VALUES (1, 0);

-- Set status bits; only ever added (a joined inspection's previous code is revoked as
-- superseded), so the row count of a list and purpose counts its changes.
CREATE TABLE status_bits (
    list_no    INTEGERNOT NULL,
    purpose    INTEGERNOT NULL,
    list_index INTEGERNOT NULL,
    set_at     INTEGERNOT NULL,
    PRIMARY KEY (list_no, purpose, list_index)
);
