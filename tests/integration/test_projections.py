"""The projection runner against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from uuid import uuid4

import asyncpg

from midas.eventstore import Database, EventStore, NewEvent, RecordedEvent, StreamAppend
from midas.eventstore.notifier import Notifier
from midas.eventstore.store import EVENTS_CHANNEL
from midas.projection import (
    ProjectionRunner,
    catch_up,
    projection_status,
    reset,
)


class Tally:
    """Counts deposits per account; every application of an event is logged."""

    handles = frozenset({"Account.Deposited"})

    def __init__(
        self, fail_at: int | None = None, label: str = "main", name: str = "tally"
    ) -> None:
        self.fail_at = fail_at
        self.label = label
        self.name = name
        self.tables = (name, f"{name}_log")
        self.broken = False  # fails every batch while True

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.position == self.fail_at or self.broken:
                self.fail_at = None  # fail once, mid-batch, after earlier rows were written
                raise RuntimeError("injected fault")
            await conn.execute(
                f"INSERT INTO {self.name} (account, total) VALUES ($1, $2) ON CONFLICT (account)"
                f" DO UPDATE SET total = {self.name}.total + EXCLUDED.total",
                event.stream_id, event.data["amount"],
            )
            await conn.execute(
                f"INSERT INTO {self.name}_log VALUES ($1, $2)", event.position, self.label)


async def create_tables(db: Database, name: str = "tally") -> None:
    async with db.acquire() as conn:
        await conn.execute(f"CREATE TABLE {name} (account uuid PRIMARY KEY, total bigint)")
        await conn.execute(f"CREATE TABLE {name}_log (position bigint, runner text)")


async def deposit_history(store: EventStore, accounts: int = 10, rounds: int = 30) -> None:
    """Deposits on several accounts, with events the projection ignores in between."""
    ids = [uuid4() for _ in range(accounts)]
    for version in range(rounds):
        kind = "Account.Noted" if version % 3 == 0 else "Account.Deposited"
        await store.append([
            StreamAppend(account, version, [NewEvent(kind, {"amount": n + version})])
            for n, account in enumerate(ids)
        ])


async def read_model(db: Database, name: str = "tally") -> dict:
    async with db.acquire() as conn:
        return {r["account"]: r["total"] for r in await conn.fetch(f"SELECT * FROM {name}")}


async def applied_twice(db: Database, name: str) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval(
            f"SELECT count(*) FROM (SELECT position FROM {name}_log GROUP BY position"
            " HAVING count(*) > 1) AS twice")


async def wait_caught_up(db: Database, name: str, timeout: float = 10) -> None:
    async def reached() -> None:
        while True:
            (status,) = await projection_status(db, [Tally(name=name)])
            if status.lag == 0 and status.head > 0:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(reached(), timeout)


async def test_fault_mid_batch_resumes_equal_to_a_rebuild(db: Database, store: EventStore) -> None:
    await create_tables(db)
    await deposit_history(store)
    head = await store.head()
    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, [Tally(fail_at=head // 2)], notifier, batch_size=40,
                              poll_interval_s=0.05, retry_s=0.05)
    runner.start()
    try:
        await wait_caught_up(db, "tally")
    finally:
        await runner.stop()
    live = await read_model(db)
    async with db.acquire() as conn:
        positions = [r["position"] for r in await conn.fetch("SELECT position FROM tally_log")]
    assert len(positions) == len(set(positions))  # nothing applied twice

    async with db.acquire() as conn:
        await reset(conn, Tally())
    await catch_up(db, Tally(), batch_size=7)
    assert await read_model(db) == live
    assert sum(live.values()) > 0


async def test_two_runners_never_both_apply(db: Database, store: EventStore) -> None:
    await create_tables(db)
    notifiers = [Notifier(db, [EVENTS_CHANNEL]) for _ in range(2)]
    runners = [
        ProjectionRunner(db, [Tally(label=f"r{n}")], notifiers[n], batch_size=5,
                         poll_interval_s=0.05, retry_s=0.05)
        for n in range(2)
    ]
    for runner in runners:
        runner.start()
    try:
        await deposit_history(store, accounts=5, rounds=20)
        await wait_caught_up(db, "tally")
        assert sum(r.is_leader for r in runners) == 1
        leader = next(r for r in runners if r.is_leader)
        await leader.stop()  # the stand-by takes over
        await deposit_history(store, accounts=3, rounds=4)
        await wait_caught_up(db, "tally")
    finally:
        for runner in runners:
            await runner.stop()
        for notifier in notifiers:
            await notifier.stop()
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT position, count(*) AS n FROM tally_log GROUP BY position")
        labels = {r["runner"] for r in await conn.fetch("SELECT DISTINCT runner FROM tally_log")}
    assert rows and all(r["n"] == 1 for r in rows)
    assert labels == {"r0", "r1"}  # both led, one after the other


async def test_rebuild_gives_exactly_the_live_read_model(db: Database, store: EventStore) -> None:
    await create_tables(db)
    await deposit_history(store)
    await catch_up(db, Tally(), batch_size=13)
    live = await read_model(db)
    async with db.acquire() as conn:
        await reset(conn, Tally())
        assert await conn.fetchval("SELECT count(*) FROM tally") == 0
    await catch_up(db, Tally(), batch_size=1000)
    assert await read_model(db) == live
    (status,) = await projection_status(db, [Tally()])
    assert status.position == await store.head()


async def tally_and_ledger(db: Database) -> tuple[Tally, Tally]:
    tally, ledger = Tally(), Tally(name="ledger")
    for projector in (tally, ledger):
        await create_tables(db, projector.name)
    return tally, ledger


@contextlib.asynccontextmanager
async def running(
    db: Database, projectors: list[Tally], batch_size: int
) -> AsyncIterator[ProjectionRunner]:
    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, projectors, notifier, batch_size=batch_size,
                              poll_interval_s=0.05, retry_s=0.05)
    runner.start()
    try:
        yield runner
    finally:
        await runner.stop()
        await notifier.stop()


async def test_one_runner_applies_several_projections_each_exactly_once(
    db: Database, store: EventStore
) -> None:
    """Led together (one read, one transaction per batch); one of them reset while
    running catches up on its own without holding the other back."""
    tally, ledger = await tally_and_ledger(db)
    async with running(db, [tally, ledger], batch_size=7):
        await deposit_history(store, accounts=4, rounds=12)
        await wait_caught_up(db, "tally")
        await wait_caught_up(db, "ledger")
        async with db.acquire() as conn:
            await reset(conn, ledger)
        await deposit_history(store, accounts=3, rounds=9)
        await wait_caught_up(db, "tally")
        await wait_caught_up(db, "ledger")
    assert await read_model(db, "ledger") == await read_model(db, "tally") != {}
    assert await applied_twice(db, "tally") == 0
    assert await applied_twice(db, "ledger") == 0


async def test_a_failing_projection_holds_no_other_back(db: Database, store: EventStore) -> None:
    tally, broken = await tally_and_ledger(db)
    broken.broken = True
    async with running(db, [tally, broken], batch_size=5):
        await deposit_history(store, accounts=3, rounds=9)
        await wait_caught_up(db, "tally")
        (status,) = await projection_status(db, [broken])
        assert status.lag > 0 and await read_model(db, "ledger") == {}
        broken.broken = False  # fixed: it catches up and rejoins
        await wait_caught_up(db, "ledger")
    assert await read_model(db, "ledger") == await read_model(db, "tally") != {}
    assert await applied_twice(db, "ledger") == 0


class PlanMode(Tally):
    """Records the runner connection's plan cache mode in each batch."""

    def __init__(self) -> None:
        super().__init__(name="tally")
        self.modes: list[str] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.modes.append(await conn.fetchval("SHOW plan_cache_mode"))
        await super().apply(conn, events)


