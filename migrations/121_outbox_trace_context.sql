-- The trace an email was decided in (W3C traceparent of the event that caused it, when the
-- service traces): its delivery continues that trace. NULL without tracing.
ALTER TABLE notif_outbox ADD COLUMN trace_context text;
