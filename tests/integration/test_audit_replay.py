"""Time travel, verification and blue/green rebuilds of read models (shadow schemas)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from midas.audit.timetravel import aggregate_as_of
from midas.eventstore import Database, EventStore
from midas.projection import catch_up
from midas.replay import (
    MAX_REPORTED_ROWS,
    read_model_as_of,
    rebuild_blue_green,
    table_rows,
    verify,
)
from projections.availability import AvailabilityProjector
from projections.due_tasks import DueTasksProjector
from projections.inventory import InventoryProjector
from tests.conftest import history_events
from tests.integration.audit_support import inventory_history, repository


async def live_rows(db: Database, table: str) -> list[dict[str, Any]]:
    async with db.acquire() as conn:
        return await table_rows(conn, db.schema, table)


async def schemas(db: Database) -> list[str]:
    async with db.acquire() as conn:
        return [r[0] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{db.schema}%")]


async def test_a_read_model_as_of_n_equals_the_live_one_at_n(
    db: Database, store: EventStore
) -> None:
    inventory, availability = InventoryProjector(), AvailabilityProjector()
    await inventory_history(store, 3, "a")
    n = await store.head()
    await catch_up(db, inventory)
    await catch_up(db, availability)
    at_n = {"inv_items": await live_rows(db, "inv_items"),
            "avail_occupations": await live_rows(db, "avail_occupations")}
    assert len(at_n["inv_items"]) == 3 and len(at_n["avail_occupations"]) == 3

    await inventory_history(store, 2, "b")  # more history after N, projected live
    await catch_up(db, inventory)
    await catch_up(db, availability)
    assert len(await live_rows(db, "inv_items")) == 5

    assert await read_model_as_of(db, inventory, n) == {"inv_items": at_n["inv_items"]}
    assert await read_model_as_of(db, availability, n) == {
        "avail_occupations": at_n["avail_occupations"]}
    # the live read model is untouched and no shadow schema is left behind
    assert len(await live_rows(db, "inv_items")) == 5
    assert await schemas(db) == [db.schema]
    assert await read_model_as_of(db, inventory, 0) == {"inv_items": []}


async def test_an_aggregate_as_of_a_version_or_an_instant(
    db: Database, store: EventStore
) -> None:
    (item_id,) = await inventory_history(store, 1)
    async with db.acquire() as conn:
        first = await aggregate_as_of(conn, repository(store).types, item_id, version=1)
        assert first["type"] == "Item" and first["version"] == 1
        assert first["state"]["rate"] == 1_000_000 and first["state"]["id"] == str(item_id)
        latest = await aggregate_as_of(conn, repository(store).types, item_id)
        assert latest["version"] == 3 and latest["state"]["rate"] == 2_000_000
        second_at = await conn.fetchval(
            "SELECT recorded_at FROM events WHERE stream_id = $1 AND version = 2", item_id)
        then = await aggregate_as_of(conn, repository(store).types, item_id, at=second_at)
        assert then["version"] == 2 and then["state"]["rate"] == 2_000_000


async def test_verify_reports_no_difference_then_names_tampered_rows(
    db: Database, store: EventStore
) -> None:
    projector = InventoryProjector()
    ids = await inventory_history(store, 3)
    await catch_up(db, projector)
    report = await verify(db, projector)
    assert report.ok and report.position == await store.head()

    async with db.acquire() as conn:
        await conn.execute("UPDATE inv_items SET rate = 1 WHERE id = $1", ids[0])
        await conn.execute("DELETE FROM inv_items WHERE id = $1", ids[1])
        await conn.execute(
            "INSERT INTO inv_items SELECT gen_random_uuid(), name, category, location, rate,"
            " rate_unit, currency, buffer_minutes, minimum_minutes, status, attributes, version,"
            " registered_at, updated_at FROM inv_items WHERE id = $1", ids[2])
    report = await verify(db, projector)
    assert not report.ok
    (table,) = report.tables
    assert [c["key"] for c in table.changed] == [[str(ids[0])]]
    assert table.changed[0]["live"]["rate"] == 1
    assert table.changed[0]["shadow"]["rate"] == 2_000_000
    assert [r["id"] for r in table.only_shadow] == [str(ids[1])]
    assert len(table.only_live) == 1 and table.only_live[0]["name"] == "Villa a2"
    assert await schemas(db) == [db.schema]


async def test_verify_reports_the_first_rows_changed_on_both_sides_as_changed(
    db: Database, store: EventStore
) -> None:
    """More differing rows than it lists: those it lists pair up by key."""
    projector = InventoryProjector()
    await inventory_history(store, MAX_REPORTED_ROWS + 20)
    await catch_up(db, projector)
    async with db.acquire() as conn:
        await conn.execute("UPDATE inv_items SET rate = 1")
    (table,) = (await verify(db, projector)).tables
    assert len(table.changed) == MAX_REPORTED_ROWS
    assert table.only_live == [] and table.only_shadow == []
    assert {c["live"]["rate"] for c in table.changed} == {1}


async def test_verify_leaves_out_the_columns_events_do_not_write(
    db: Database, store: EventStore
) -> None:
    """due_tasks rows carry the scheduler's attempts and the clock's created_at."""
    for append in history_events(uuid4(), rental=500_00, complete=False)[1]:
        await store.append(append)
    projector = DueTasksProjector()
    await catch_up(db, projector)
    async with db.acquire() as conn:
        await conn.execute("UPDATE due_tasks SET attempts = 3, last_error = 'smtp down'")
    assert (await verify(db, projector)).ok
    async with db.acquire() as conn:
        await conn.execute("UPDATE due_tasks SET due_at = due_at + interval '1 hour'")
    assert not (await verify(db, projector)).ok


async def test_blue_green_rebuild_gives_the_same_rows_and_no_partial_table(
    db: Database, store: EventStore
) -> None:
    projector = InventoryProjector()
    await inventory_history(store, 30)
    await catch_up(db, projector)
    before = await live_rows(db, "inv_items")
    async with db.acquire() as conn:
        indexes = sorted(r[0] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'inv_items'",
            db.schema))
        await conn.execute("UPDATE inv_items SET rate = 1")  # damage the live read model

    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            async with db.acquire() as conn:
                seen.append(await conn.fetchval("SELECT count(*) FROM inv_items"))
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    position = await rebuild_blue_green(db, projector, batch=7)
    done.set()
    await task
    assert position == await store.head()
    assert await live_rows(db, "inv_items") == before
    assert len(seen) > 1 and set(seen) == {30}  # never empty, never partial
    async with db.acquire() as conn:
        assert sorted(r[0] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'inv_items'",
            db.schema)) == indexes
        assert await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = 'inventory'") == position
    assert await schemas(db) == [db.schema]
    assert (await verify(db, projector)).ok
    # the live runner's path keeps working on the swapped-in table
    await inventory_history(store, 1, "z")
    await catch_up(db, projector)
    assert len(await live_rows(db, "inv_items")) == 31


async def test_blue_green_rebuild_while_the_live_runner_and_writers_run(
    db: Database, store: EventStore
) -> None:
    """The checkpoint lock fences the running leader: nothing applied twice or lost."""
    from midas.eventstore.notifier import Notifier
    from midas.eventstore.store import EVENTS_CHANNEL
    from midas.projection import ProjectionRunner

    projector = InventoryProjector()
    await inventory_history(store, 10)
    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, [projector], notifier, batch_size=5, poll_interval_s=0.05)
    runner.start()
    try:
        writers = asyncio.gather(*(inventory_history(store, 3, f"w{n}") for n in range(4)))
        for _ in range(2):
            await rebuild_blue_green(db, projector, batch=4)
        await writers
        head = await store.head()
        for _ in range(200):
            async with db.acquire() as conn:
                if await conn.fetchval("SELECT position FROM projection_checkpoints"
                                       " WHERE name = 'inventory'") == head:
                    break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
        await notifier.stop()
    rows = await live_rows(db, "inv_items")
    assert len(rows) == 22 and {r["rate"] for r in rows} >= {2_000_000}
    assert (await verify(db, projector)).ok


async def test_the_swap_waits_briefly_for_long_readers_then_retries(
    db: Database, store: EventStore, monkeypatch: Any
) -> None:
    import midas.replay

    monkeypatch.setattr(midas.replay, "SWAP_LOCK_TIMEOUT", "100ms")
    projector = InventoryProjector()
    await inventory_history(store, 3)
    await catch_up(db, projector)
    async with db.acquire() as reader, reader.transaction():
        await reader.fetchval("SELECT count(*) FROM inv_items")  # holds ACCESS SHARE
        rebuild = asyncio.create_task(rebuild_blue_green(db, projector))
        await asyncio.sleep(0.4)
        assert not rebuild.done()
    assert await rebuild == await store.head()
    assert len(await live_rows(db, "inv_items")) == 3
    assert await schemas(db) == [db.schema]
