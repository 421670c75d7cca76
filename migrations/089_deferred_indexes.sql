-- Query indexes of read models that a rebuild dropped, to build each once its table is
-- full (midas/indexes.py). A row is written in the transaction that drops its index, and
-- deleted in the one that builds it: a rebuild cut short leaves the rest on record, and
-- the projection's next leader (or the next rebuild) builds them.
CREATE TABLE deferred_indexes (
    name       text PRIMARY KEY,  -- the index's name in this schema
    projection text NOT NULL,
    definition text NOT NULL      -- pg_get_indexdef: the CREATE INDEX statement
);
