-- Google Calendar push (issue 9, optional per item).
CREATE TABLE cal_google_targets (
    item_id        uuid        PRIMARY KEY,
    calendar_id    text        NOT NULL,
    sync_token     text,
    next_sync_at   timestamptz NOT NULL,
    last_synced_at timestamptz,
    last_error     text
);
CREATE INDEX cal_google_targets_due ON cal_google_targets (next_sync_at);

-- Our bookings as pushed to Google: the SEQUENCE last pushed per calendar entry.
CREATE TABLE cal_google_events (
    item_id         uuid    NOT NULL,
    entry_id        text    NOT NULL,
    google_event_id text    NOT NULL,
    sequence        integer NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (item_id, entry_id)
);

-- Events made in the Google calendar itself (not ours), kept by incremental sync; the
-- opaque ones become the item's external blocks.
CREATE TABLE cal_google_remote (
    item_id   uuid        NOT NULL,
    event_id  text        NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL,
    opaque    boolean     NOT NULL,
    summary   text        NOT NULL DEFAULT '',
    PRIMARY KEY (item_id, event_id)
);
