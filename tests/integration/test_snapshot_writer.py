"""Snapshots written by the background writer: off the request path, newest state per
stream, never a state the log does not hold, one row per stream, superseded versions
vacuumed away."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event

from midas.eventstore import ConcurrencyConflict, Database, EventStore, EventTypes, Repository
from midas.eventstore.store import StoredSnapshot


class Counter(Aggregate):
    @event("Opened")
    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by

    @event("Padded")
    def pad(self, blob: str) -> None:
        self.blob = blob


class GatedSaves:
    """Holds every snapshot write until opened, and records the versions written."""

    def __init__(self, store: EventStore) -> None:
        self.gate = asyncio.Event()
        self.written: list[tuple[Any, int]] = []
        self._save = store.save_snapshot
        store.save_snapshot = self.save  # type: ignore[method-assign]

    async def save(self, snapshot: StoredSnapshot) -> None:
        await self.gate.wait()
        await self._save(snapshot)
        self.written.append((snapshot.stream_id, snapshot.version))


async def stored_version(db: Database, stream: Any) -> int | None:
    async with db.acquire() as conn:
        return await conn.fetchval("SELECT version FROM snapshots WHERE stream_id = $1", stream)


async def test_a_save_does_not_wait_for_its_snapshot(db: Database, store: EventStore) -> None:
    saves = GatedSaves(store)
    repo = Repository(store, EventTypes([Counter]), snapshot_every=5)
    counter = Counter("a")
    for n in range(4):
        counter.increment(n)
    await asyncio.wait_for(repo.save(counter), 5)  # crosses 5: answered, gate still shut
    assert await stored_version(db, counter.id) is None
    saves.gate.set()
    await repo.snapshots.flush()
    assert await stored_version(db, counter.id) == 5
    loaded = await Repository(store, EventTypes([Counter]), cache_size=0).get(counter.id)
    assert (loaded.count, loaded.version) == (6, 5)


async def test_a_waiting_stream_is_written_once_at_its_newest_state(
    db: Database, store: EventStore,
) -> None:
    saves = GatedSaves(store)
    repo = Repository(store, EventTypes([Counter]), snapshot_every=2)
    first, second = Counter("first"), Counter("second")
    first.increment(1)
    await repo.save(first)  # v2: the writer takes it and waits at the gate
    await asyncio.sleep(0.05)
    second.increment(1)
    await repo.save(second)  # v2: waits its turn
    for n in range(7):
        second.increment(n)
        await repo.save(second)  # v3..v9, crossing 4, 6, 8 meanwhile
    assert repo.snapshots.waiting == 1
    saves.gate.set()
    await repo.snapshots.flush()
    assert saves.written == [(first.id, 2), (second.id, 9)]
    assert await stored_version(db, second.id) == 9


async def test_a_state_not_committed_is_never_written(db: Database, store: EventStore) -> None:
    saves = GatedSaves(store)
    repo = Repository(store, EventTypes([Counter]), snapshot_every=2)
    counter = Counter("race")
    counter.increment(1)
    blocker = Counter("blocker")
    blocker.increment(1)
    await repo.save(blocker)  # holds the writer at the gate
    await asyncio.sleep(0.05)
    await repo.save(counter)  # v2 waits
    mine = await repo.get(counter.id, cls=Counter, exclusive=True)  # the object itself
    assert mine is counter
    rival = await Repository(store, EventTypes([Counter])).get(counter.id, cls=Counter)
    rival.increment(100)
    await Repository(store, EventTypes([Counter])).save(rival)  # v3 by another process
    mine.increment(5)  # v3 here too: it loses
    saves.gate.set()
    await asyncio.sleep(0.1)  # the writer sees an uncommitted change: it waits
    assert await stored_version(db, counter.id) is None
    with pytest.raises(ConcurrencyConflict):
        await repo.save(mine)
    await repo.snapshots.flush()
    assert await stored_version(db, counter.id) is None  # dropped, not v3 of the loser
    fresh = await Repository(store, EventTypes([Counter]), cache_size=0).get(counter.id)
    assert fresh.count == 101


async def test_close_writes_what_waits(db: Database, store: EventStore) -> None:
    repo = Repository(store, EventTypes([Counter]), snapshot_every=3)
    counters = [Counter(str(n)) for n in range(10)]
    for counter in counters:
        counter.increment(1)
        counter.increment(1)
    await repo.save(*counters)
    await repo.close()
    assert [await stored_version(db, c.id) for c in counters] == [3] * 10
    later = Counter("after close")
    for _ in range(5):
        later.increment(1)
    await repo.save(later)  # saved; no snapshot once closed
    assert await stored_version(db, later.id) is None


async def table_bytes(db: Database) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval("SELECT pg_total_relation_size('snapshots')")


async def rewrite_a_big_snapshot(db: Database, store: EventStore, vacuum_every: int) -> int:
    repo = Repository(store, EventTypes([Counter]), snapshot_every=1,
                      snapshot_vacuum_every=vacuum_every)
    counter = Counter(f"vacuum every {vacuum_every}")
    await repo.save(counter)
    for _ in range(60):
        counter.pad(os.urandom(50_000).hex())  # 100 kB that do not compress
        await repo.save(counter)
        await repo.snapshots.flush()
    async with db.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM snapshots WHERE stream_id = $1", counter.id) == 1
    return await table_bytes(db)


async def test_superseded_snapshots_are_vacuumed_away(db: Database, store: EventStore) -> None:
    kept = await rewrite_a_big_snapshot(db, store, vacuum_every=0)
    async with db.acquire() as conn:
        await conn.execute("TRUNCATE snapshots")
    vacuumed = await rewrite_a_big_snapshot(db, store, vacuum_every=5)
    # 60 versions of 100 kB kept until a vacuum, against about five between vacuums.
    assert kept > 5_000_000
    assert vacuumed < kept / 3
