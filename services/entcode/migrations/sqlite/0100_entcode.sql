-- The enterprise-code service's schema: scenarios and every version of them.
-- Enterprise codes are deterministic and used presentation nonces live in the cache,
-- so scenarios are all this service stores.

-- One row a scenario, pointing at its current version.
CREATE TABLE scenarios (
    name            TEXT    PRIMARY KEY,
    current_version BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

-- Every version, immutable once written: presentations name the version they were
-- made under. Each row says who made it, when, why and what changed (`diff_json`).
CREATE TABLE scenario_versions (
    name            TEXT    NOT NULL REFERENCES scenarios (name),
    version         BIGINT  NOT NULL,
    description     TEXT    NOT NULL,
    fields_json     TEXT    NOT NULL,
    retired         BOOLEAN NOT NULL,
    reason          TEXT    NOT NULL,
    changed_by      TEXT    NOT NULL,
    changed_by_kind TEXT    NOT NULL,
    changed_at      BIGINT  NOT NULL,
    diff_json       TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TRIGGER scenario_versions_immutable_update BEFORE UPDATE ON scenario_versions
BEGIN
    SELECT RAISE(ABORT, 'scenario versions are immutable');
END;

CREATE TRIGGER scenario_versions_immutable_delete BEFORE DELETE ON scenario_versions
BEGIN
    SELECT RAISE(ABORT, 'scenario versions are immutable');
END;
