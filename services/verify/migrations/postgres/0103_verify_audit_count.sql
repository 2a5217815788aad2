-- Identical verifications (the same partner, credential, kind, outcome, reason and
-- issuer, in the same second) written in one batch are one row with their number: a
-- partner re-checking the same license in a loop no longer writes a row per call, and
-- nothing is lost, since such rows could not be told apart. Older rows stand for one.
ALTER TABLE verify_audit ADD COLUMN verifications BIGINT NOT NULL DEFAULT 1;
