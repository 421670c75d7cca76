-- The instalments of each booking's payment schedule (projections/instalments.py).
CREATE TABLE pay_instalments (
    booking_id  uuid        NOT NULL,
    number      integer     NOT NULL,
    amount      bigint      NOT NULL,
    currency    text        NOT NULL,
    due_at      timestamptz NOT NULL,
    state       text        NOT NULL,  -- planned | requested | paid | waived | split
    reference   text,
    overdue     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (booking_id, number)
);
