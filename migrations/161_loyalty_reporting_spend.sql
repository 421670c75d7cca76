-- The loyalty process's lifetime net spend in the reporting currency: every payment and
-- refund converted at the rate recorded with its payment (projections/loyalty.py).
CREATE TABLE loy_reporting_spend (
    customer_id uuid   NOT NULL,
    currency    text   NOT NULL,
    paid        bigint NOT NULL DEFAULT 0,
    refunded    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, currency)
);
