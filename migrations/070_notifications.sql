-- Email outbox (issue 6). Rows are written by the notifications process manager in the
-- transaction that moves its checkpoint, so an email is never lost; dedupe_key is unique,
-- so a replay or a retry never queues one cause twice. Delivery workers claim rows with
-- FOR UPDATE SKIP LOCKED and mark them sent in the same transaction.
CREATE TABLE notif_outbox (
    id              bigserial   PRIMARY KEY,
    dedupe_key      text        NOT NULL UNIQUE,
    template        text        NOT NULL,
    recipient       text        NOT NULL,  -- an address, or '@ops' / '@legal' (from settings)
    account_id      uuid,
    context         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',  -- pending, sent, bounced, dead
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    provider        text,
    last_error      text,
    tracking_id     uuid        NOT NULL,
    opened_at       timestamptz,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notif_outbox_due ON notif_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notif_outbox_status ON notif_outbox (status, id);
CREATE UNIQUE INDEX notif_outbox_tracking ON notif_outbox (tracking_id);

-- What the process manager remembers of a booking (its own copy: other read models may lag).
CREATE TABLE notif_bookings (
    booking_id      uuid        PRIMARY KEY,
    customer_id     uuid        NOT NULL,
    context         jsonb       NOT NULL
);

-- Reminder timers (24 h before the start), fired by the delivery workers into the outbox.
CREATE TABLE notif_timers (
    id              text        PRIMARY KEY,
    booking_id      uuid        NOT NULL,
    due_at          timestamptz NOT NULL
);
CREATE INDEX notif_timers_due ON notif_timers (due_at);

-- Delivery analytics per provider and template.
CREATE TABLE notif_stats (
    provider        text        NOT NULL,
    template        text        NOT NULL,
    sent            integer     NOT NULL DEFAULT 0,
    failed          integer     NOT NULL DEFAULT 0,
    bounced         integer     NOT NULL DEFAULT 0,
    opened          integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, template)
);
