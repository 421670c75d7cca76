-- The due_tasks projection reads and removes a booking's timers by booking (a batch reads
-- the timers of all its bookings at once; a deposit's end removes its hold timers).
CREATE INDEX due_tasks_aggregate ON due_tasks (aggregate_id);
