"""Tamper evidence: the hash chain names the first broken position; signed checkpoints."""

from __future__ import annotations

from uuid import uuid4

import pytest

from midas.audit.checkpoint import InvalidCheckpoint, check_checkpoint, make_checkpoint
from midas.eventstore import Database, EventStore, NewEvent, StreamAppend
from midas.eventstore.chain import verify_chain

KEY = b"audit-test-key"


async def history(store: EventStore, events: int = 12) -> None:
    streams = [uuid4() for _ in range(3)]
    for n in range(events):
        stream = streams[n % 3]
        await store.append([StreamAppend(stream, n // 3, [NewEvent("Thing.Happened", {"n": n})])],
                           {"actor": "someone"})


async def test_an_untouched_log_verifies(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        report = await verify_chain(conn)
        assert report.ok and report.checked == 12 and report.head_position == 12
        ranged = await verify_chain(conn, 4, 9)
        assert ranged.ok and ranged.checked == 6 and ranged.head_position == 9


@pytest.mark.parametrize(("tamper", "broken", "reason"), [
    ("UPDATE events SET data = '{\"n\": 99}' WHERE position = 5", 5, "hash does not match"),
    ("UPDATE events SET metadata = metadata || '{\"actor\": \"x\"}' WHERE position = 7", 7,
     "hash does not match"),
    ("DELETE FROM events WHERE position = 6", 6, "missing"),
    # order: events 3 and 4 swap places in the log
    ("UPDATE events SET position = -position WHERE position IN (3, 4);"
     " UPDATE events SET position = CASE position WHEN -3 THEN 4 ELSE 3 END"
     " WHERE position < 0", 3, "hash does not match"),
])
async def test_tampering_names_the_first_broken_position(
    db: Database, store: EventStore, tamper: str, broken: int, reason: str
) -> None:
    await history(store)
    async with db.acquire() as conn:
        await conn.execute(tamper)
        report = await verify_chain(conn)
        assert (report.first_broken_position, report.ok) == (broken, False)
        assert reason in report.reason
        assert report.checked == broken - 1
        # a range before the damage still verifies
        assert (await verify_chain(conn, 1, broken - 1)).ok


async def test_a_signed_checkpoint_proves_the_log_was_not_rewritten(
    db: Database, store: EventStore
) -> None:
    await history(store)
    async with db.acquire() as conn:
        checkpoint = await make_checkpoint(conn, KEY)
        assert checkpoint["position"] == 12 and len(checkpoint["signature"]) == 64
        await history(store, 3)  # appending after the checkpoint is fine
        assert (await check_checkpoint(conn, checkpoint, KEY))["valid"] is True

        forged = {**checkpoint, "position": 11}
        verdict = await check_checkpoint(conn, forged, KEY)
        assert verdict["valid"] is False and verdict["signature_valid"] is False
        wrong_key = await check_checkpoint(conn, checkpoint, b"other")
        assert wrong_key["signature_valid"] is False

        await conn.execute("UPDATE events SET data = '{\"n\": -1}' WHERE position = 2")
        verdict = await check_checkpoint(conn, checkpoint, KEY)
        assert verdict["valid"] is False and verdict["signature_valid"] is True
        assert verdict["first_broken_position"] == 2

        with pytest.raises(InvalidCheckpoint):
            await check_checkpoint(conn, {"position": 1}, KEY)


async def test_a_rewritten_chain_with_recomputed_hashes_fails_the_checkpoint(
    db: Database, store: EventStore
) -> None:
    """An attacker who rewrites an event and recomputes every later hash keeps the chain
    consistent, but not the head hash the signed checkpoint recorded."""
    from midas.eventstore import codec

    await history(store)
    async with db.acquire() as conn:
        checkpoint = await make_checkpoint(conn, KEY)
        await conn.execute("UPDATE events SET data = '{\"n\": 1000}' WHERE position = 3")
        previous = bytes(await conn.fetchval("SELECT hash FROM events WHERE position = 2"))
        for row in await conn.fetch("SELECT * FROM events WHERE position >= 3 ORDER BY position"):
            previous = codec.event_hash(
                previous, row["position"], row["stream_id"], row["version"], row["type"],
                codec.canonical(codec.decode(row["data"])),
                codec.canonical(codec.decode(row["metadata"])), row["recorded_at"])
            await conn.execute("UPDATE events SET hash = $1 WHERE position = $2", previous,
                               row["position"])
        assert (await verify_chain(conn)).ok  # self-consistent...
        verdict = await check_checkpoint(conn, checkpoint, KEY)
        assert verdict["valid"] is False and "rewritten" in verdict["reason"]  # ...but caught
