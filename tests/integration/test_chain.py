"""Tamper evidence: the hash chain over the log."""

from __future__ import annotations

from uuid import uuid4

from midas.eventstore import Database, EventStore, NewEvent, StreamAppend
from midas.eventstore.chain import verify_chain


async def history(store: EventStore, events: int = 12) -> None:
    for n in range(events):
        await store.append([StreamAppend(uuid4(), 0, [NewEvent("Ledger.Entry", {
            "n": n, "amount": 100 * n, "memo": "café ☕", "nested": {"b": [1, 2], "a": None}})])],
            {"actor": "tester"})


async def test_an_untouched_log_verifies(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        report = await verify_chain(conn, page=5)
        ranged = await verify_chain(conn, 4, 9)
    assert report.ok and report.checked == 12 and report.head_position == 12
    assert ranged.ok and ranged.checked == 6


async def test_altered_data_is_reported_at_its_position(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE events SET data = jsonb_set(data, '{amount}', '1') WHERE position = 7"
        )
        report = await verify_chain(conn)
    assert not report.ok
    assert report.first_broken_position == 7 and report.checked == 6


async def test_altered_metadata_or_type_is_reported(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        await conn.execute("UPDATE events SET metadata = '{\"actor\": \"mallory\"}'"
                           " WHERE position = 3")
        assert (await verify_chain(conn)).first_broken_position == 3
        await conn.execute("UPDATE events SET metadata = '{\"actor\": \"tester\"}',"
                           " type = 'Ledger.Void' WHERE position = 3")
        assert (await verify_chain(conn)).first_broken_position == 3


async def test_deleted_event_is_reported(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM events WHERE position = 5")
        report = await verify_chain(conn)
    assert report.first_broken_position == 5 and report.reason == "event is missing"


async def test_swapped_order_is_reported(db: Database, store: EventStore) -> None:
    await history(store)
    async with db.acquire() as conn:
        async with conn.transaction():
            await conn.execute("UPDATE events SET position = -1 WHERE position = 4")
            await conn.execute("UPDATE events SET position = 4 WHERE position = 5")
            await conn.execute("UPDATE events SET position = 5 WHERE position = -1")
        report = await verify_chain(conn)
    assert report.first_broken_position == 4
