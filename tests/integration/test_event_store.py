"""The event store against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from midas.eventstore import (
    ConcurrencyConflict,
    Database,
    EventStore,
    NewEvent,
    RecordedEvent,
    StreamAppend,
)
from midas.eventstore.chain import verify_chain
from midas.eventstore.codec import InvalidEventData


def one(stream: UUID, expected: int, type_: str = "Thing.Happened", **data: object) -> StreamAppend:
    return StreamAppend(stream, expected, [NewEvent(type_, dict(data))])


async def test_append_and_read_back_a_stream(store: EventStore) -> None:
    stream = uuid4()
    result = await store.append(
        [StreamAppend(stream, 0, [NewEvent("A.One", {"n": 1}), NewEvent("A.Two", {"n": 2})])],
        {"actor": "tester", "correlation_id": "c1"},
    )
    assert result.positions == [1, 2]
    events = await store.read_stream(stream)
    assert [(e.version, e.type, e.data) for e in events] == [(1, "A.One", {"n": 1}),
                                                            (2, "A.Two", {"n": 2})]
    assert events[0].metadata == {"actor": "tester", "correlation_id": "c1"}
    assert [e.version for e in await store.read_stream(stream, 2)] == [2]
    assert [e.version for e in await store.read_stream(stream, 1, 1)] == [1]


async def test_stale_expected_version_is_a_conflict_and_writes_nothing(store: EventStore) -> None:
    # The second append goes the one-statement way (the head is known): the database
    # refuses the version, then the writer's second look names the conflict.
    stream = uuid4()
    await store.append([one(stream, 0)])
    with pytest.raises(ConcurrencyConflict) as caught:
        await store.append([one(stream, 0)])
    assert caught.value.conflicts == {stream: (0, 1)}
    assert len(await store.read_stream(stream)) == 1


async def test_append_over_two_streams_with_one_stale_writes_neither(store: EventStore) -> None:
    fresh, stale = uuid4(), uuid4()
    await store.append([one(stale, 0)])
    with pytest.raises(ConcurrencyConflict):
        await store.append([one(fresh, 0), one(stale, 0)])
    assert await store.read_stream(fresh) == []
    assert len(await store.read_stream(stale)) == 1
    assert await store.head() == 1


async def test_concurrent_appends_with_the_same_expected_version_one_wins(
    store: EventStore,
) -> None:
    stream = uuid4()
    outcomes = await asyncio.gather(
        *(store.append([one(stream, 0, n=n)]) for n in range(20)), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrencyConflict) for o in outcomes if o not in winners)
    assert len(await store.read_stream(stream)) == 1


async def test_same_expected_version_across_two_store_instances_one_wins(
    db: Database, store: EventStore
) -> None:
    other = EventStore(db)  # stands for a second service process
    stream = uuid4()
    try:
        outcomes = await asyncio.gather(
            *(s.append([one(stream, 0)]) for s in (store, other) * 10), return_exceptions=True
        )
    finally:
        await other.close()
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert len(await store.read_stream(stream)) == 1


async def test_32_appenders_and_a_follower_see_every_event_once_in_order(
    db: Database, store: EventStore
) -> None:
    appenders, per_appender = 32, 40
    other = EventStore(db)  # two writers, as with two processes
    seen: list[RecordedEvent] = []

    async def append_many(n: int) -> None:
        target = store if n % 2 else other
        stream = uuid4()
        for version in range(per_appender):
            await target.append([one(stream, version, n=n)])

    async def follow() -> None:
        async for batch in store.subscribe(0, batch_size=100, poll_interval_s=0.05):
            seen.extend(batch)
            if len(seen) >= appenders * per_appender:
                return

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(append_many(n) for n in range(appenders)))
    await asyncio.wait_for(follower, 30)
    await other.close()
    positions = [e.position for e in seen]
    assert positions == list(range(1, appenders * per_appender + 1))
    assert len({(e.stream_id, e.version) for e in seen}) == len(seen)


async def test_group_commit_gathers_concurrent_appends(store: EventStore) -> None:
    before = store.batches_committed
    await asyncio.gather(*(store.append([one(uuid4(), 0)]) for _ in range(50)))
    assert store.batches_committed - before < 50


async def test_a_bad_append_does_not_sink_its_batch(store: EventStore) -> None:
    good = [store.append([one(uuid4(), 0)]) for _ in range(5)]
    stale = uuid4()
    await store.append([one(stale, 0)])
    outcomes = await asyncio.gather(*good, store.append([one(stale, 0)]), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 5
    assert isinstance(outcomes[-1], ConcurrencyConflict)


async def test_floats_and_unknown_types_are_refused_before_writing(store: EventStore) -> None:
    with pytest.raises(InvalidEventData):
        await store.append([one(uuid4(), 0, amount=1.5)])
    with pytest.raises(InvalidEventData):
        await store.append([one(uuid4(), 0, when=object())])
    assert await store.head() == 0


async def test_read_all_pages_by_position_and_filters_types(store: EventStore) -> None:
    for n in range(5):
        await store.append([one(uuid4(), 0, "X.Even" if n % 2 == 0 else "X.Odd", n=n)])
    page = await store.read_all(after=1, limit=2)
    assert [e.position for e in page] == [2, 3]
    odd = await store.read_all(types=["X.Odd"])
    assert [e.data["n"] for e in odd] == [1, 3]


async def test_closed_store_finishes_queued_appends(db: Database) -> None:
    store = EventStore(db)
    pending = [asyncio.create_task(store.append([one(uuid4(), 0)])) for _ in range(10)]
    await asyncio.sleep(0)
    await store.close()
    results = await asyncio.gather(*pending)
    assert len({r.last_position for r in results}) == 10


async def test_statements_run_in_the_append_transaction_only_if_accepted(
    db: Database, store: EventStore
) -> None:
    from midas.eventstore import Statement

    async with db.acquire() as conn:
        await conn.execute("CREATE TABLE side (k text PRIMARY KEY)")
    stream = uuid4()
    await store.append([one(stream, 0)], statements=[Statement("INSERT INTO side VALUES ($1)",
                                                               ("a",))])
    with pytest.raises(ConcurrencyConflict):
        await store.append([one(stream, 0)], statements=[Statement("INSERT INTO side VALUES ($1)",
                                                                   ("b",))])
    with pytest.raises(Exception, match="duplicate key"):
        await store.append([one(uuid4(), 0)], statements=[Statement("INSERT INTO side VALUES ($1)",
                                                                    ("a",))])
    async with db.acquire() as conn:
        assert [r["k"] for r in await conn.fetch("SELECT k FROM side")] == ["a"]
    assert await store.head() == 1


async def test_a_writer_that_knows_the_head_commits_in_one_statement(store: EventStore) -> None:
    await store.append([one(uuid4(), 0)])  # the first commit reads the head
    statements: list[str] = []
    assert store._conn is not None  # the writer's own connection
    store._conn.add_query_logger(lambda logged: statements.append(logged.query))
    stream = uuid4()
    for version in range(3):
        await store.append([one(stream, version)])
    assert len(statements) == 3
    assert all("append_events_if_current" in sql for sql in statements)
    assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3]


async def test_a_writer_with_a_stale_head_plans_again_against_the_log(
    db: Database, store: EventStore
) -> None:
    other = EventStore(db)  # a second process's writer
    stream, fresh = uuid4(), uuid4()
    try:
        await store.append([one(stream, 0)])
        known = store._head
        await other.append([one(stream, 1)])
        store._head = known  # as if the other's commit had not been announced yet
        with pytest.raises(ConcurrencyConflict) as caught:
            await store.append([one(stream, 1)])
        assert caught.value.conflicts == {stream: (1, 2)}
        store._head = known
        result = await store.append([one(fresh, 0)])
    finally:
        await other.close()
    assert result.positions == [3]
    async with db.acquire() as conn:
        assert (await verify_chain(conn)).ok
    assert [e.version for e in await store.read_stream(stream)] == [1, 2]

