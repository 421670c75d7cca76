-- Read model of the availability projection: what keeps each item busy.
CREATE TABLE avail_occupations (
    item_id       uuid        NOT NULL,
    occupation_id text        NOT NULL,
    kind          text        NOT NULL,  -- booking | maintenance
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,  -- a booking's buffer included
    note          text        NOT NULL DEFAULT '',
    PRIMARY KEY (item_id, occupation_id)
);
CREATE INDEX avail_occupations_span ON avail_occupations (item_id, starts_at, ends_at);

-- Read model of the bookings projection.
CREATE TABLE bk_bookings (
    id                uuid        PRIMARY KEY,
    item_id           uuid        NOT NULL,
    customer_id       uuid        NOT NULL,
    status            text        NOT NULL,
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    service_level     text        NOT NULL,
    delivered_level   text        NOT NULL,
    category          text        NOT NULL,
    location          text        NOT NULL,
    currency          text        NOT NULL,
    total_due         bigint      NOT NULL,
    security_deposit  bigint      NOT NULL,
    amount_paid       bigint      NOT NULL DEFAULT 0,
    refund_percentage text,
    refund_amount     bigint,
    cancel_reason     text,
    concierge_id      uuid,
    quote             jsonb       NOT NULL,
    held_at           timestamptz NOT NULL,
    hold_expires_at   timestamptz NOT NULL,
    version           integer     NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX bk_bookings_customer ON bk_bookings (customer_id, starts_at);
CREATE INDEX bk_bookings_item ON bk_bookings (item_id, starts_at);
CREATE INDEX bk_bookings_status ON bk_bookings (status, starts_at);
