-- Issue 7: customer profiles, loyalty process state, KPIs.

-- Profiles projection (projections/profiles.py). Names and emails are not copied here:
-- queries join acc_accounts, so personal data stays in one read model.
CREATE TABLE cust_profiles (
    customer_id      uuid        PRIMARY KEY,
    status           text        NOT NULL DEFAULT 'active',
    registered_at    timestamptz,
    tier             text        NOT NULL DEFAULT 'standard',
    tier_reason      text,
    points           bigint      NOT NULL DEFAULT 0,
    bookings         integer     NOT NULL DEFAULT 0,  -- holds made
    confirmed        integer     NOT NULL DEFAULT 0,  -- ever confirmed
    completed        integer     NOT NULL DEFAULT 0,
    cancelled        integer     NOT NULL DEFAULT 0,
    expired          integer     NOT NULL DEFAULT 0,
    first_booking_at timestamptz,  -- creation time of the first confirmed booking
    last_booking_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cust_profiles_tier ON cust_profiles (tier);

CREATE TABLE cust_bookings (
    booking_id  uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL,
    item_id     uuid        NOT NULL,
    category    text        NOT NULL,
    location    text        NOT NULL,
    currency    text        NOT NULL,
    total_due   bigint      NOT NULL,
    status      text        NOT NULL,
    held_at     timestamptz NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    paid        bigint      NOT NULL DEFAULT 0,
    refunded    bigint      NOT NULL DEFAULT 0
);
CREATE INDEX cust_bookings_customer ON cust_bookings (customer_id, held_at);

CREATE TABLE cust_spend (
    customer_id uuid   NOT NULL,
    currency    text   NOT NULL,
    paid        bigint NOT NULL DEFAULT 0,
    refunded    bigint NOT NULL DEFAULT 0,
    bookings    integer NOT NULL DEFAULT 0,  -- confirmed bookings in this currency
    PRIMARY KEY (customer_id, currency)
);
CREATE INDEX cust_spend_net ON cust_spend (currency, (paid - refunded));

CREATE TABLE cust_favourites (
    customer_id uuid    NOT NULL,
    kind        text    NOT NULL,  -- category | location
    value       text    NOT NULL,
    n           integer NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, kind, value)
);

CREATE TABLE cust_points (
    position    bigint      PRIMARY KEY,
    customer_id uuid        NOT NULL,
    booking_id  uuid,
    kind        text        NOT NULL,  -- awarded | revoked
    points      bigint      NOT NULL,  -- signed
    balance     bigint      NOT NULL,
    multiplier  text,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX cust_points_customer ON cust_points (customer_id, position);

CREATE TABLE cust_notes (
    note_id     uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL,
    author_id   uuid,
    text        text        NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX cust_notes_customer ON cust_notes (customer_id, recorded_at);

-- Loyalty process manager state (projections/loyalty.py).
CREATE TABLE loy_bookings (
    booking_id  uuid    PRIMARY KEY,
    customer_id uuid    NOT NULL,
    currency    text    NOT NULL,
    base        bigint  NOT NULL,  -- rental + insurance, minor units
    paid        bigint  NOT NULL DEFAULT 0,
    refunded    bigint  NOT NULL DEFAULT 0,
    completed   boolean NOT NULL DEFAULT false
);
CREATE TABLE loy_spend (
    customer_id uuid   NOT NULL,
    currency    text   NOT NULL,
    paid        bigint NOT NULL DEFAULT 0,
    refunded    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, currency)
);

-- KPI projection (projections/kpis.py).
CREATE TABLE kpi_bookings (
    booking_id   uuid        PRIMARY KEY,
    customer_id  uuid        NOT NULL,
    item_id      uuid        NOT NULL,
    category     text        NOT NULL,
    location     text        NOT NULL,
    time_zone    text        NOT NULL,
    currency     text        NOT NULL,
    total_due    bigint      NOT NULL,
    status       text        NOT NULL,
    held_at      timestamptz NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    amount_paid  bigint      NOT NULL DEFAULT 0,
    paid         bigint      NOT NULL DEFAULT 0,
    refunded     bigint      NOT NULL DEFAULT 0
);
CREATE INDEX kpi_bookings_start ON kpi_bookings (starts_at);
CREATE INDEX kpi_bookings_status ON kpi_bookings (status, starts_at);
CREATE INDEX kpi_bookings_item ON kpi_bookings (item_id, starts_at);

CREATE TABLE kpi_daily (
    day             date   NOT NULL,  -- in the booking location's time zone
    currency        text   NOT NULL,
    category        text   NOT NULL,
    location        text   NOT NULL,
    item_id         uuid   NOT NULL,
    gross           bigint NOT NULL DEFAULT 0,
    refunds         bigint NOT NULL DEFAULT 0,
    held            integer NOT NULL DEFAULT 0,
    confirmed       integer NOT NULL DEFAULT 0,
    confirmed_value bigint NOT NULL DEFAULT 0,
    cancelled       integer NOT NULL DEFAULT 0,
    expired         integer NOT NULL DEFAULT 0,
    completed       integer NOT NULL DEFAULT 0,
    disputes        integer NOT NULL DEFAULT 0,
    disputed_amount bigint NOT NULL DEFAULT 0,
    disputes_lost   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency, category, location, item_id)
);

-- The same counters per day and currency only: what the dashboard reads.
CREATE TABLE kpi_daily_totals (
    day             date   NOT NULL,
    currency        text   NOT NULL,
    gross           bigint NOT NULL DEFAULT 0,
    refunds         bigint NOT NULL DEFAULT 0,
    held            integer NOT NULL DEFAULT 0,
    confirmed       integer NOT NULL DEFAULT 0,
    confirmed_value bigint NOT NULL DEFAULT 0,
    cancelled       integer NOT NULL DEFAULT 0,
    expired         integer NOT NULL DEFAULT 0,
    completed       integer NOT NULL DEFAULT 0,
    disputes        integer NOT NULL DEFAULT 0,
    disputed_amount bigint NOT NULL DEFAULT 0,
    disputes_lost   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);
