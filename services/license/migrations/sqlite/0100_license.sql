-- The license service's own tables (database per service).

-- The register: one row per enterprise, pointing at its one current license version.
CREATE TABLE enterprises (
    uscc            TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    current_version INTEGER NOT NULL,
    license_id      TEXT    NOT NULL,
    authority       TEXT    NOT NULL,
    license_serial  TEXT    NOT NULL,
    state_reason    TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX enterprises_authority ON enterprises (authority, uscc);
CREATE INDEX enterprises_state ON enterprises (state, uscc);

-- Every license version ever issued, with its signed forms. Exactly one row per
-- enterprise has is_current set: the partial unique index refuses a second, and an
-- amendment clears the old flag and sets the new one in one transaction.
CREATE TABLE license_versions (
    uscc                 TEXT    NOT NULL REFERENCES enterprises (uscc),
    version              INTEGER NOT NULL,
    license_id           TEXT    NOT NULL UNIQUE,
    is_current           BOOLEAN NOT NULL,
    name                 TEXT    NOT NULL,
    entity_type          TEXT    NOT NULL,
    legal_representative TEXT    NOT NULL,
    rep_id_salt          BLOB,
    rep_id_hash          BLOB,
    capital_amount       TEXT    NOT NULL,
    capital_currency     TEXT    NOT NULL,
    establishment_date   TEXT    NOT NULL,
    term_start           TEXT    NOT NULL,
    term_end             TEXT    NOT NULL DEFAULT '',
    domicile             TEXT    NOT NULL,
    business_scope       TEXT    NOT NULL,
    authority            TEXT    NOT NULL,
    issue_date           TEXT    NOT NULL,
    list_no              INTEGER NOT NULL,
    list_index           INTEGER NOT NULL,
    kid                  TEXT    NOT NULL,
    envelope             BLOB    NOT NULL,
    vc_jwt               TEXT    NOT NULL,
    issued_at            INTEGER NOT NULL,
    issued_by            TEXT    NOT NULL,
    superseded_at        INTEGER NOT NULL DEFAULT 0,
    revoked_at           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uscc, version),
    UNIQUE (list_no, list_index)
);
CREATE UNIQUE INDEX license_versions_one_current ON license_versions (uscc) WHERE is_current;

-- The next free status-list entry; list n holds entries n*131072 … n*131072+131071.
CREATE TABLE status_allocator (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_index INTEGER NOT NULL
);
INSERT INTO status_allocator (id, next_index) VALUES (1, 0);

-- License serials per registration authority (the GB/T 36904 serial field).
CREATE TABLE authority_serials (
    authority   TEXT    PRIMARY KEY,
    next_serial INTEGER NOT NULL
);

-- Set status bits. Bits are only ever added (revocation and supersession are final;
-- the service does not suspend), so the number of rows of a list and purpose counts
-- its changes.
CREATE TABLE status_bits (
    list_no    INTEGER NOT NULL,
    purpose    INTEGER NOT NULL,
    list_index INTEGER NOT NULL,
    set_at     INTEGER NOT NULL,
    PRIMARY KEY (list_no, purpose, list_index)
);
