-- Indexes of the staff's reads over the whole fleet (the console's Today page), each one
-- a short index-only range whatever the log's length.

-- Utilisation over a period: the bookings ending after its start (the period and the
-- future), not every booking that started before its end.
CREATE INDEX kpi_bookings_span ON kpi_bookings (ends_at)
    INCLUDE (starts_at, item_id, status, category);

-- Revenue on the books (the financial report's forecast): bookings starting in a window,
-- with what the sum needs.
CREATE INDEX kpi_bookings_on_the_books ON kpi_bookings (starts_at)
    INCLUDE (confirmed_at, cancelled_at, currency, amount_paid)
    WHERE confirmed_at IS NOT NULL;

-- The open bookings (on hold or confirmed): balances due, VVIP bookings without a
-- concierge, deposits to authorise.
CREATE INDEX bk_bookings_open ON bk_bookings (status, starts_at)
    INCLUDE (currency, total_due, amount_paid, security_deposit, delivered_level, concierge_id)
    WHERE status IN ('held', 'confirmed');
