-- The event log: one row per event, global gap-free position, hash-chained.
CREATE TABLE events (
    position    bigint      NOT NULL,
    stream_id   uuid        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    metadata    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL,
    hash        bytea       NOT NULL,
    PRIMARY KEY (stream_id, version),
    CONSTRAINT events_position_key UNIQUE (position)
);
CREATE INDEX events_type_position ON events (type, position);

-- Snapshots are a cache: losing one only costs a longer replay.
CREATE TABLE snapshots (
    stream_id uuid        PRIMARY KEY,
    version   integer     NOT NULL,
    topic     text        NOT NULL,
    state     bytea       NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per projection: how far into the log its read model is.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
