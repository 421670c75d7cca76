-- The pricing policy in force as a read model (projections/policy.py): one row, the
-- policy's plain state (locations, seasons, tax rates, duration discounts, stay rules,
-- exchange rates) and the version of its stream. Queries price and place with it.
CREATE TABLE pol_policy (
    id       smallint PRIMARY KEY CHECK (id = 1),
    version  integer  NOT NULL,
    state    jsonb    NOT NULL
);
