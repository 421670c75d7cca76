-- Calendar sync (issue 9).

-- Read model of the calendar projection: one entry per booking, buffer, maintenance
-- window and external block, with its iCalendar SEQUENCE (raised on every change).
CREATE TABLE cal_entries (
    entry_id      text        PRIMARY KEY,  -- booking-<id> | buffer-<id> | maintenance-<id> | block-<id>
    item_id       uuid,
    kind          text        NOT NULL,     -- booking | buffer | maintenance | external_block
    booking_id    uuid,
    customer_id   uuid,
    concierge_id  uuid,
    status        text        NOT NULL,     -- held | confirmed | active | completed | cancelled | expired | busy | removed
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    note          text        NOT NULL DEFAULT '',
    sequence      integer     NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX cal_entries_item ON cal_entries (item_id, ends_at);
CREATE INDEX cal_entries_customer ON cal_entries (customer_id, ends_at);
CREATE INDEX cal_entries_concierge ON cal_entries (concierge_id, ends_at);

-- Secret feed tokens, hashed (sha256); one per owner; rotating replaces the hash.
CREATE TABLE cal_feed_tokens (
    owner_kind  text        NOT NULL,  -- item | customer | concierge
    owner_id    uuid        NOT NULL,
    token_hash  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_kind, owner_id)
);

-- External calendars an item subscribes to (url NULL: the item's uploaded .ics).
CREATE TABLE cal_subscriptions (
    id             uuid        PRIMARY KEY,
    item_id        uuid        NOT NULL,
    name           text        NOT NULL,
    url            text,
    poll_interval_s integer    NOT NULL,
    next_poll_at   timestamptz NOT NULL,
    etag           text,
    last_modified  text,
    last_polled_at timestamptz,
    last_synced_at timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cal_subscriptions_due ON cal_subscriptions (next_poll_at);
CREATE INDEX cal_subscriptions_item ON cal_subscriptions (item_id);

-- What each subscription produced last time (the diff base). Written in the same
-- transaction as the item's Blocked/Unblocked events. state: active | refused.
CREATE TABLE cal_sub_blocks (
    subscription_id uuid        NOT NULL,
    block_id        uuid        NOT NULL,
    uid             text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    state           text        NOT NULL,
    PRIMARY KEY (subscription_id, block_id)
);

-- Imported blocks the item refused (they overlap a booking or another occupation).
CREATE TABLE cal_conflicts (
    id              bigserial   PRIMARY KEY,
    item_id         uuid        NOT NULL,
    subscription_id uuid        NOT NULL,
    block_id        uuid        NOT NULL,
    uid             text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    summary         text        NOT NULL DEFAULT '',
    conflicts       jsonb       NOT NULL,
    detected_at     timestamptz NOT NULL,
    resolved_at     timestamptz,
    UNIQUE (subscription_id, block_id, starts_at, ends_at)
);
CREATE INDEX cal_conflicts_item ON cal_conflicts (item_id, detected_at);

-- Failed fetches/parses of external calendars (the blocks stay as they were).
CREATE TABLE cal_integration_errors (
    id              bigserial   PRIMARY KEY,
    subscription_id uuid        NOT NULL,
    item_id         uuid        NOT NULL,
    kind            text        NOT NULL,  -- timeout | too_large | http | malformed | network
    message         text        NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX cal_integration_errors_sub ON cal_integration_errors (subscription_id, occurred_at);