async def test_the_runner_plans_lookups_for_the_tables_as_they_are(
    db: Database, store: EventStore
) -> None:
    """A generic plan made while a read model was empty would scan it whole for ever
    after (until autovacuum analyzes it): the runner plans each statement; the other
    connections (bulk appends, rebuilds) keep generic plans."""
    await create_tables(db)
    projector = PlanMode()
    async with running(db, [projector], batch_size=5):
        await deposit_history(store, accounts=2, rounds=6)
        await wait_caught_up(db, "tally")
    assert projector.modes and set(projector.modes) == {"force_custom_plan"}
    async with db.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        await reset(conn, projector)
    projector.modes.clear()
    await catch_up(db, projector, batch_size=1000)
    assert projector.modes == ["auto"]


_LOOKUP = "SELECT total FROM tally WHERE account = ANY($1::uuid[])"


async def generic_lookup_plan(conn: asyncpg.Connection) -> str:
    """The plan this connection keeps for a keyed lookup once it goes generic."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        await conn.execute(f"PREPARE lookup(uuid[]) AS {_LOOKUP.replace('$1::uuid[]', '$1')}")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) EXECUTE lookup('{}')")
        await conn.execute("DEALLOCATE lookup")
    finally:
        await conn.execute("RESET plan_cache_mode")
    return str(plan)


class LookupPlans(Tally):
    """Records the plan of a keyed lookup on its own table in each batch."""

    def __init__(self) -> None:
        super().__init__(name="tally")
        self.plans: list[str] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.plans.append(await generic_lookup_plan(conn))
        await super().apply(conn, events)


async def test_rebuilds_look_rows_up_by_index_in_tables_analyzed_small(
    db: Database, store: EventStore
) -> None:
    """A rebuild's read models grow many times over within minutes, faster than
    autovacuum analyzes them: a plan made while a table held a few rows would scan it
    whole for every later batch. Rebuild connections look rows up by their index."""
    await create_tables(db)
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO tally SELECT gen_random_uuid(), 0"
                           " FROM generate_series(1, 20)")
        await conn.execute("ANALYZE tally")
        assert "Seq Scan" in await generic_lookup_plan(conn)  # the trap, elsewhere
    await deposit_history(store, accounts=2, rounds=4)
    projector = LookupPlans()
    await catch_up(db, projector, batch_size=3)
    assert len(projector.plans) > 1
    assert all("Seq Scan" not in plan and "Index" in plan for plan in projector.plans)


async def _steady_deposits(store: EventStore, seconds: float, every_s: float = 0.02) -> None:
    account, version = uuid4(), 0
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    while loop.time() < stop:
        await store.append([StreamAppend(account, version, [
            NewEvent("Account.Deposited", {"amount": 1})])])
        version += 1
        await asyncio.sleep(every_s)


async def test_steady_load_gathers_into_paced_batches(db: Database, store: EventStore) -> None:
    await create_tables(db)
    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, [Tally()], notifier, batch_size=500, poll_interval_s=0.05,
                              batch_interval_s=0.5)
    runner.start()
    try:
        await _steady_deposits(store, seconds=2.0)  # about 100 commits
        await wait_caught_up(db, "tally")
    finally:
        await runner.stop()
        await notifier.stop()
    # A batch at most every 0.5 s (and one more for the tail), not one per commit.
    assert runner.batches_applied <= 7
    assert sum((await read_model(db)).values()) == await store.head()


async def test_a_projection_behind_catches_up_without_pausing(
    db: Database, store: EventStore
) -> None:
    await create_tables(db)
    await deposit_history(store, accounts=10, rounds=30)  # 200 deposits
    notifier = Notifier(db, [EVENTS_CHANNEL])
    runner = ProjectionRunner(db, [Tally()], notifier, batch_size=10, poll_interval_s=0.05,
                              batch_interval_s=60)
    runner.start()
    try:
        await wait_caught_up(db, "tally")  # full batches are not paced: 10 s is plenty
    finally:
        await runner.stop()
        await notifier.stop()
    assert runner.batches_applied >= 20
