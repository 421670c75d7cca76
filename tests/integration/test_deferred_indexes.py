"""A rebuild from empty builds read models' query indexes after their rows, and one cut
short leaves them on record for the projection's next leader."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.projections import generate_history
from midas.eventstore import Database, EventStore
from midas.eventstore.notifier import Notifier
from midas.eventstore.store import EVENTS_CHANNEL
from midas.indexes import build_deferred_indexes, defer_indexes
from midas.projection import ProjectionRunner, catch_up, reset
from midas.rebuild import catch_up_in_processes
from projections import all_projectors
from projections.due_tasks import DueTasksProjector
from projections.kpis import KpisProjector

_INDEXES_SQL = (
    "SELECT c.relname AS name, c.oid, i.indisunique AS is_unique,"
    " pg_get_indexdef(i.indexrelid) AS definition"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid"
    " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1::text[])"
)


async def _indexes(db: Database, tables: list[str]) -> dict[str, tuple[int, bool, str]]:
    async with db.acquire() as conn:
        return {r["name"]: (r["oid"], r["is_unique"], r["definition"])
                for r in await conn.fetch(_INDEXES_SQL, tables)}


def _definitions(indexes: dict[str, tuple[int, bool, str]]) -> dict[str, str]:
    return {name: definition for name, (_, _, definition) in indexes.items()}


async def _append_history(store: EventStore, bookings: int, **shape: int) -> None:
    _, appends = generate_history(bookings, per_append=50, **shape)
    for append in appends:
        await store.append(append)


async def _deferred(db: Database) -> list[str]:
    async with db.acquire() as conn:
        return [r["name"] for r in await conn.fetch(
            "SELECT name FROM deferred_indexes ORDER BY name")]


async def test_a_rebuild_from_empty_builds_query_indexes_anew_and_keeps_the_others(
    db: Database, store: EventStore
) -> None:
    await _append_history(store, 60, customers=12, items=5)
    projectors = all_projectors()
    tables = [t for p in projectors for t in p.tables]
    before = await _indexes(db, tables)

    await catch_up_in_processes(db, projectors, processes=2, batch_size=50)

    after = await _indexes(db, tables)
    assert _definitions(after) == _definitions(before)
    rebuilt = {n for n in after if after[n][0] != before[n][0]}
    kept = {"due_tasks_aggregate", "cust_notes_customer"}  # read by their projectors
    assert rebuilt == {n for n, (_, unique, _) in before.items()
                       if not unique and n not in kept}
    assert {"kpi_bookings_status", "bk_bookings_customer", "pay_entries_booking"} <= rebuilt
    assert await _deferred(db) == []


async def test_a_projection_behind_is_caught_up_with_its_indexes_in_place(
    db: Database, store: EventStore
) -> None:
    await _append_history(store, 20, customers=5, items=3)
    projector = KpisProjector()
    await catch_up(db, projector)  # position > 0: not a rebuild from empty
    before = await _indexes(db, list(projector.tables))
    await _append_history(store, 5, customers=2, items=2, seed=8)

    await catch_up_in_processes(db, [projector], processes=1)

    assert await _indexes(db, list(projector.tables)) == before


async def test_the_next_leader_builds_the_indexes_a_cut_short_rebuild_left(
    db: Database, store: EventStore
) -> None:
    projector = DueTasksProjector()
    tables = list(projector.tables)
    before = await _indexes(db, tables)
    async with db.acquire() as conn:
        await reset(conn, projector)
        assert await defer_indexes(conn, projector) == ["due_tasks_due"]
    assert set(await _indexes(db, tables)) == set(before) - {"due_tasks_due"}
    assert await _deferred(db) == ["due_tasks_due"]

    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, [projector], notifier, poll_interval_s=0.05)
    runner.start()
    try:
        for _ in range(100):
            if runner.is_leader:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
        await notifier.stop()
    after = await _indexes(db, tables)
    assert _definitions(after) == _definitions(before)
    assert await _deferred(db) == []


async def test_indexes_are_built_once_and_only_for_the_projections_named(db: Database) -> None:
    due_tasks, kpis = DueTasksProjector(), KpisProjector()
    async with db.acquire() as conn:
        deferred = await defer_indexes(conn, kpis)
        await defer_indexes(conn, due_tasks)
        assert sorted(deferred) == ["kpi_bookings_item", "kpi_bookings_on_books_until",
                                    "kpi_bookings_on_the_books", "kpi_bookings_span",
                                    "kpi_bookings_start", "kpi_bookings_status",
                                    "kpi_daily_day"]
        assert await build_deferred_indexes(conn, ["kpis"]) == deferred
        assert await build_deferred_indexes(conn, ["kpis"]) == []
    assert await _deferred(db) == ["due_tasks_due"]


async def test_the_indexes_projectors_read_by_are_their_tables_query_indexes(
    db: Database
) -> None:
    for projector in all_projectors():
        named = set(getattr(projector, "indexes_read", ()))
        indexes = await _indexes(db, list(projector.tables))
        assert named <= {n for n, (_, unique, _) in indexes.items() if not unique}, projector


async def test_an_index_built_again_or_dropped_with_its_table_meanwhile_is_let_be(
    db: Database
) -> None:
    kpis = KpisProjector()
    async with db.acquire() as conn:
        await defer_indexes(conn, kpis)
        await conn.execute("CREATE INDEX kpi_bookings_start ON kpi_bookings (starts_at)")
        await conn.execute("INSERT INTO deferred_indexes (name, projection, definition)"
                           " VALUES ('gone', 'kpis', 'CREATE INDEX gone ON dropped (x)')")
        assert await build_deferred_indexes(conn, ["kpis"]) == [
            "kpi_bookings_item", "kpi_bookings_on_books_until", "kpi_bookings_on_the_books",
            "kpi_bookings_span", "kpi_bookings_start", "kpi_bookings_status", "kpi_daily_day"]
    assert await _deferred(db) == []


async def test_a_blue_green_rebuild_builds_the_shadows_query_indexes_after_its_rows(
    db: Database, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from midas import replay as replays

    await _append_history(store, 20, customers=5, items=3)
    projector = KpisProjector()
    tables = list(projector.tables)
    await catch_up(db, projector)
    before = await _indexes(db, tables)
    while_replaying: list[list[bool]] = []  # the shadow's indexes: unique?
    replay = replays.replay

    async def watched(conn: Any, *args: Any, **kwargs: Any) -> int:
        while_replaying.append([r["is_unique"] for r in await conn.fetch(_INDEXES_SQL, tables)])
        return await replay(conn, *args, **kwargs)

    monkeypatch.setattr(replays, "replay", watched)
    await replays.rebuild_blue_green(db, projector, batch=50)

    unique = [u for _, u, _ in before.values() if u]
    assert len(unique) == 4 and len(before) == 11  # 7 query indexes, absent while replaying
    assert while_replaying[0] == unique  # the bulk
    assert len(while_replaying[-1]) == 11  # the rest, under the swap's lock: all built
    after = await _indexes(db, tables)
    assert _definitions(after) == _definitions(before)
    assert all(after[n][0] != before[n][0] for n in after)  # all swapped in
