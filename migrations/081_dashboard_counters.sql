-- Issue 7, dashboard latency: what the dashboard's live figures read.

-- Bookings currently in each status, kept by the KPI projection (projections/kpis.py) in
-- the same statements that move kpi_bookings rows: active rentals and pending holds are
-- one row each instead of a count over kpi_bookings. Seeded from the rows already there.
CREATE TABLE kpi_live_counts (
    status   text   PRIMARY KEY,
    bookings bigint NOT NULL DEFAULT 0
);
INSERT INTO kpi_live_counts (status, bookings)
SELECT status, count(*) FROM kpi_bookings GROUP BY status;

-- Items occupied now: bookings on the books that have not ended yet. The range on ends_at
-- stays small (the present and future), whereas starts_at <= now covers all history.
CREATE INDEX kpi_bookings_on_books_until ON kpi_bookings (ends_at) INCLUDE (starts_at, item_id)
    WHERE status IN ('confirmed', 'active');

-- Deposits held and open disputes: only the few balances in those states, not all of them.
CREATE INDEX pay_balances_deposits_held ON pay_balances (currency) INCLUDE (deposit_amount)
    WHERE deposit_state = 'authorised';
CREATE INDEX pay_balances_open_disputes ON pay_balances (booking_id)
    WHERE dispute_status = 'open';
