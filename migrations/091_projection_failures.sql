-- A projection that fails on an event: where, why (scrubbed), how often, and when the
-- runner tries again (exponential back-off). One row per failing projection, deleted
-- once it gets past the event; `midas projections status` and /ready show it.
CREATE TABLE projection_failures (
    name            text        PRIMARY KEY,
    position        bigint      NOT NULL,  -- the event it fails on
    error           text        NOT NULL,  -- the exception's type and scrubbed message
    attempts        integer     NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    next_retry_at   timestamptz NOT NULL DEFAULT now()
);
