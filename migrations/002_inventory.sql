-- Read model of the inventory projection.
CREATE TABLE inv_items (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL,
    category        text        NOT NULL,
    location        text        NOT NULL,
    rate            bigint      NOT NULL,
    rate_unit       text        NOT NULL,
    currency        text        NOT NULL,
    buffer_minutes  integer     NOT NULL,
    minimum_minutes integer     NOT NULL,
    status          text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    version         integer     NOT NULL,
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX inv_items_filter ON inv_items (category, location, status);
