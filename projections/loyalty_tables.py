"""The tables of the loyalty process manager's state (`process_managers.loyalty` writes
them in its batches' transactions), named here beside the read models, for the customer
queries that read them."""

BOOKINGS_TABLE, SPEND_TABLE = "loy_bookings", "loy_spend"
REPORTING_SPEND_TABLE = "loy_reporting_spend"
