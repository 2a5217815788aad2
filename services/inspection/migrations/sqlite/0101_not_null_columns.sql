-- Seven columns of the first migration lost NOT NULL on SQLite: a typo wrote their type
-- as `INTEGERNOT NULL`, which SQLite reads as the type name `INTEGERNOT` followed by a
-- NULL (nullable) constraint. PostgreSQL's schema has them NOT NULL, and the service
-- never writes a NULL into them; the four tables are rebuilt here with the constraint,
-- every row kept (a NULL, which only a bug could have written, stops the migration
-- rather than being carried over). No other table refers to these, and none has an
-- index or trigger besides its primary key.

CREATE TABLE credit_grades_rebuilt (
    uscc       TEXT    PRIMARY KEY,
    grade      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO credit_grades_rebuilt (uscc, grade, updated_at)
    SELECT uscc, grade, updated_at FROM credit_grades;
DROP TABLE credit_grades;
ALTER TABLE credit_grades_rebuilt RENAME TO credit_grades;

CREATE TABLE monitoring_list_rebuilt (
    uscc     TEXT    PRIMARY KEY,
    note     TEXT    NOT NULL,
    added_at INTEGER NOT NULL
);
INSERT INTO monitoring_list_rebuilt (uscc, note, added_at)
    SELECT uscc, note, added_at FROM monitoring_list;
DROP TABLE monitoring_list;
ALTER TABLE monitoring_list_rebuilt RENAME TO monitoring_list;

-- uscc '' means the item is not to be disturbed at any enterprise.
CREATE TABLE do_not_disturb_rebuilt (
    item     TEXT    NOT NULL,
    uscc     TEXT    NOT NULL,
    note     TEXT    NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (item, uscc)
);
INSERT INTO do_not_disturb_rebuilt (item, uscc, note, added_at)
    SELECT item, uscc, note, added_at FROM do_not_disturb;
DROP TABLE do_not_disturb;
ALTER TABLE do_not_disturb_rebuilt RENAME TO do_not_disturb;

-- Set status bits; only ever added (a joined inspection's previous code is revoked as
-- superseded), so the row count of a list and purpose counts its changes.
CREATE TABLE status_bits_rebuilt (
    list_no    INTEGER NOT NULL,
    purpose    INTEGER NOT NULL,
    list_index INTEGER NOT NULL,
    set_at     INTEGER NOT NULL,
    PRIMARY KEY (list_no, purpose, list_index)
);
INSERT INTO status_bits_rebuilt (list_no, purpose, list_index, set_at)
    SELECT list_no, purpose, list_index, set_at FROM status_bits;
DROP TABLE status_bits;
ALTER TABLE status_bits_rebuilt RENAME TO status_bits;
