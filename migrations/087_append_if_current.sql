-- The event store's one-round-trip commit (midas/eventstore/store.py). The writer plans a
-- batch against the head it last committed and the versions its appenders expect; this
-- takes the writer lock and inserts the batch only if both still hold, else inserts
-- nothing and answers false (the writer then reads the state and plans again). Called as
-- one statement outside a transaction block: the lock is released with its commit.
-- Volatile, so each query below takes its snapshot after the lock is held.
CREATE FUNCTION append_events_if_current(
    lock_key bigint, expected_head bigint, expected_hash bytea,
    stream_ids uuid[], expected_versions integer[],
    positions bigint[], streams uuid[], versions integer[], types text[],
    datas jsonb[], metadatas jsonb[], recorded timestamptz[], hashes bytea[],
    channel text, announcement text
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_position bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.position, e.hash INTO head_position, head_hash
        FROM events e ORDER BY e.position DESC LIMIT 1;
    IF coalesce(head_position, 0) <> expected_head
            OR head_hash IS DISTINCT FROM expected_hash THEN
        RETURN false;
    END IF;
    IF EXISTS (
        SELECT 1 FROM unnest(stream_ids, expected_versions) AS s(id, v)
        WHERE coalesce((SELECT max(e.version) FROM events e WHERE e.stream_id = s.id), 0)
              <> s.v
    ) THEN
        RETURN false;
    END IF;
    INSERT INTO events (position, stream_id, version, type, data, metadata, recorded_at, hash)
        SELECT * FROM unnest(positions, streams, versions, types, datas, metadatas,
                             recorded, hashes);
    PERFORM pg_notify(channel, announcement);
    RETURN true;
END $$;
