-- One current version per enterprise, guarded on SQLite by triggers instead of the
-- partial unique index `license_versions_one_current`.
--
-- SQLite runs one writer at a time, so a check inside the writing statement sees every
-- version of the enterprise, committed or not: the triggers refuse a second current
-- version as the index did, by reading the enterprise's few versions through the
-- primary key, where the index wrote an entry on every establishment and two on every
-- amendment (about one page of the fourteen an establishment wrote; `make bench`,
-- license). PostgreSQL keeps its index, where writers run side by side.
--
-- The message names the rule as a unique violation would; nothing but a bug can hit it
-- (an amendment clears the old flag before it writes the new version).
DROP INDEX license_versions_one_current;

CREATE TRIGGER license_versions_one_current BEFORE INSERT ON license_versions
WHEN NEW.is_current
BEGIN
    SELECT RAISE(ABORT, 'UNIQUE constraint failed: license_versions.uscc (one current version)')
    WHERE EXISTS (SELECT 1 FROM license_versions WHERE uscc = NEW.uscc AND is_current);
END;

CREATE TRIGGER license_versions_one_current_again BEFORE UPDATE OF is_current ON license_versions
WHEN NEW.is_current AND NOT OLD.is_current
BEGIN
    SELECT RAISE(ABORT, 'UNIQUE constraint failed: license_versions.uscc (one current version)')
    WHERE EXISTS (SELECT 1 FROM license_versions WHERE uscc = NEW.uscc AND is_current);
END;
