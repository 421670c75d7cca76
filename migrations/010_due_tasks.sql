-- Timers built from events by the due_tasks projection; workers claim due rows with
-- FOR UPDATE SKIP LOCKED. Ids are deterministic (kind:aggregate), so a replay never doubles one.
CREATE TABLE due_tasks (
    id           text        PRIMARY KEY,
    kind         text        NOT NULL,
    aggregate_id uuid        NOT NULL,
    due_at       timestamptz NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX due_tasks_due ON due_tasks (due_at);
