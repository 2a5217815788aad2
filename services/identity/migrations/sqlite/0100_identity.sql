-- The identity service's own tables (database per service).

CREATE TABLE clients (
    client_id               TEXT    PRIMARY KEY,
    kind                    TEXT    NOT NULL,
    display_name            TEXT    NOT NULL,
    scopes                  TEXT    NOT NULL,
    organization            TEXT    NOT NULL DEFAULT '',
    public_key              BLOB,
    secret_hash             BLOB,
    enforcement_certificate TEXT    NOT NULL DEFAULT '',
    disabled                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at              INTEGER NOT NULL
);

-- Client assertion ids already used, so an intercepted assertion cannot be replayed.
CREATE TABLE used_assertions (
    jti        TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_assertions_expiry ON used_assertions (expires_at);

CREATE TABLE issuer_keys (
    kid           TEXT    PRIMARY KEY,
    issuer        TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    public_key    BLOB    NOT NULL,
    kinds         TEXT    NOT NULL,
    not_before    INTEGER NOT NULL,
    not_after     INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    retired_at    INTEGER NOT NULL DEFAULT 0,
    registered_at INTEGER NOT NULL
);
CREATE INDEX issuer_keys_issuer ON issuer_keys (issuer, status);

-- One row: the trust list's sequence, bumped in the same transaction as any key change.
CREATE TABLE trust_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    sequence INTEGER NOT NULL
);
INSERT INTO trust_state (id, sequence) VALUES (1, 1);

CREATE TABLE partner_anchors (
    region     TEXT    PRIMARY KEY,
    kid        TEXT    NOT NULL,
    public_key BLOB    NOT NULL,
    endpoint   TEXT    NOT NULL,
    pinned_at  INTEGER NOT NULL
);

CREATE TABLE partner_trust_lists (
    region      TEXT    PRIMARY KEY,
    envelope    BLOB    NOT NULL,
    sequence    INTEGER NOT NULL,
    imported_at INTEGER NOT NULL
);
