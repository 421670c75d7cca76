-- Disputes (chargebacks, PayPal reversals) with the payment they concern, read beside the
-- instalments that payment paid (projections/instalments.py): `charge` is the provider's
-- reference of the payment, an instalment's `reference`.
CREATE TABLE pay_disputes (
    reference   text        PRIMARY KEY,  -- the provider's dispute id (PayPal: the payment)
    booking_id  uuid        NOT NULL,
    charge      text,
    amount      bigint      NOT NULL,
    currency    text        NOT NULL,
    reason      text        NOT NULL,
    status      text        NOT NULL,  -- open | won | lost
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz
);
CREATE INDEX pay_disputes_booking ON pay_disputes (booking_id);
