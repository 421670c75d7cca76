-- How far the notifications process manager has decided emails (projections/notifications.py).
-- Not among its read-model tables: a rebuild keeps it, and decides no email for an event at
-- or below it, since that event's emails were queued when it was first applied (and may have
-- been purged from the outbox since; dedupe keys alone would queue those again).
CREATE TABLE notif_enqueued (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    through   bigint  NOT NULL
);
INSERT INTO notif_enqueued (through)
SELECT coalesce((SELECT position FROM projection_checkpoints WHERE name = 'notifications'), 0);
