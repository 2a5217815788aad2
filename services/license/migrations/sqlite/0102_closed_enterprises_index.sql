-- Enterprises are listed by state through an index of the closed (deregistered or
-- revoked) ones only. The index of every enterprise by state was written by every
-- establishment, yet no list query could use it (its filter was written as
-- `($2 = '' OR state = $2)`); active enterprises, nearly the whole register, are
-- walked in code order. The list query repeats this predicate so both planners use it.
DROP INDEX enterprises_state;
CREATE INDEX enterprises_closed ON enterprises (state, uscc) WHERE state <> 'active';
