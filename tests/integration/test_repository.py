"""Aggregates saved and loaded through the async repository."""

from __future__ import annotations

import asyncio

import pytest
from eventsourcing.domain import Aggregate

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
from midas.eventstore.store import CacheStamp
from tests.support.counter import Counter


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
    await repo.snapshots.flush()
    async with db.acquire() as conn:
        # Taken at 20 (the writer may have moved it to a newer saved state before writing).
        assert 20 <= await conn.fetchval("SELECT version FROM snapshots") <= 26
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


async def wait_seen(store: EventStore, counter_id: object, stamp: object) -> None:
    for _ in range(200):
        if not store.unchanged_since(counter_id, stamp):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other writer's append was never seen")


async def test_a_cached_aggregate_is_used_without_a_read_until_another_writer_appends_to_it(
    db: Database, store: EventStore
) -> None:
    await store.notifier.connected.wait()
    repo, reads = repository(store), CountingReads(store)
    counter, bystander = Counter("shared"), Counter("bystander")
    await repo.save(counter, bystander)
    await asyncio.sleep(0.1)  # our own commit's announcement arrives: nothing is stale
    stamp = store.cache_stamp()
    assert (await repo.get(counter.id, cls=Counter)).version == 1
    assert reads.reads == 0 and store.unchanged_since(counter.id, stamp)

    other_process = EventStore(db)
    other_process.start()
    try:
        other = await repository(other_process).get(counter.id, cls=Counter)
        other.increment(3)
        await repository(other_process).save(other)
    finally:
        await other_process.close()
    await wait_seen(store, counter.id, stamp)
    assert (await repo.get(bystander.id, cls=Counter)).version == 1
    assert reads.reads == 0  # another stream's append leaves this one trusted
    loaded = await repo.get(counter.id, cls=Counter)
    assert (loaded.count, loaded.version, reads.reads) == (3, 2, 1)


async def test_the_known_version_is_answered_without_a_load_until_another_writer_appends(
    db: Database, store: EventStore
) -> None:
    await store.notifier.connected.wait()
    repo, reads = repository(store), CountingReads(store)
    counter, absent = Counter("policy"), Counter("never saved")
    assert repo.known_version(counter.id) is None  # nothing held here yet
    await repo.save(counter)
    await asyncio.sleep(0.1)
    stamp = store.cache_stamp()
    assert repo.known_version(counter.id) == 1  # the saved object, current
    await repo.get(counter.id, cls=Counter)  # a copy from now on
    assert repo.known_version(counter.id) == 1
    with pytest.raises(AggregateNotFound):
        await repo.get(absent.id, cls=Counter)
    assert repo.known_version(absent.id) == 0  # known absent
    assert reads.reads == 1  # the absent one's read only

    other_process = EventStore(db)
    other_process.start()
    try:
        other = await repository(other_process).get(counter.id, cls=Counter)
        other.increment(3)
        await repository(other_process).save(other)
    finally:
        await other_process.close()
    await wait_seen(store, counter.id, stamp)
    assert repo.known_version(counter.id) is None  # maybe stale: load it
    assert (await repo.get(counter.id, cls=Counter)).version == 2
    assert repo.known_version(counter.id) == 2


async def test_an_unlisted_append_makes_every_cached_aggregate_stale(
    db: Database, store: EventStore
) -> None:
    """An import (or a commit of too many streams to list) names no stream."""
    await store.notifier.connected.wait()
    repo, reads = repository(store), CountingReads(store)
    counter = Counter("any")
    await repo.save(counter)
    await asyncio.sleep(0.1)
    stamp = store.cache_stamp()
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_notify($1, '999999')", db.channel("events"))
    await wait_seen(store, counter.id, stamp)
    await repo.get(counter.id, cls=Counter)
    assert reads.reads == 1


class TrustingStore(InMemoryEventStore):
    """A store that sees no other writer: as if another writer's append had not been
    announced yet when the command ran."""

    def cache_stamp(self) -> CacheStamp | None:
        return CacheStamp(0, 0)

    def unchanged_since(self, stream_id: object, stamp: CacheStamp | None) -> bool:
        return stamp is not None


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


async def test_a_commit_announces_its_streams_or_a_star_when_too_many(
    db: Database, store: EventStore
) -> None:
    from uuid import uuid4

    from midas.eventstore import NewEvent, StreamAppend
    from midas.eventstore.store import ANNOUNCED_STREAMS

    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await db.connect()
    await conn.add_listener(db.channel("events"), lambda *args: heard.put_nowait(args[-1]))
    try:
        few = [uuid4(), uuid4()]
        result = await store.append([StreamAppend(s, 0, [NewEvent("T.Done", {})]) for s in few])
        last, *prefixes = (await asyncio.wait_for(heard.get(), 5)).split(" ")
        assert int(last) == result.last_position
        assert sorted(prefixes) == sorted(str(s)[:8] for s in few)
        many = [StreamAppend(uuid4(), 0, [NewEvent("T.Done", {})])
                for _ in range(ANNOUNCED_STREAMS + 1)]
        result = await store.append(many)
        assert await asyncio.wait_for(heard.get(), 5) == f"{result.last_position} *"
    finally:
        await conn.close()


async def test_a_command_is_handed_the_saved_object_and_everyone_else_a_copy(
    store: EventStore
) -> None:
    await store.notifier.connected.wait()
    repo = repository(store)
    counter = Counter("live")
    await repo.save(counter)
    taken = await repo.get(counter.id, cls=Counter, exclusive=True)
    assert taken is counter  # no copy for the command that changes it
    meanwhile = await repo.get(counter.id, cls=Counter, exclusive=True)
    assert meanwhile is not taken and meanwhile.version == taken.version
    taken.increment(2)
    await repo.save(taken)
    copy = await repo.get(counter.id, cls=Counter)  # a reader: never the object itself
    assert copy is not taken and (copy.count, copy.version) == (2, 2)
    copy.increment(40)  # changed and never saved: nobody else sees it
    assert (await repo.get(counter.id, cls=Counter)).count == 2


async def test_an_object_changed_after_its_save_or_by_a_failed_command_is_not_reused(
    store: EventStore
) -> None:
    repo = repository(store)
    counter = Counter("careless")
    await repo.save(counter)
    counter.increment(5)  # after the save, never saved
    assert (await repo.get(counter.id, cls=Counter, exclusive=True)).count == 0
    taken = await repo.get(counter.id, cls=Counter, exclusive=True)
    taken.increment(7)  # a command that then fails: no save
    again = await repo.get(counter.id, cls=Counter, exclusive=True)
    assert again is not taken and again.count == 0


async def test_saved_objects_that_cool_down_are_kept_as_copies(store: EventStore) -> None:
    repo = Repository(store, EventTypes([Counter]), live_size=1)
    first, second = Counter("first"), Counter("second")
    first.increment(1)
    await repo.save(first)
    await repo.save(second)  # pushes the first out of the live tier: pickled
    loaded = await repo.get(first.id, cls=Counter, exclusive=True)
    assert loaded is not first and (loaded.count, loaded.version) == (1, 2)
