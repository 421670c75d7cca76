-- Instalment timers are now stored at the time they run (the due date shifted by the
-- schedule's recorded collection terms, projections/due_tasks.py) instead of at the due
-- date with the shift applied by the scheduler. Timers made before are moved by the
-- defaults they were run with (a reminder 7 days before, the alert 72 hours and the
-- default 5 days after); a timer already retried holds its retry time and stays.
UPDATE due_tasks SET due_at = due_at - interval '7 days'
 WHERE kind = 'instalment_remind' AND attempts = 0;
UPDATE due_tasks SET due_at = due_at + interval '72 hours'
 WHERE kind = 'instalment_overdue' AND attempts = 0;
UPDATE due_tasks SET due_at = due_at + interval '5 days'
 WHERE kind = 'instalment_default' AND attempts = 0;
