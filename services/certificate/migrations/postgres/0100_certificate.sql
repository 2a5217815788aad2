-- The certificate service's schema: certificate types, certificates and their signed
-- versions, status bits, and data disputes.

CREATE TABLE cert_types (
    type_code       TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    department      TEXT    NOT NULL,
    department_name TEXT    NOT NULL,
    fields_json     TEXT    NOT NULL,
    validity_days   BIGINT  NOT NULL,
    bundles         TEXT    NOT NULL DEFAULT '',
    industry        TEXT    NOT NULL DEFAULT '',
    updated_at      BIGINT  NOT NULL
);

-- Counters: certificate serials and dispute numbers.
CREATE TABLE counters (
    name TEXT   PRIMARY KEY,
    next BIGINT NOT NULL
);

CREATE TABLE certificates (
    serial          TEXT    PRIMARY KEY,
    holder          TEXT    NOT NULL,
    holder_name     TEXT    NOT NULL,
    type_code       TEXT    NOT NULL REFERENCES cert_types (type_code),
    department      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    state_reason    TEXT    NOT NULL DEFAULT '',
    current_version BIGINT  NOT NULL,
    certificate_id  TEXT    NOT NULL,
    commitment_json TEXT    NOT NULL DEFAULT '',
    follow_up       TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX certificates_holder ON certificates (holder, serial);

CREATE TABLE certificate_versions (
    serial         TEXT     NOT NULL REFERENCES certificates (serial),
    version        BIGINT   NOT NULL,
    certificate_id TEXT     NOT NULL UNIQUE,
    is_current     BOOLEAN  NOT NULL,
    fields_json    TEXT     NOT NULL,
    valid_from     TEXT     NOT NULL,
    valid_until    TEXT     NOT NULL,
    not_before     BIGINT   NOT NULL,
    not_after      BIGINT   NOT NULL,
    list_no        BIGINT   NOT NULL,
    list_index     BIGINT   NOT NULL,
    kid            TEXT     NOT NULL,
    envelope       BYTEA    NOT NULL,
    vc_jwt         TEXT     NOT NULL,
    issued_at      BIGINT   NOT NULL,
    issued_by      TEXT     NOT NULL,
    superseded_at  BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (serial, version),
    UNIQUE (list_no, list_index)
);
-- Exactly one current version per certificate, whatever the code does.
CREATE UNIQUE INDEX certificate_versions_one_current ON certificate_versions (serial) WHERE is_current;

CREATE TABLE status_allocator (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_index BIGINT  NOT NULL
);
INSERT INTO status_allocator (id, next_index) VALUES (1, 0);

-- Set status bits. Suspension bits are deleted on reinstatement, so lists are
-- re-signed from the rows, never from a counter.
CREATE TABLE status_bits (
    list_no    BIGINT NOT NULL,
    purpose    BIGINT NOT NULL,
    list_index BIGINT NOT NULL,
    set_at     BIGINT NOT NULL,
    PRIMARY KEY (list_no, purpose, list_index)
);

CREATE TABLE disputes (
    id                TEXT   PRIMARY KEY,
    serial            TEXT   NOT NULL REFERENCES certificates (serial),
    version           BIGINT NOT NULL,
    holder            TEXT   NOT NULL,
    department        TEXT   NOT NULL,
    fields_json       TEXT   NOT NULL,
    evidence_json     TEXT   NOT NULL,
    explanation       TEXT   NOT NULL,
    state             TEXT   NOT NULL,
    filed_by          TEXT   NOT NULL,
    filed_at          BIGINT NOT NULL,
    accept_by         BIGINT NOT NULL,
    accepted_at       BIGINT NOT NULL DEFAULT 0,
    resolve_by        BIGINT NOT NULL DEFAULT 0,
    resolved_at       BIGINT NOT NULL DEFAULT 0,
    resolution        TEXT   NOT NULL DEFAULT '',
    corrected_version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX disputes_serial ON disputes (serial, state);
CREATE INDEX disputes_department ON disputes (department, id);
CREATE INDEX disputes_holder ON disputes (holder, id);
