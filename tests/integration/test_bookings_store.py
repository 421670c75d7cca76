"""Items, bookings, timers and their read models against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from commands.bookings import HoldBooking, hold_booking
from midas.domain.catalogue import DEFAULT_CATALOGUE, Category
from midas.domain.inventory import Item, Unavailable
from midas.domain.registry import AGGREGATES
from midas.eventstore import Database, EventStore, EventTypes, Repository
from midas.projection import catch_up, reset
from midas.scheduler import ManualClock, Scheduler
from projections.availability import AvailabilityProjector
from projections.bookings import BookingsProjector
from projections.due_tasks import DueTasksProjector

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _repo(store: EventStore, snapshot_every: int = 50) -> Repository:
    return Repository(store, EventTypes(AGGREGATES), snapshot_every=snapshot_every)


async def _car(repo: Repository) -> UUID:
    item = Item.register(DEFAULT_CATALOGUE, name="Car", category=Category.CAR,
                         location="US-NY", rate=100_000)
    await repo.save(item)
    return item.id


def _clock() -> ManualClock:
    clock = ManualClock()
    clock.set(NOW)
    return clock


async def _hold(repo: Repository, clock: ManualClock, item: UUID, start: datetime) -> UUID:
    cmd = HoldBooking(item_id=item, start=start, end=start + 24 * H)
    booking, _ = await hold_booking(repo, clock, uuid4(), cmd, {})
    return booking.id


async def test_item_occupations_survive_snapshots(store: EventStore) -> None:
    repo = _repo(store, snapshot_every=2)
    item_id, clock = await _car(repo), _clock()
    for day in range(5):
        await _hold(repo, clock, item_id, NOW + (2 + 3 * day) * 24 * H)
    await repo.snapshots.flush()
    async with store.db.acquire() as conn:
        assert await conn.fetchval("SELECT version FROM snapshots WHERE stream_id = $1",
                                   item_id) >= 4
    item = await repo.get(item_id, cls=Item)
    assert len(item.occupations) == 5
    try:
        await _hold(repo, clock, item_id, NOW + 2 * 24 * H + H)
    except Unavailable:
        pass
    else:
        raise AssertionError("an overlapping hold was accepted after a snapshot")


async def test_concurrent_holds_through_the_repository_make_one(store: EventStore) -> None:
    repo, clock = _repo(store), _clock()
    item_id = await _car(repo)
    outcomes = await asyncio.gather(*[
        _hold(repo, clock, item_id, NOW + 48 * H + i * H) for i in range(20)
    ], return_exceptions=True)
    assert sum(isinstance(o, UUID) for o in outcomes) == 1
    assert all(isinstance(o, UUID | Unavailable) for o in outcomes)


async def test_two_schedulers_run_each_due_task_once(db: Database, store: EventStore) -> None:
    repo, clock = _repo(store), _clock()
    for _ in range(10):
        await _hold(repo, clock, await _car(repo), NOW + 48 * H)
    await catch_up(db, DueTasksProjector())
    runs: list[UUID] = []

    async def expire(booking: UUID, now: datetime) -> None:
        runs.append(booking)
        await asyncio.sleep(0.01)

    first = Scheduler(db, {"expire_hold": expire}, clock, batch_size=3)
    second = Scheduler(db, {"expire_hold": expire}, clock, batch_size=3)
    later = NOW + timedelta(minutes=30)
    while sum(await asyncio.gather(first.run_due(later), second.run_due(later))):
        pass
    assert len(runs) == 10 == len(set(runs))


async def test_rebuilt_read_models_equal_the_live_ones(db: Database, store: EventStore) -> None:
    repo, clock = _repo(store), _clock()
    item = await _car(repo)
    await _hold(repo, clock, item, NOW + 48 * H)
    projectors = [AvailabilityProjector(), BookingsProjector(), DueTasksProjector()]
    snapshot = []
    async with db.acquire() as conn:
        for projector in projectors:
            await catch_up(db, projector)
            snapshot.append(await conn.fetch(f"SELECT * FROM {projector.tables[0]} ORDER BY 1"))
        for projector in projectors:
            await reset(conn, projector)
    async with db.acquire() as conn:
        for projector, before in zip(projectors, snapshot, strict=True):
            await catch_up(db, projector)
            after = await conn.fetch(f"SELECT * FROM {projector.tables[0]} ORDER BY 1")
            assert [dict(r) for r in after] == [
                {**dict(r), **({"created_at": a["created_at"]} if "created_at" in r else {})}
                for r, a in zip(before, after, strict=True)]
