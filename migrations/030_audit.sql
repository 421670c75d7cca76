-- Audit queries (issue 8): a booking's timeline joins the log by correlation id, and the
-- event log API filters by actor; both follow position order.
CREATE INDEX events_correlation ON events ((metadata->>'correlation_id'), position);
CREATE INDEX events_actor ON events ((metadata->>'actor'), position);
