-- Snapshots: one row per stream, rewritten in place (an upsert) every MIDAS_SNAPSHOT_EVERY
-- events of its stream. Each rewrite leaves the previous version dead, in the table and in
-- its TOAST table (a busy item's state is tens of kB): autovacuum should reclaim them after
-- a few hundred rewrites, not after a fifth of the table has died (the default scale
-- factor, far too late for a table of a few hundred rows that each take many pages).
-- Per-table storage parameters: they take effect where autovacuum runs, and change nothing
-- where it does not (the snapshot writer vacuums too, MIDAS_SNAPSHOT_VACUUM_EVERY).
ALTER TABLE snapshots SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 200,
    toast.autovacuum_vacuum_scale_factor = 0,
    toast.autovacuum_vacuum_threshold = 200
);
