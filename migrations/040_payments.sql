-- Payments (issue 5). Webhook deliveries that took effect (one row per provider event id,
-- written in the same transaction as the events), alerts about rejected notifications,
-- and the payments read model.
CREATE TABLE pay_webhook_events (
    provider    text        NOT NULL,
    event_id    text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE pay_alerts (
    id          bigserial   PRIMARY KEY,
    provider    text        NOT NULL,
    kind        text        NOT NULL,
    reference   text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pay_balances (
    booking_id       uuid        PRIMARY KEY,
    payment_id       uuid        NOT NULL,
    customer_id      uuid        NOT NULL,
    currency         text        NOT NULL,
    amount_due       bigint      NOT NULL DEFAULT 0,
    paid             bigint      NOT NULL DEFAULT 0,
    refunded         bigint      NOT NULL DEFAULT 0,
    status           text        NOT NULL,
    provider         text,
    deposit_state    text        NOT NULL DEFAULT 'none',
    deposit_amount   bigint      NOT NULL DEFAULT 0,
    deposit_captured bigint      NOT NULL DEFAULT 0,
    deposit_expires_at timestamptz,
    disputed         boolean     NOT NULL DEFAULT false,
    dispute_status   text,
    last_failure     text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pay_entries (
    position    bigint      PRIMARY KEY,
    booking_id  uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    type        text        NOT NULL,
    amount      bigint,
    currency    text,
    provider    text,
    reference   text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL
);
CREATE INDEX pay_entries_booking ON pay_entries (booking_id, position);
CREATE INDEX pay_entries_type ON pay_entries (type, position);

-- Provider ids (payment intents, deposit holds) -> booking, written with the event that
-- records them; webhooks without our metadata (disputes, charges) find their booking here.
CREATE TABLE pay_references (
    reference  text PRIMARY KEY,
    booking_id uuid NOT NULL
);
