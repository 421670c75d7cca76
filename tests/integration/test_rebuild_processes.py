"""Read models caught up by several processes equal those one process builds."""

from __future__ import annotations

from typing import Any

from bench.projections import generate_history
from midas.eventstore import Database, EventStore
from midas.projection import catch_up, projection_status, reset
from midas.rebuild import catch_up_in_processes, deal
from projections import all_projectors


async def read_models(db: Database) -> dict[str, list[str]]:
    """Every projection table's rows, in a stable order, without the wall-clock
    ``created_at`` a due task gets when it is written."""
    tables: dict[str, list[str]] = {}
    async with db.acquire() as conn:
        for table in (t for p in all_projectors() for t in p.tables):
            tables[table] = sorted(r["row"] for r in await conn.fetch(
                f"SELECT (to_jsonb(t) - 'created_at')::text AS row FROM {table} t"))
    return tables


async def test_projections_caught_up_in_two_processes_equal_one_process(
    db: Database, store: EventStore
) -> None:
    _, appends = generate_history(150, customers=30, items=8, per_append=50)
    for append in appends:
        await store.append(append)
    projectors = all_projectors()
    await catch_up_in_processes(db, projectors, processes=2, batch_size=37)
    statuses = await projection_status(db, projectors)
    assert all(s.lag == 0 and s.position > 0 for s in statuses)
    in_processes = await read_models(db)
    assert sum(map(len, in_processes.values())) > 1000

    async with db.acquire() as conn:
        for projector in projectors:
            await reset(conn, projector)
    await catch_up(db, *all_projectors(), batch_size=1000)
    assert await read_models(db) == in_processes


def test_groups_are_dealt_by_the_events_each_projection_handles() -> None:
    class P:
        def __init__(self, name: str, *handles: str) -> None:
            self.name, self.handles, self.tables = name, frozenset(handles), ()

    projectors: list[Any] = [P("a", "X"), P("b", "Y"), P("c", "X", "Y"), P("d", "Z"),
                             P("idle", "W")]
    counts = {"X": 50, "Y": 40, "Z": 45}
    assert deal(projectors, counts, 2) == [["c", "b"], ["a", "d", "idle"]]  # 130 | 95
    assert deal(projectors, counts, 1) == [["c", "a", "d", "b", "idle"]]
    assert deal(projectors[:1], counts, 3) == [["a"]]  # no empty groups
