"""Commands on one aggregate take turns within a process; other processes still race."""

from __future__ import annotations

import asyncio

import pytest

from midas.eventstore import (
    ConcurrencyConflict,
    EventStore,
    EventTypes,
    Repository,
    retry_on_conflict,
)
from tests.support.counter import Counter


def repository(store: EventStore, **options: float) -> Repository:
    return Repository(store, EventTypes([Counter]), **options)  # type: ignore[arg-type]


async def increment(repo: Repository, counter_id: object, runs: list[int] | None = None,
                    attempts: int | None = None, pause: asyncio.Event | None = None) -> None:
    async def attempt() -> None:
        if runs is not None:
            runs.append(1)
        current = await repo.get(counter_id, cls=Counter, exclusive=True)  # type: ignore[arg-type]
        if pause is not None:
            await pause.wait()
        await asyncio.sleep(0)  # let the others load meanwhile, were they not held off
        current.increment(1)
        await repo.save(current)

    await retry_on_conflict(attempt, attempts=attempts)


async def test_commands_on_one_aggregate_in_one_process_never_lose_a_race(
    store: EventStore
) -> None:
    repo = repository(store, conflict_attempts=1)  # a single lost race would be raised
    counter = Counter("busy")
    await repo.save(counter)
    runs: list[int] = []
    await asyncio.gather(*(increment(repo, counter.id, runs) for _ in range(40)))
    assert len(runs) == 40  # nobody ran twice
    assert (await repo.get(counter.id, cls=Counter)).count == 40
    assert len(repo.locks) == 0  # nothing kept once idle


async def test_without_turns_the_same_commands_lose_races(store: EventStore) -> None:
    """The same load, each command loading without ``exclusive``: what the turns prevent."""
    repo = repository(store, conflict_attempts=1)
    counter = Counter("busy")
    await repo.save(counter)

    async def unserialised() -> None:
        async def attempt() -> None:
            current = await repo.get(counter.id, cls=Counter)
            await asyncio.sleep(0)
            current.increment(1)
            await repo.save(current)

        await retry_on_conflict(attempt)

    outcomes = await asyncio.gather(*(unserialised() for _ in range(40)),
                                    return_exceptions=True)
    assert any(isinstance(o, ConcurrencyConflict) for o in outcomes)


async def test_races_against_another_process_are_still_retried(store: EventStore) -> None:
    ours, theirs = repository(store), repository(store)  # two processes' repositories
    counter = Counter("shared")
    await ours.save(counter)
    runs: list[int] = []
    await asyncio.gather(*(increment(repo, counter.id, runs)
                           for repo in (ours, theirs) for _ in range(20)))
    assert (await repository(store).get(counter.id, cls=Counter)).count == 40
    assert len(runs) > 40  # some runs lost to the other process and ran again


async def test_a_command_waits_for_its_turn_only_so_long(store: EventStore) -> None:
    repo = repository(store, lock_wait_s=0.2)
    counter = Counter("held")
    await repo.save(counter)
    pause = asyncio.Event()
    slow = asyncio.create_task(increment(repo, counter.id, pause=pause))
    await asyncio.sleep(0.05)  # the slow command has its turn and waits
    started = asyncio.get_running_loop().time()
    await increment(repo, counter.id)  # goes ahead after 0.2 s, unserialised
    waited = asyncio.get_running_loop().time() - started
    assert 0.2 <= waited < 2.0
    pause.set()
    await slow  # lost to the one that went ahead, retried on fresh state
    assert (await repo.get(counter.id, cls=Counter)).count == 2
    assert len(repo.locks) == 0


async def test_two_commands_taking_two_aggregates_in_opposite_orders_do_not_hang(
    store: EventStore
) -> None:
    repo = repository(store, lock_wait_s=0.2)
    first, second = Counter("first"), Counter("second")
    await repo.save(first, second)
    both_hold_one = asyncio.Barrier(2)

    async def move(a: object, b: object) -> None:
        runs = 0

        async def attempt() -> None:
            nonlocal runs
            runs += 1
            one = await repo.get(a, cls=Counter, exclusive=True)  # type: ignore[arg-type]
            if runs == 1:  # each holds one and wants the other's
                await both_hold_one.wait()
            other = await repo.get(b, cls=Counter, exclusive=True)  # type: ignore[arg-type]
            one.increment(1)
            other.increment(1)
            await repo.save(one, other)

        await retry_on_conflict(attempt)

    await asyncio.wait_for(asyncio.gather(move(first.id, second.id), move(second.id, first.id)),
                           timeout=10)
    assert (await repo.get(first.id, cls=Counter)).count == 2
    assert (await repo.get(second.id, cls=Counter)).count == 2
    assert len(repo.locks) == 0


async def test_a_command_inside_a_command_shares_its_turn(store: EventStore) -> None:
    repo = repository(store)
    counter = Counter("nested")
    await repo.save(counter)

    async def outer() -> None:
        await repo.get(counter.id, cls=Counter, exclusive=True)
        await asyncio.wait_for(increment(repo, counter.id), timeout=2)  # no self-deadlock

    await retry_on_conflict(outer)
    assert (await repo.get(counter.id, cls=Counter)).count == 1
    assert len(repo.locks) == 0


async def test_a_refused_or_failed_command_gives_its_turn_back(store: EventStore) -> None:
    repo = repository(store)
    counter = Counter("refused")
    await repo.save(counter)

    async def refused() -> None:
        await repo.get(counter.id, cls=Counter, exclusive=True)
        raise ValueError("not allowed")

    with pytest.raises(ValueError, match="not allowed"):
        await retry_on_conflict(refused)
    assert len(repo.locks) == 0
    await asyncio.wait_for(increment(repo, counter.id), timeout=2)
    assert (await repo.get(counter.id, cls=Counter)).count == 1


async def test_a_task_outliving_the_attempt_that_started_it_takes_turns_of_its_own(
    store: EventStore
) -> None:
    repo = repository(store)
    counter = Counter("spawned")
    await repo.save(counter)
    later: list[asyncio.Task[None]] = []
    go = asyncio.Event()

    async def first() -> None:
        async def spawned() -> None:
            await go.wait()  # runs after the attempt that started it has ended
            await increment(repo, counter.id)

        later.append(asyncio.create_task(spawned()))  # copies the context variable
        await repo.get(counter.id, cls=Counter, exclusive=True)

    await retry_on_conflict(first)
    go.set()
    await asyncio.wait_for(later[0], timeout=5)
    assert (await repo.get(counter.id, cls=Counter)).count == 1
    assert len(repo.locks) == 0  # its turn was its own, and given back
