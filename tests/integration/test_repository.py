"""Aggregates saved and loaded through the async repository."""

from __future__ import annotations

import asyncio

import pytest
from eventsourcing.domain import Aggregate, event

from midas.eventstore import (
    AggregateNotFound,
    ConcurrencyConflict,
    Database,
    EventStore,
    EventTypes,
    Repository,
    retry_on_conflict,
)
from midas.eventstore.memory import InMemoryEventStore


class Counter(Aggregate):
    @event("Opened")
    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by


def repository(store: EventStore, snapshot_every: int = 50) -> Repository:
    return Repository(store, EventTypes([Counter]), snapshot_every=snapshot_every)


async def test_save_and_get_round_trip(store: EventStore) -> None:
    repo = repository(store)
    counter = Counter("a")
    counter.increment(2)
    result = await repo.save(counter, metadata={"actor": "t"})
    loaded = await repo.get(counter.id, cls=Counter)
    assert (loaded.label, loaded.count, loaded.version) == ("a", 2, 2)
    assert result.positions == [1, 2]
    stored = await store.read_stream(counter.id)
    assert [e.type for e in stored] == ["Counter.Opened", "Counter.Incremented"]
    assert stored[1].data == {"by": 2} and stored[1].metadata["actor"] == "t"


async def test_two_aggregates_are_saved_atomically(store: EventStore) -> None:
    repo = repository(store)
    first, second = Counter("a"), Counter("b")
    await repo.save(first, second)
    stale = await repo.get(first.id, cls=Counter)
    first.increment(1)
    await repo.save(first)
    stale.increment(5)
    second.increment(1)
    with pytest.raises(ConcurrencyConflict):
        await repo.save(second, stale)
    assert (await repo.get(second.id, cls=Counter)).count == 0


async def test_unknown_ids_and_wrong_classes_are_not_found(store: EventStore) -> None:
    repo = repository(store)
    counter = Counter("a")
    await repo.save(counter)

    class Other(Aggregate):
        pass

    with pytest.raises(AggregateNotFound):
        await repo.get(Other().id)
    with pytest.raises(AggregateNotFound):
        await repo.get(counter.id, cls=Other)


async def test_snapshots_shorten_the_replay_and_give_the_same_state(
    db: Database, store: EventStore
) -> None:
    repo = repository(store, snapshot_every=10)
    counter = Counter("long")
    await repo.save(counter)
    for n in range(25):
        counter.increment(n)
        await repo.save(counter)
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT version FROM snapshots") == 20
    loaded = await repo.get(counter.id, cls=Counter)
    assert (loaded.count, loaded.version, loaded.label) == (sum(range(25)), 26, "long")
    assert loaded.created_on == counter.created_on


async def test_retry_on_conflict_reruns_on_fresh_state(store: EventStore) -> None:
    repo = repository(store)
    counter = Counter("race")
    await repo.save(counter)

    async def increment() -> None:
        async def attempt() -> None:
            fresh = await repo.get(counter.id, cls=Counter)
            fresh.increment(1)
            await repo.save(fresh)

        await retry_on_conflict(attempt, attempts=50)

    await asyncio.gather(*(increment() for _ in range(10)))
    assert (await repo.get(counter.id, cls=Counter)).count == 10


class CountingReads:
    """Counts the stream reads a repository makes through ``store``."""

    def __init__(self, store: EventStore) -> None:
        self.reads = 0
        original = store.read_stream

        async def read_stream(*args: object, **kwargs: object) -> list:
            self.reads += 1
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        store.read_stream = read_stream  # type: ignore[method-assign]


async def wait_epoch_moved(store: EventStore, before: int | None) -> None:
    for _ in range(200):
        if store.cache_epoch() not in (None, before):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other writer's append was never seen")


async def test_a_cached_aggregate_is_used_without_a_read_until_another_writer_appends(
    db: Database, store: EventStore
) -> None:
    await store.notifier.connected.wait()
    repo, reads = repository(store), CountingReads(store)
    counter = Counter("shared")
    await repo.save(counter)
    await asyncio.sleep(0.1)  # our own commit's notification arrives: the epoch stays
    epoch = store.cache_epoch()
    assert (await repo.get(counter.id, cls=Counter)).version == 1
    assert reads.reads == 0 and store.cache_epoch() == epoch is not None

    other_process = EventStore(db)
    other_process.start()
    try:
        other = await repository(other_process).get(counter.id, cls=Counter)
        other.increment(3)
        await repository(other_process).save(other)
    finally:
        await other_process.close()
    await wait_epoch_moved(store, epoch)
    loaded = await repo.get(counter.id, cls=Counter)
    assert (loaded.count, loaded.version, reads.reads) == (3, 2, 1)


class TrustingStore(InMemoryEventStore):
    """A store whose epoch never moves: as if another writer's append had not been
    announced yet when the command ran."""

    def cache_epoch(self) -> int | None:
        return 0


async def test_a_decision_on_stale_cached_state_loses_and_the_retry_reads_the_log() -> None:
    shared = TrustingStore()
    mine, theirs = repository(shared), repository(shared)  # type: ignore[arg-type]
    counter = Counter("race")
    await mine.save(counter)
    fresh = await theirs.get(counter.id, cls=Counter)
    fresh.increment(5)
    await theirs.save(fresh)
    attempts = 0

    async def increment() -> None:
        nonlocal attempts
        attempts += 1
        current = await mine.get(counter.id, cls=Counter)
        current.increment(1)
        await mine.save(current)

    await retry_on_conflict(increment)
    assert attempts == 2  # the first ran on the stale cached state and lost
    assert (await repository(shared).get(counter.id, cls=Counter)).count == 6  # type: ignore[arg-type]
